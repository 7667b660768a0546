//! Outbound message bodies, in the Graph API's shape.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

/// The message to send, tagged by `type` as in the Graph API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutboundMessage {
    Text {
        text: TextBody,
    },
    Image {
        image: Media,
    },
    Audio {
        audio: Media,
    },
    Video {
        video: Media,
    },
    Document {
        document: Media,
    },
    Sticker {
        sticker: Media,
    },
    Location {
        location: LocationBody,
    },
    Contacts {
        contacts: Vec<ContactCard>,
    },
    Reaction {
        reaction: ReactionBody,
    },
    Interactive {
        interactive: Box<Interactive>,
    },
    Template {
        template: TemplateMessage,
    },
    /// Not a message: marks `message_id` (a message the user sent) as read, with the typing
    /// indicator if asked (shown up to 25 s, or until our next message). Sent as Meta's
    /// mark-as-read request; not held to the window, consent or template rules; counted
    /// against the number's throughput.
    MarkRead {
        mark_read: MarkReadAction,
    },
}

/// What a `mark_read` job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadAction {
    /// The wamid of the user's message (marking it read marks the earlier ones too).
    #[schemars(length(min = 1, max = 256))]
    pub message_id: String,
    /// Also show the typing indicator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typing_indicator: bool,
}

impl OutboundMessage {
    /// The Graph `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            OutboundMessage::Text { .. } => "text",
            OutboundMessage::Image { .. } => "image",
            OutboundMessage::Audio { .. } => "audio",
            OutboundMessage::Video { .. } => "video",
            OutboundMessage::Document { .. } => "document",
            OutboundMessage::Sticker { .. } => "sticker",
            OutboundMessage::Location { .. } => "location",
            OutboundMessage::Contacts { .. } => "contacts",
            OutboundMessage::Reaction { .. } => "reaction",
            OutboundMessage::Interactive { .. } => "interactive",
            OutboundMessage::Template { .. } => "template",
            OutboundMessage::MarkRead { .. } => "mark_read",
        }
    }

    /// The conversation action, if this job is one (not a message).
    pub fn as_mark_read(&self) -> Option<&MarkReadAction> {
        match self {
            OutboundMessage::MarkRead { mark_read } => Some(mark_read),
            _ => None,
        }
    }

    /// The template, if this is a template message.
    pub fn as_template(&self) -> Option<&TemplateMessage> {
        match self {
            OutboundMessage::Template { template } => Some(template),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    /// 1–4096 characters.
    #[schemars(length(min = 1, max = 4096))]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

/// A media attachment, by uploaded media `id`, by `link`, or by an `s3` object the sender
/// uploads to Meta first (exactly one).
///
/// `mime_type` and `size_bytes` are the producer's declaration of the file, checked against
/// WhatsApp's per-type limits; they are not sent to Meta.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An https URL Meta will fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// An object in one of the buckets the sender may read (`MEDIA_SOURCE_BUCKETS`): the sender
    /// checks its size and content type against WhatsApp's limits, uploads it
    /// (`POST /{phone-number-id}/media`, reusing an earlier upload of the same object version)
    /// and sends by id. Never sent to Meta.
    #[serde(default, skip_serializing)]
    pub s3: Option<S3Object>,
    /// Image, video and document only; ≤ 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Document only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing)]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing)]
    pub size_bytes: Option<u64>,
}

/// An S3 object, by bucket and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Object {
    /// 3–63 characters: lowercase letters, digits, `.` and `-`.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// 1–1024 bytes.
    #[schemars(length(min = 1, max = 1024))]
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCard {
    pub name: ContactCardName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<ContactCardPhone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ContactCardEmail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<ContactCardOrg>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<ContactCardUrl>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCardName {
    pub formatted_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCardPhone {
    pub phone: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCardEmail {
    pub email: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCardOrg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCardUrl {
    pub url: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionBody {
    /// wamid of the message to react to.
    pub message_id: String,
    /// One emoji; the empty string removes our reaction.
    pub emoji: String,
}

/// An interactive message, tagged by its inner `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Interactive {
    /// Up to 3 reply buttons.
    Button {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<InteractiveHeader>,
        body: InteractiveText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: ButtonAction,
    },
    /// A list of up to 10 rows in up to 10 sections.
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<InteractiveHeader>,
        body: InteractiveText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: ListAction,
    },
    /// A call-to-action URL button.
    CtaUrl {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<InteractiveHeader>,
        body: InteractiveText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: CtaUrlAction,
    },
    /// One catalog product.
    Product {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<InteractiveText>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: ProductAction,
    },
    /// Up to 30 catalog products in up to 10 sections; a text header is required.
    ProductList {
        header: InteractiveHeader,
        body: InteractiveText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: ProductListAction,
    },
    /// A WhatsApp Flow.
    Flow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<InteractiveHeader>,
        body: InteractiveText,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<InteractiveText>,
        action: FlowAction,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractiveText {
    pub text: String,
}

/// Header of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InteractiveHeader {
    Text { text: String },
    Image { image: Media },
    Video { video: Media },
    Document { document: Media },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonAction {
    pub buttons: Vec<ReplyButton>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyButton {
    /// Always `reply`.
    #[serde(rename = "type")]
    pub kind: ReplyButtonKind,
    pub reply: ReplyButtonBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyButtonKind {
    Reply,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyButtonBody {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAction {
    /// Text of the button that opens the list.
    pub button: String,
    pub sections: Vec<ListSection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtaUrlAction {
    /// Always `cta_url`.
    pub name: String,
    pub parameters: CtaUrlParameters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtaUrlParameters {
    pub display_text: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductAction {
    pub catalog_id: String,
    pub product_retailer_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductListAction {
    pub catalog_id: String,
    pub sections: Vec<ProductSection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductSection {
    pub title: String,
    pub product_items: Vec<ProductItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductItem {
    pub product_retailer_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowAction {
    /// Always `flow`.
    pub name: String,
    pub parameters: FlowParameters,
}

/// Flow parameters: exactly one of `flow_id` or `flow_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowParameters {
    /// `3`.
    pub flow_message_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    pub flow_cta: String,
    /// `navigate` (default) or `data_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_payload: Option<serde_json::Value>,
    /// `draft` or `published`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// A template message. The template must exist, be APPROVED, and its parameters must match
/// its definition (checked by the sender against the templates table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    /// Lowercase letters, digits and `_`, ≤ 512 characters.
    pub name: String,
    pub language: TemplateLanguage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateComponent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateLanguage {
    /// e.g. `en_US`, `pt_BR`, `de`.
    pub code: String,
    /// `deterministic`; the only value Meta accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Parameters for one component of the template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateComponent {
    Header {
        parameters: Vec<TemplateParameter>,
    },
    Body {
        parameters: Vec<TemplateParameter>,
    },
    Button {
        sub_type: ButtonSubType,
        /// Position of the button in the template, 0–9.
        #[serde(serialize_with = "index_as_string")]
        index: u8,
        #[serde(default)]
        parameters: Vec<ButtonParameter>,
    },
}

fn index_as_string<S: Serializer>(v: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ButtonSubType {
    QuickReply,
    Url,
    CopyCode,
    Flow,
    Catalog,
}

/// A header or body parameter. `parameter_name` is required for templates created with
/// `parameter_format: NAMED` and must be absent for positional ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateParameter {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    Currency {
        currency: CurrencyValue,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    DateTime {
        date_time: DateTimeValue,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    Image {
        image: Media,
    },
    Video {
        video: Media,
    },
    Document {
        document: Media,
    },
    Location {
        location: LocationBody,
    },
}

impl TemplateParameter {
    /// The `parameter_name`, for named parameters.
    pub fn parameter_name(&self) -> Option<&str> {
        match self {
            TemplateParameter::Text { parameter_name, .. }
            | TemplateParameter::Currency { parameter_name, .. }
            | TemplateParameter::DateTime { parameter_name, .. } => parameter_name.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrencyValue {
    pub fallback_value: String,
    /// ISO 4217, e.g. `USD`.
    pub code: String,
    /// The amount × 1000.
    pub amount_1000: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateTimeValue {
    pub fallback_value: String,
}

/// A button parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ButtonParameter {
    /// Quick-reply payload echoed back when the user taps it.
    Payload {
        payload: String,
    },
    /// The variable suffix of a dynamic URL button.
    Text {
        text: String,
    },
    CouponCode {
        coupon_code: String,
    },
    /// Flow or catalog action data.
    Action {
        action: serde_json::Value,
    },
}
