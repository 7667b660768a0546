//! The contacts table (no TTL: consent must not expire): consent timestamps per user
//! (`PN#<phone_number_id>#U#<user>`) and aliases from phone number to business-scoped id
//! (`PN#<phone_number_id>#W#<wa_id>` → `user_id`).

use aws_sdk_dynamodb::Client;

use super::{Item, n, num, s, text, update_conditionally};
use whatsapp_core::policy::Consent;
use whatsapp_core::ports::{ConsentEvent, ContactStore, StoreError, UserKey};

#[derive(Debug, Clone)]
pub struct DynamoContactStore {
    client: Client,
    table: String,
}

impl DynamoContactStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoContactStore {
            client,
            table: table.into(),
        }
    }
}

fn attribute(e: ConsentEvent) -> &'static str {
    match e {
        ConsentEvent::OptIn => "opt_in_at",
        ConsentEvent::OptOut => "opt_out_at",
        ConsentEvent::MarketingStop => "marketing_stop_at",
        ConsentEvent::MarketingResume => "marketing_resume_at",
        ConsentEvent::MarketingHeld => "marketing_held_at",
    }
}

fn user_pk(key: &UserKey) -> String {
    format!("PN#{}#U#{}", key.phone_number_id, key.user)
}

fn alias_pk(phone_number_id: &str, wa_id: &str) -> String {
    format!("PN#{phone_number_id}#W#{wa_id}")
}

/// Whether `user_id` differs from the alias item as read (absent counts as different).
/// The reverse alias: business-scoped id → phone number.
fn phone_pk(phone_number_id: &str, user_id: &str) -> String {
    format!("PN#{phone_number_id}#B#{user_id}")
}

fn alias_is_news(current: Option<&Item>, user_id: &str) -> bool {
    current
        .and_then(|i| text(i, "user_id"))
        .is_none_or(|u| u != user_id)
}

impl ContactStore for DynamoContactStore {
    async fn record_consent(
        &self,
        key: &UserKey,
        event: ConsentEvent,
        at: i64,
    ) -> Result<(), StoreError> {
        let a = attribute(event);
        update_conditionally(
            &self.client,
            &self.table,
            s(user_pk(key)),
            "contacts.record_consent",
            &format!("SET {a} = :t"),
            &format!("attribute_not_exists({a}) OR {a} < :t"),
            vec![(":t", n(at))],
        )
        .await?;
        Ok(())
    }

    async fn consent(&self, key: &UserKey) -> Result<Consent, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("contacts.consent", e))?;
        Ok(out.item.map_or_else(Consent::default, |i| Consent {
            opt_in_at: num(&i, "opt_in_at"),
            opt_out_at: num(&i, "opt_out_at"),
            marketing_stop_at: num(&i, "marketing_stop_at"),
            marketing_resume_at: num(&i, "marketing_resume_at"),
            marketing_held_at: num(&i, "marketing_held_at"),
        }))
    }

    async fn record_alias(
        &self,
        phone_number_id: &str,
        wa_id: &str,
        user_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        // Every inbound message carries the pair, and it almost never changes: read first (an
        // eventually consistent read costs a tenth of a write) and write only news. A stale
        // read costs at most a write whose condition refuses it.
        let pk = alias_pk(phone_number_id, wa_id);
        let current = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk.clone()))
            .projection_expression("user_id")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("contacts.alias_get", e))?
            .item;
        if !alias_is_news(current.as_ref(), user_id) {
            return Ok(());
        }
        // A BSUID changes when the user changes number: the latest mapping wins. `seen_at` is
        // when the stored mapping was first seen, so a message older than that, carrying an
        // earlier mapping, cannot take it back; of two seen in the same second the later write
        // wins (an identity move right after the user's last message).
        update_conditionally(
            &self.client,
            &self.table,
            s(pk),
            "contacts.record_alias",
            "SET user_id = :u, seen_at = :t",
            "attribute_not_exists(user_id) OR (user_id <> :u AND seen_at <= :t)",
            vec![(":u", s(user_id)), (":t", n(at))],
        )
        .await?;
        // And the other way, monotonic by the time seen: a number reassigned to another user
        // moves with the newer sighting.
        update_conditionally(
            &self.client,
            &self.table,
            s(phone_pk(phone_number_id, user_id)),
            "contacts.record_phone",
            "SET wa_id = :w, seen_at = :t",
            "attribute_not_exists(wa_id) OR (wa_id <> :w AND seen_at <= :t)",
            vec![(":w", s(wa_id)), (":t", n(at))],
        )
        .await?;
        Ok(())
    }

    async fn phone_of(
        &self,
        phone_number_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(phone_pk(phone_number_id, user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("contacts.phone_of", e))?;
        Ok(out.item.and_then(|i| text(&i, "wa_id")))
    }

    async fn resolve_alias(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(alias_pk(phone_number_id, wa_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("contacts.resolve_alias", e))?;
        Ok(out.item.and_then(|i| text(&i, "user_id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_or_changed_alias_is_written() {
        let item = |u: &str| Item::from([("user_id".to_owned(), s(u))]);
        assert!(alias_is_news(None, "US.1"));
        assert!(alias_is_news(Some(&Item::new()), "US.1"));
        assert!(alias_is_news(Some(&item("US.1")), "US.2"));
        assert!(!alias_is_news(Some(&item("US.1")), "US.1"));
    }
}
