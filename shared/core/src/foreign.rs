//! Meta events the middleware does not own, as published for others to consume.
//!
//! Nothing Meta sends may vanish. Every change of a field this version does not handle
//! (`flows`, `calls`, `history`, `smb_message_echoes`, `group_*`, `security`, `account_alerts`,
//! …), every value or part of a value that does not have the documented shape, every system
//! error and every item we understood but could not act on is published verbatim on the Meta
//! events topic, with its field, WABA and time. Subscribers filter by the message attributes
//! (`field`, `kind`, `waba_id`). Malformed values are also kept in the quarantine bucket.
//!
//! Delivery is at least once: Meta retries a delivery we did not acknowledge, and each retry
//! publishes again. [`ForeignEvent::event_id`] is a digest of what the event carries, the same
//! for every retry of one change: subscribers deduplicate on it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::webhook::{Item, ItemContext};

/// SNS refuses messages (body and attributes) over 256 KiB; above this the value goes to S3
/// and the event carries its location instead.
pub const MAX_INLINE_BYTES: usize = 256 * 1024 - 4 * 1024;

/// Why an event was published rather than acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignKind {
    /// A field this version does not handle.
    Unhandled,
    /// A known field whose value, or one part of it, did not have the documented shape.
    Malformed,
    /// A system-level error of a `messages` value (`value.errors[]`).
    SystemError,
    /// Understood, but there was nothing we could act on (e.g. a message without any user id).
    Skipped,
}

impl ForeignKind {
    pub fn label(self) -> &'static str {
        match self {
            ForeignKind::Unhandled => "unhandled",
            ForeignKind::Malformed => "malformed",
            ForeignKind::SystemError => "system_error",
            ForeignKind::Skipped => "skipped",
        }
    }
}

/// One published event (`version` 1). See `docs/webhook.md#meta-events-we-do-not-own`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignEvent {
    pub version: u32,
    /// Hex digest of the WABA, field, part, time and value: the same for every retry.
    pub event_id: String,
    pub kind: ForeignKind,
    /// The webhook field, as Meta named it.
    pub field: String,
    pub waba_id: String,
    /// The entry's `time` (epoch s), when Meta gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_time: Option<i64>,
    /// For a part of a `messages` value: its business number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// For a part of a `messages` value: the array it came from (`messages`, `statuses`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// A fixed label for `skipped`, the parser's message for `malformed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the malformed value is kept (`s3://bucket/key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
    /// The value verbatim; absent when it was too large to publish, see `value_location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
    /// Where a value too large to publish is kept (`s3://bucket/key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_location: Option<String>,
}

