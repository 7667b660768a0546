//! Meta's webhook payloads, typed.
//!
//! Parsing is liberal by design: unknown fields are ignored, unknown enum values land in an
//! `Other` variant, and a change whose `value` does not have the expected shape becomes
//! [`Change::Malformed`] instead of failing the whole envelope. Every level is an array; use
//! [`Envelope::items`] to visit every `entry × change × item`.

mod account;
mod message;
mod status;
mod tier;

pub use account::*;
pub use message::*;
pub use status::*;
pub use tier::*;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The top-level webhook body: `{"object": "whatsapp_business_account", "entry": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One WABA's part of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    #[serde(deserialize_with = "crate::serde_util::id_string")]
    pub id: String,
    #[serde(
        default,
        deserialize_with = "crate::serde_util::opt_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<i64>,
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// One `{"field": ..., "value": ...}` change, typed by its field.
#[derive(Debug, Clone)]
pub enum Change {
    Messages(MessagesValue),
    MessageTemplateStatusUpdate(TemplateStatusUpdate),
    TemplateCategoryUpdate(TemplateCategoryUpdate),
    PhoneNumberQualityUpdate(PhoneNumberQualityUpdate),
    BusinessCapabilityUpdate(BusinessCapabilityUpdate),
    AccountUpdate(AccountUpdate),
    UserPreferences(UserPreferencesValue),
    /// A field this version does not handle; the value is kept verbatim.
    Other {
        field: String,
        value: Box<RawValue>,
    },
    /// A known field whose value did not have the documented shape.
    Malformed {
        field: String,
        error: String,
        value: Box<RawValue>,
    },
}

#[derive(Deserialize)]
struct RawChange {
    field: String,
    value: Box<RawValue>,
}

fn typed<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    wrap: fn(T) -> Change,
) -> Result<Change, serde_json::Error> {
    serde_json::from_str(raw.get()).map(wrap)
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let RawChange { field, value } = RawChange::deserialize(d)?;
        let parsed = match field.as_str() {
            "messages" => typed(&value, Change::Messages),
            "message_template_status_update" => typed(&value, Change::MessageTemplateStatusUpdate),
            "template_category_update" => typed(&value, Change::TemplateCategoryUpdate),
            "phone_number_quality_update" => typed(&value, Change::PhoneNumberQualityUpdate),
            "business_capability_update" => typed(&value, Change::BusinessCapabilityUpdate),
            "account_update" => typed(&value, Change::AccountUpdate),
            "user_preferences" => typed(&value, Change::UserPreferences),
            _ => return Ok(Change::Other { field, value }),
        };
        Ok(match parsed {
            Ok(change) => change,
            Err(e) => Change::Malformed {
                field,
                error: e.to_string(),
                value,
            },
        })
    }
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a, T: Serialize> {
            field: &'a str,
            value: T,
        }
        let field = self.field();
        match self {
            Change::Messages(v) => Out { field, value: v }.serialize(s),
            Change::MessageTemplateStatusUpdate(v) => Out { field, value: v }.serialize(s),
            Change::TemplateCategoryUpdate(v) => Out { field, value: v }.serialize(s),
            Change::PhoneNumberQualityUpdate(v) => Out { field, value: v }.serialize(s),
            Change::BusinessCapabilityUpdate(v) => Out { field, value: v }.serialize(s),
            Change::AccountUpdate(v) => Out { field, value: v }.serialize(s),
            Change::UserPreferences(v) => Out { field, value: v }.serialize(s),
            Change::Other { value, .. } | Change::Malformed { value, .. } => {
                Out { field, value }.serialize(s)
            }
        }
    }
}

impl Change {
    /// The webhook field name, e.g. `messages`.
    pub fn field(&self) -> &str {
        match self {
            Change::Messages(_) => "messages",
            Change::MessageTemplateStatusUpdate(_) => "message_template_status_update",
            Change::TemplateCategoryUpdate(_) => "template_category_update",
            Change::PhoneNumberQualityUpdate(_) => "phone_number_quality_update",
            Change::BusinessCapabilityUpdate(_) => "business_capability_update",
            Change::AccountUpdate(_) => "account_update",
            Change::UserPreferences(_) => "user_preferences",
            Change::Other { field, .. } | Change::Malformed { field, .. } => field,
        }
    }
}

/// `messages` change value: inbound messages, statuses of our messages, or system errors.
///
/// Each contact, message, status and error is parsed on its own: one that does not have the
/// documented shape lands in [`rejected`](Self::rejected), verbatim, and its well-formed
/// neighbours are still processed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "RawMessagesValue")]
pub struct MessagesValue {
    pub messaging_product: Option<String>,
    pub metadata: Metadata,
    pub contacts: Vec<Contact>,
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<Status>,
    pub errors: Vec<ApiError>,
    /// The parts that could not be parsed, in payload order within each array.
    pub rejected: Vec<RejectedPart>,
}

/// One part of a `messages` value that did not have the documented shape.
#[derive(Debug, Clone)]
pub struct RejectedPart {
    pub kind: PartKind,
    /// The parser's message (names the offending field; never the value).
    pub error: String,
    pub value: Box<RawValue>,
}

/// Which array of a `messages` value a part came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Contact,
    Message,
    Status,
    Error,
}

impl PartKind {
    /// The array's name in the payload.
    pub fn array(self) -> &'static str {
        match self {
            PartKind::Contact => "contacts",
            PartKind::Message => "messages",
            PartKind::Status => "statuses",
            PartKind::Error => "errors",
        }
    }
}

#[derive(Deserialize)]
struct RawMessagesValue {
    #[serde(default)]
    messaging_product: Option<String>,
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<Box<RawValue>>,
    #[serde(default)]
    messages: Vec<Box<RawValue>>,
    #[serde(default)]
    statuses: Vec<Box<RawValue>>,
    #[serde(default)]
    errors: Vec<Box<RawValue>>,
}

fn each<T: serde::de::DeserializeOwned>(
    raw: Vec<Box<RawValue>>,
    kind: PartKind,
    rejected: &mut Vec<RejectedPart>,
) -> Vec<T> {
    raw.into_iter()
        .filter_map(|value| match serde_json::from_str(value.get()) {
            Ok(part) => Some(part),
            Err(e) => {
                rejected.push(RejectedPart {
                    kind,
                    error: e.to_string(),
                    value,
                });
                None
            }
        })
        .collect()
}

impl From<RawMessagesValue> for MessagesValue {
    fn from(raw: RawMessagesValue) -> Self {
        let mut rejected = Vec::new();
        MessagesValue {
            messaging_product: raw.messaging_product,
            metadata: raw.metadata,
            contacts: each(raw.contacts, PartKind::Contact, &mut rejected),
            messages: each(raw.messages, PartKind::Message, &mut rejected),
            statuses: each(raw.statuses, PartKind::Status, &mut rejected),
            errors: each(raw.errors, PartKind::Error, &mut rejected),
            rejected,
        }
    }
}

impl Serialize for MessagesValue {
    /// The value as Meta sent it, rejected parts included (appended to their arrays), so that a
    /// re-parse yields the same items.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Part<'a, T> {
            Typed(&'a T),
            Raw(&'a RawValue),
        }
        fn parts<'a, T>(
            typed: &'a [T],
            rejected: &'a [RejectedPart],
            kind: PartKind,
        ) -> Vec<Part<'a, T>> {
            typed
                .iter()
                .map(Part::Typed)
                .chain(
                    rejected
                        .iter()
                        .filter(|r| r.kind == kind)
                        .map(|r| Part::Raw(&r.value)),
                )
                .collect()
        }
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            messaging_product: &'a Option<String>,
            metadata: &'a Metadata,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            contacts: Vec<Part<'a, Contact>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            messages: Vec<Part<'a, InboundMessage>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            statuses: Vec<Part<'a, Status>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            errors: Vec<Part<'a, ApiError>>,
        }
        Out {
            messaging_product: &self.messaging_product,
            metadata: &self.metadata,
            contacts: parts(&self.contacts, &self.rejected, PartKind::Contact),
            messages: parts(&self.messages, &self.rejected, PartKind::Message),
            statuses: parts(&self.statuses, &self.rejected, PartKind::Status),
            errors: parts(&self.errors, &self.rejected, PartKind::Error),
        }
        .serialize(s)
    }
}

/// The business phone number a change concerns. Route on `phone_number_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(deserialize_with = "crate::serde_util::id_string")]
    pub phone_number_id: String,
}

