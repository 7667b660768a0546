//! Users changing identity, as Meta reports it (system messages webhook reference, and the
//! changelog of 11 Aug 2026): a number change gives the user a new phone number **and** a new
//! business-scoped id (`user_changed_number`, with `system.wa_id`, `system.user_id` and
//! `system.previous_user_id`); a business-scoped id can also change alone
//! (`user_changed_user_id`, no phone number). Both come on the `messages` field, without a
//! `contacts` array, to every business number the user wrote to.
//!
//! Afterwards the old business-scoped id is no longer a valid recipient, and the old phone
//! number is no longer this user's (sent to, it reaches whoever has it now).

use serde_json::json;

use crate::Simulator;

impl Simulator {
    /// The user `user_id` changes their phone number to `new_wa_id`: they get a new
    /// business-scoped id (returned), and each number they wrote to gets the system message.
    pub fn change_number(&self, user_id: &str, new_wa_id: &str) -> Result<String, String> {
        self.change_identity(user_id, Some(new_wa_id))
    }

    /// The user's business-scoped id changes on its own; returns the new one.
    pub fn change_user_id(&self, user_id: &str) -> Result<String, String> {
        self.change_identity(user_id, None)
    }

    fn change_identity(&self, user_id: &str, new_wa_id: Option<&str>) -> Result<String, String> {
        let now = self.now();
        let mut world = self.world();
        let mut user = world.users.remove(user_id).ok_or("unknown user")?;
        let new_uid = world.next_id(&format!("{}.", user.country));
        let old_wa_id = user.wa_id.clone();
        if let Some(w) = new_wa_id {
            if let Some(old) = &old_wa_id {
                world.wa_index.remove(old);
            }
            world.wa_index.insert(w.to_owned(), new_uid.clone());
            user.wa_id = Some(w.to_owned());
        } else if let Some(w) = &old_wa_id {
            world.wa_index.insert(w.clone(), new_uid.clone());
        }
        user.user_id = new_uid.clone();
        let numbers: Vec<String> = user.last_inbound.keys().cloned().collect();
        let name = user.name.clone();
        world.users.insert(new_uid.clone(), user);
        let mut out = Vec::new();
        for pn in numbers {
            let Some(phone) = world.phones.get(&pn).cloned() else {
                continue;
            };
            let wamid = world.next_wamid("HBgLSYSTEM");
            let system = match new_wa_id {
                Some(w) => json!({
                    "body": format!(
                        "User {name} changed from {} to {w}",
                        old_wa_id.as_deref().unwrap_or("")
                    ),
                    "wa_id": w,
                    "user_id": new_uid,
                    "previous_user_id": user_id,
                    "type": "user_changed_number",
                }),
                None => json!({
                    "body": format!("User {name} changed their business-scoped user ID"),
                    "user_id": new_uid,
                    "previous_user_id": user_id,
                    "type": "user_changed_user_id",
                }),
            };
            let mut message = json!({
                "id": wamid, "timestamp": now.to_string(), "type": "system", "system": system,
            });
            if let (Some(_), Some(old)) = (new_wa_id, &old_wa_id) {
                message["from"] = json!(old);
            }
            out.push((phone, message));
        }
        drop(world);
        for (phone, message) in out {
            let value = json!({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": phone.display_phone_number, "phone_number_id": phone.id},
                "messages": [message],
            });
            self.emit(&phone.waba_id, "messages", value, 0);
        }
        Ok(new_uid)
    }
}
