//! The refusals Meta added in 2025–26 (reference §6c), each from its own condition on the
//! account, the number, the user or the request, with Meta's code; and the controls that set
//! those conditions.
//!
//! | code | when |
//! |---|---|
//! | 131037 | a 555 number whose display name is not approved sends anything |
//! | 131063 | a marketing template goes through `/messages` while the account has marketing on the Cloud API disabled (`/marketing_messages` is exempt) |
//! | 100 | `/marketing_messages` with anything but a marketing template, or before the portfolio accepted that API's terms |
//! | 131064 | a template goes while the account is held for template-classification violations |
//! | 130497 | the user's country is barred for the account |
//! | 131062 | a one-tap, zero-tap or copy-code authentication template goes to a business-scoped id (`recipient`) |
//! | 137000 | `recipient_identity_key_hash` differs from the user's current identity key |
//! | 130472 | (a failed status) a marketing template reaches a user in an experiment group |
//! | 131049 | (a failed status) marketing again to a user within 24 h of a 131049: counted as an excessive retry |

use serde_json::Value;

use crate::model::{Phone, Restrictions, Template, World};
use crate::{GraphError, Simulator};

/// What `/marketing_messages` refuses before anything else: any message but a marketing
/// template (Meta routes those by the template's latest category: "Route template messages by
/// category", Sep 2026), and any account whose portfolio has not accepted the API's terms
/// (onboarding is per portfolio). Meta's codes for these are not in the reference: the
/// simulator answers Graph's generic invalid-parameter 100, with the reason in the message.
pub(crate) fn marketing_api_refusal(
    world: &World,
    phone: &Phone,
    template: Option<&Template>,
) -> Result<(), GraphError> {
    if !template.is_some_and(|t| t.category.eq_ignore_ascii_case("MARKETING")) {
        return Err(GraphError::new(
            400,
            100,
            "(#100) Invalid parameter",
            "Only marketing templates can be sent through the Marketing Messages API; send other messages through /messages.",
        ));
    }
    if !world
        .restrictions
        .get(&phone.waba_id)
        .is_some_and(|r| r.marketing_messages_onboarded)
    {
        return Err(GraphError::new(
            400,
            100,
            "(#100) Invalid parameter",
            "The business portfolio has not accepted the Marketing Messages API terms of service.",
        ));
    }
    Ok(())
}

/// The synchronous refusals, in the order Meta's checks are assumed to run: the number, the
/// account, then the recipient.
pub(crate) fn refusal(
    world: &World,
    phone: &Phone,
    user_id: &str,
    template: Option<&Template>,
    body: &Value,
    now: i64,
    marketing_api: bool,
) -> Result<(), GraphError> {
    let digits: String = phone
        .display_phone_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.starts_with("1555") && phone.name_status != "APPROVED" {
        return Err(GraphError::new(
            400,
            131037,
            "WhatsApp provided number needs display name approval before message can be sent.",
            "The 555 number's display name has not been approved.",
        ));
    }
    let restrictions = world.restrictions.get(&phone.waba_id);
    let marketing = template.is_some_and(|t| t.category.eq_ignore_ascii_case("MARKETING"));
    if marketing && !marketing_api && restrictions.is_some_and(|r| r.marketing_on_cloud_disabled) {
        return Err(GraphError::new(
            400,
            131063,
            "Marketing template messages are not supported on Cloud API for this WhatsApp Business Account.",
            "Send marketing templates through the Marketing Messages API.",
        ));
    }
    if template.is_some()
        && restrictions
            .and_then(|r| r.classification_hold_until)
            .is_some_and(|until| now < until)
    {
        return Err(GraphError::new(
            400,
            131064,
            "WhatsApp Business Account has exceeded its messaging limit for template classification violations.",
            "Template messages are limited until the enforcement period ends.",
        ));
    }
    let country = world.users.get(user_id).map(|u| u.country.as_str());
    if let (Some(r), Some(c)) = (restrictions, country)
        && r.barred_countries.contains(c)
    {
        return Err(GraphError::new(
            400,
            130497,
            "Business account is restricted from messaging users in this country.",
            format!("Messaging users in {c} is not allowed for this account."),
        ));
    }
    if body.get("recipient").is_some() && template.is_some_and(needs_phone_number) {
        return Err(GraphError::new(
            400,
            131062,
            "BSUID recipients are not supported for this message.",
            "One-tap, zero-tap and copy-code authentication templates must be sent to a phone number.",
        ));
    }
    if let Some(hash) = body
        .get("recipient_identity_key_hash")
        .and_then(Value::as_str)
        && world
            .identity_keys
            .get(user_id)
            .is_some_and(|current| current != hash)
    {
        return Err(GraphError::new(
            400,
            137000,
            "Identity key hash mismatch.",
            "The recipient's identity key changed since the hash was read.",
        ));
    }
    Ok(())
}

/// An authentication template with a one-time-password button (every OTP type is one-tap,
/// zero-tap or copy-code): Meta refuses it to a business-scoped id.
pub(crate) fn needs_phone_number(t: &Template) -> bool {
    t.category.eq_ignore_ascii_case("AUTHENTICATION")
        && t.component("BUTTONS")
            .and_then(|b| b["buttons"].as_array())
            .is_some_and(|buttons| {
                buttons.iter().any(|b| {
                    b["type"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case("OTP"))
                })
            })
}

impl Simulator {
    /// Sets what an account is restricted from (replacing what was set).
    pub fn set_restrictions(&self, waba_id: &str, restrictions: Restrictions) {
        self.world()
            .restrictions
            .insert(waba_id.to_owned(), restrictions);
    }

    /// Sets a number's display-name review status (`APPROVED`, `PENDING_REVIEW`, `DECLINED`, ...):
    /// a 555 number sends nothing until it is `APPROVED` (131037).
    pub fn set_name_status(&self, phone_number_id: &str, status: &str) {
        if let Some(p) = self.world().phones.get_mut(phone_number_id) {
            p.name_status = status.to_owned();
        }
    }

    /// Puts a user in (or out of) a marketing experiment group: marketing to them fails with
    /// 130472.
    pub fn set_experiment_group(&self, user_id: &str, member: bool) {
        let mut world = self.world();
        if member {
            world.experiment_users.insert(user_id.to_owned());
        } else {
            world.experiment_users.remove(user_id);
        }
    }

    /// The user's current identity key hash (a send naming another fails with 137000).
    pub fn set_identity_key(&self, user_id: &str, hash: &str) {
        self.world()
            .identity_keys
            .insert(user_id.to_owned(), hash.to_owned());
    }

    /// Marketing sent to a user within 24 h of a 131049 for them, per account: what Meta
    /// counts against the account as excessive retries.
    pub fn excessive_marketing_retries(&self, waba_id: &str) -> u32 {
        self.world()
            .excessive_marketing_retries
            .get(waba_id)
            .copied()
            .unwrap_or(0)
    }
}