impl ForeignEvent {
    /// The message attributes subscribers filter on.
    pub fn attributes(&self) -> [(&'static str, &str); 4] {
        [
            ("field", &self.field),
            ("kind", self.kind.label()),
            ("waba_id", &self.waba_id),
            ("event_id", &self.event_id),
        ]
    }

    /// Whether the value must be moved out before publishing (see [`MAX_INLINE_BYTES`]).
    pub fn too_large(&self) -> bool {
        self.value
            .as_ref()
            .is_some_and(|v| v.get().len() > MAX_INLINE_BYTES)
    }
}

/// A field name as Meta sent it, reduced to a bounded, safe form for logs and S3 keys.
pub fn safe_field(field: &str) -> String {
    let safe: String = field
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if safe.is_empty() {
        "unnamed".into()
    } else {
        safe
    }
}

/// The event for an item we do not act on: unhandled, malformed, a system error. `None` for
/// the items ingest owns (see [`skipped`] for those it could not act on).
pub fn event_of(ctx: ItemContext<'_>, item: Item<'_>) -> Option<ForeignEvent> {
    let (kind, field, phone, part, reason, value): (_, &str, _, _, _, Box<RawValue>) = match item {
        Item::Unhandled { field, value } => (
            ForeignKind::Unhandled,
            field,
            None,
            None,
            None,
            value.to_owned(),
        ),
        Item::Malformed {
            field,
            error,
            value,
        } => (
            ForeignKind::Malformed,
            field,
            None,
            None,
            Some(error.to_owned()),
            value.to_owned(),
        ),
        Item::Rejected { metadata, part } => (
            ForeignKind::Malformed,
            "messages",
            Some(metadata.phone_number_id.clone()),
            Some(part.kind.array().to_owned()),
            Some(part.error.clone()),
            part.value.clone(),
        ),
        Item::Error { metadata, error } => (
            ForeignKind::SystemError,
            "messages",
            Some(metadata.phone_number_id.clone()),
            Some("errors".to_owned()),
            None,
            serde_json::value::to_raw_value(error).ok()?,
        ),
        _ => return None,
    };
    Some(build(ctx, kind, field, phone, part, reason, value))
}

/// The event for an item ingest owns but could not act on, with a fixed `reason`.
pub fn skipped(ctx: ItemContext<'_>, item: Item<'_>, reason: &'static str) -> ForeignEvent {
    let (field, phone, part, value) = match item {
        Item::Message {
            metadata, message, ..
        } => (
            "messages",
            Some(metadata.phone_number_id.clone()),
            Some("messages"),
            serde_json::value::to_raw_value(message),
        ),
        Item::UserPreference {
            metadata,
            preference,
        } => (
            "user_preferences",
            metadata.map(|m| m.phone_number_id.clone()),
            Some("user_preferences"),
            serde_json::value::to_raw_value(preference),
        ),
        other => (
            "unknown",
            None,
            None,
            serde_json::value::to_raw_value(&format!("{other:?}")),
        ),
    };
    let value = value.unwrap_or_else(|_| RawValue::NULL.to_owned());
    build(
        ctx,
        ForeignKind::Skipped,
        field,
        phone,
        part.map(str::to_owned),
        Some(reason.to_owned()),
        value,
    )
}

fn build(
    ctx: ItemContext<'_>,
    kind: ForeignKind,
    field: &str,
    phone_number_id: Option<String>,
    part: Option<String>,
    reason: Option<String>,
    value: Box<RawValue>,
) -> ForeignEvent {
    let mut h = Sha256::new();
    for piece in [
        ctx.waba_id,
        field,
        part.as_deref().unwrap_or(""),
        &ctx.entry_time.map(|t| t.to_string()).unwrap_or_default(),
        value.get(),
    ] {
        h.update((piece.len() as u64).to_be_bytes());
        h.update(piece.as_bytes());
    }
    ForeignEvent {
        version: 1,
        event_id: hex::encode(&h.finalize()[..16]),
        kind,
        field: field.to_owned(),
        waba_id: ctx.waba_id.to_owned(),
        entry_time: ctx.entry_time,
        phone_number_id,
        part,
        // A parser's message may quote the value; bounded, it stays a hint.
        reason: reason.map(|r| r.chars().take(300).collect()),
        quarantined: None,
        value: Some(value),
        value_location: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Envelope;

    const UNKNOWN: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"1029","time":1749416383,"changes":[{"field":"calls","value":{"calls":[{"id":"c1","x":[1,2.50,"é"]}]}}]}]}"#;

    #[test]
    fn an_unhandled_change_is_published_verbatim_with_a_stable_id() {
        let env = Envelope::from_slice(UNKNOWN.as_bytes()).unwrap();
        let (ctx, item) = env.items().next().unwrap();
        let event = event_of(ctx, item).unwrap();
        assert_eq!(event.kind, ForeignKind::Unhandled);
        assert_eq!(
            event.value.as_ref().unwrap().get(),
            r#"{"calls":[{"id":"c1","x":[1,2.50,"é"]}]}"#,
            "byte for byte, number formatting included"
        );
        assert_eq!(
            (event.field.as_str(), event.waba_id.as_str()),
            ("calls", "1029")
        );
        assert_eq!(event.entry_time, Some(1_749_416_383));
        let again = Envelope::from_slice(UNKNOWN.as_bytes()).unwrap();
        let (ctx, item) = again.items().next().unwrap();
        assert_eq!(event_of(ctx, item).unwrap().event_id, event.event_id);
        let other = UNKNOWN.replace("c1", "c2");
        let other = Envelope::from_slice(other.as_bytes()).unwrap();
        let (ctx, item) = other.items().next().unwrap();
        assert_ne!(event_of(ctx, item).unwrap().event_id, event.event_id);
    }

    #[test]
    fn field_names_are_bounded_for_keys_and_logs() {
        assert_eq!(safe_field("flows"), "flows");
        assert_eq!(safe_field("../x y"), "xy");
        assert_eq!(safe_field("///"), "unnamed");
        assert_eq!(safe_field(&"a".repeat(500)).len(), 64);
    }
}
