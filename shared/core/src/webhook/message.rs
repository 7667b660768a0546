//! Inbound messages from users (`messages[]` in a `messages` change).

use serde::{Deserialize, Serialize};

use super::ApiError;

/// A message a user sent to the business.
///
/// The sender is identified by `from_user_id` (the BSUID, from 2026) and/or `from` (the phone
/// number, omitted for users who adopted a username). Use [`InboundMessage::user_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawInbound", into = "RawInbound")]
pub struct InboundMessage {
    pub id: String,
    pub from: Option<String>,
    pub from_user_id: Option<String>,
    /// Epoch seconds when the user sent it.
    pub timestamp: i64,
    pub context: Option<MessageContext>,
    /// Present when the user arrived through a click-to-WhatsApp ad or post.
    pub referral: Option<Referral>,
    pub errors: Vec<ApiError>,
    pub content: MessageContent,
}

/// The typed body of an inbound message, by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text(Text),
    Image(Media),
    Audio(Media),
    Video(Media),
    Document(Media),
    Sticker(Media),
    Location(Location),
    Contacts(Vec<SharedContact>),
    Interactive(InteractiveReply),
    /// A quick-reply button of a template.
    Button(ButtonReply),
    Reaction(Reaction),
    Order(Order),
    System(System),
    RequestWelcome,
    /// `unsupported` (or `unknown`): Meta could not render it; see the message's `errors`.
    Unsupported,
    /// A type this version does not know, or a known type whose body was missing.
    Other {
        type_name: String,
    },
}

impl MessageContent {
    /// The wire `type` value.
    pub fn type_name(&self) -> &str {
        match self {
            MessageContent::Text(_) => "text",
            MessageContent::Image(_) => "image",
            MessageContent::Audio(_) => "audio",
            MessageContent::Video(_) => "video",
            MessageContent::Document(_) => "document",
            MessageContent::Sticker(_) => "sticker",
            MessageContent::Location(_) => "location",
            MessageContent::Contacts(_) => "contacts",
            MessageContent::Interactive(_) => "interactive",
            MessageContent::Button(_) => "button",
            MessageContent::Reaction(_) => "reaction",
            MessageContent::Order(_) => "order",
            MessageContent::System(_) => "system",
            MessageContent::RequestWelcome => "request_welcome",
            MessageContent::Unsupported => "unsupported",
            MessageContent::Other { type_name } => type_name,
        }
    }
}

impl InboundMessage {
    /// The identifier to key per-user state on: the BSUID when present, else the phone number.
    pub fn user_key(&self) -> Option<&str> {
        self.from_user_id.as_deref().or(self.from.as_deref())
    }