/// A user as Meta identifies them. Since 2026 `user_id` (the business-scoped user id, BSUID) is
/// always present and `wa_id` (the phone number) may be omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// An error object as it appears in webhooks (`messages[].errors`, `statuses[].errors`,
/// `value.errors`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// One item of a webhook delivery, with the context needed to act on it.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Message {
        metadata: &'a Metadata,
        /// The `contacts[]` entry for the sender, matched by `wa_id`/`user_id` (or the only one).
        contact: Option<&'a Contact>,
        message: &'a InboundMessage,
    },
    Status {
        metadata: &'a Metadata,
        status: &'a Status,
    },
    /// A system-level error with no message attached (`value.errors[]`).
    Error {
        metadata: &'a Metadata,
        error: &'a ApiError,
    },
    TemplateStatus(&'a TemplateStatusUpdate),
    TemplateCategory(&'a TemplateCategoryUpdate),
    PhoneNumberQuality(&'a PhoneNumberQualityUpdate),
    BusinessCapability(&'a BusinessCapabilityUpdate),
    Account(&'a AccountUpdate),
    UserPreference {
        metadata: Option<&'a Metadata>,
        preference: &'a UserPreference,
    },
    /// A field this version does not handle; its value verbatim.
    Unhandled {
        field: &'a str,
        value: &'a RawValue,
    },
    /// A known field whose value could not be parsed; its value verbatim.
    Malformed {
        field: &'a str,
        error: &'a str,
        value: &'a RawValue,
    },
    /// One part of a `messages` value that could not be parsed (its neighbours are items of
    /// their own).
    Rejected {
        metadata: &'a Metadata,
        part: &'a RejectedPart,
    },
}

/// Where an item came from: the WABA (`entry.id`) and the entry's time.
#[derive(Debug, Clone, Copy)]
pub struct ItemContext<'a> {
    pub waba_id: &'a str,
    pub entry_time: Option<i64>,
}

impl Envelope {
    /// Every `entry × change × item`, in payload order. Nothing is skipped: an unhandled or
    /// malformed change yields one item that says so.
    pub fn items(&self) -> impl Iterator<Item = (ItemContext<'_>, Item<'_>)> {
        self.entry.iter().flat_map(|entry| {
            let ctx = ItemContext {
                waba_id: &entry.id,
                entry_time: entry.time,
            };
            entry
                .changes
                .iter()
                .flat_map(move |change| change_items(change).map(move |i| (ctx, i)))
        })
    }

    /// Parses a body. Fails only when the body is not JSON or not an envelope at all.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        let env: Envelope = serde_json::from_slice(body)?;
        if env.object.is_empty() {
            return Err(serde_json::Error::custom("missing object"));
        }
        Ok(env)
    }
}

fn change_items(change: &Change) -> Box<dyn Iterator<Item = Item<'_>> + '_> {
    match change {
        Change::Messages(v) => {
            let md = &v.metadata;
            let msgs = v.messages.iter().map(move |m| Item::Message {
                metadata: md,
                contact: v.contact_for(m),
                message: m,
            });
            let statuses = v.statuses.iter().map(move |s| Item::Status {
                metadata: md,
                status: s,
            });
            let errors = v.errors.iter().map(move |e| Item::Error {
                metadata: md,
                error: e,
            });
            let rejected = v
                .rejected
                .iter()
                .map(move |part| Item::Rejected { metadata: md, part });
            Box::new(msgs.chain(statuses).chain(errors).chain(rejected))
        }
        Change::MessageTemplateStatusUpdate(v) => {
            Box::new(std::iter::once(Item::TemplateStatus(v)))
        }
        Change::TemplateCategoryUpdate(v) => Box::new(std::iter::once(Item::TemplateCategory(v))),
        Change::PhoneNumberQualityUpdate(v) => {
            Box::new(std::iter::once(Item::PhoneNumberQuality(v)))
        }
        Change::BusinessCapabilityUpdate(v) => {
            Box::new(std::iter::once(Item::BusinessCapability(v)))
        }
        Change::AccountUpdate(v) => Box::new(std::iter::once(Item::Account(v))),
        Change::UserPreferences(v) => {
            let md = v.metadata.as_ref();
            Box::new(
                v.user_preferences
                    .iter()
                    .map(move |p| Item::UserPreference {
                        metadata: md,
                        preference: p,
                    }),
            )
        }
        Change::Other { field, value } => {
            Box::new(std::iter::once(Item::Unhandled { field, value }))
        }
        Change::Malformed {
            field,
            error,
            value,
        } => Box::new(std::iter::once(Item::Malformed {
            field,
            error,
            value,
        })),
    }
}

impl MessagesValue {
    /// The contact entry that describes the sender of `m`.
    pub fn contact_for(&self, m: &InboundMessage) -> Option<&Contact> {
        let by_id = self.contacts.iter().find(|c| {
            (m.from_user_id.is_some() && c.user_id == m.from_user_id)
                || (m.from.is_some() && c.wa_id == m.from)
        });
        by_id.or(if self.contacts.len() == 1 {
            self.contacts.first()
        } else {
            None
        })
    }
}

#[cfg(test)]
mod tests;