    /// Whether this message came from a user (and so opens or extends the service window).
    /// `system` messages (e.g. "user changed number") do not.
    pub fn is_from_user(&self) -> bool {
        !matches!(self.content, MessageContent::System(_))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
}

/// Media metadata; download it with the media id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A download URL (since 16 Oct 2025): needs the access token, expires about 5 minutes
    /// after it was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(deserialize_with = "crate::serde_util::lenient_f64")]
    pub latitude: f64,
    #[serde(deserialize_with = "crate::serde_util::lenient_f64")]
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A contact card the user shared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedContact {
    #[serde(default)]
    pub name: ContactName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<ContactPhone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ContactEmail>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactName {
    #[serde(default)]
    pub formatted_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPhone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactEmail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A reply to an interactive message, by its inner `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InteractiveReply {
    ButtonReply {
        button_reply: IdTitle,
    },
    ListReply {
        list_reply: IdTitle,
    },
    /// A completed WhatsApp Flow; `response_json` is the flow's JSON, as a string.
    NfmReply {
        nfm_reply: NfmReply,
    },
    CallPermissionReply {
        call_permission_reply: serde_json::Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTitle {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfmReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub response_json: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonReply {
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: String,
    /// Absent or empty when the user removed their reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    #[serde(default)]
    pub catalog_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default)]
    pub product_items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product_retailer_id: String,
    #[serde(deserialize_with = "crate::serde_util::id_string")]
    pub quantity: String,
    #[serde(default, deserialize_with = "crate::serde_util::opt_id_string")]
    pub item_price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_wa_id: Option<String>,
    /// The user's business-scoped id after the change (`user_changed_number`,
    /// `user_changed_user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The business-scoped id before the change (Meta's changelog, 11 Aug 2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_parent_user_id: Option<String>,
    /// `user_changed_number` (`customer_changed_number` in older samples) or
    /// `user_changed_user_id`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The message this one replies to, or forwarding flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<serde_json::Value>,
}

/// Click-to-WhatsApp ad or post referral. Its presence on a user's message is what can open a
/// free entry point window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
}

/// The wire form: every per-type body as an optional field beside `type`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RawInbound {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_user_id: Option<String>,
    #[serde(
        deserialize_with = "crate::serde_util::epoch_seconds",
        serialize_with = "crate::serde_util::epoch_as_string"
    )]
    timestamp: i64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<MessageContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    referral: Option<Referral>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ApiError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audio: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    video: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    document: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sticker: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contacts: Option<Vec<SharedContact>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interactive: Option<InteractiveReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    button: Option<ButtonReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reaction: Option<Reaction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order: Option<Order>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system: Option<System>,
}

impl From<RawInbound> for InboundMessage {
    fn from(r: RawInbound) -> Self {
        use MessageContent as C;
        let other = || C::Other {
            type_name: r.kind.clone(),
        };
        let content = match r.kind.as_str() {
            "text" => r.text.map(C::Text),
            "image" => r.image.map(C::Image),
            "audio" => r.audio.map(C::Audio),
            "video" => r.video.map(C::Video),
            "document" => r.document.map(C::Document),
            "sticker" => r.sticker.map(C::Sticker),
            "location" => r.location.map(C::Location),
            "contacts" => r.contacts.map(C::Contacts),
            "interactive" => r.interactive.map(C::Interactive),
            "button" => r.button.map(C::Button),
            "reaction" => r.reaction.map(C::Reaction),
            "order" => r.order.map(C::Order),
            "system" => r.system.map(C::System),
            "request_welcome" => Some(C::RequestWelcome),
            "unsupported" | "unknown" => Some(C::Unsupported),
            _ => None,
        }
        .unwrap_or_else(other);
        InboundMessage {
            id: r.id,
            from: r.from,
            from_user_id: r.from_user_id,
            timestamp: r.timestamp,
            context: r.context,
            referral: r.referral,
            errors: r.errors,
            content,
        }
    }
}

impl From<InboundMessage> for RawInbound {
    fn from(m: InboundMessage) -> Self {
        use MessageContent as C;
        let mut r = RawInbound {
            id: m.id,
            from: m.from,
            from_user_id: m.from_user_id,
            timestamp: m.timestamp,
            kind: m.content.type_name().to_owned(),
            context: m.context,
            referral: m.referral,
            errors: m.errors,
            ..RawInbound::default()
        };
        match m.content {
            C::Text(v) => r.text = Some(v),
            C::Image(v) => r.image = Some(v),
            C::Audio(v) => r.audio = Some(v),
            C::Video(v) => r.video = Some(v),
            C::Document(v) => r.document = Some(v),
            C::Sticker(v) => r.sticker = Some(v),
            C::Location(v) => r.location = Some(v),
            C::Contacts(v) => r.contacts = Some(v),
            C::Interactive(v) => r.interactive = Some(v),
            C::Button(v) => r.button = Some(v),
            C::Reaction(v) => r.reaction = Some(v),
            C::Order(v) => r.order = Some(v),
            C::System(v) => r.system = Some(v),
            C::RequestWelcome | C::Unsupported | C::Other { .. } => {}
        }
        r
    }
}
