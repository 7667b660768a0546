//! The inbound event: what bots receive on the inbound queue, one per message (its JSON Schema
//! is `shared/core/schema/inbound-event.schema.json`).

use serde::{Deserialize, Serialize};

use crate::webhook::InboundMessage;

/// An inbound message as bots receive it on the inbound queue (one per SQS message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Shape version; 1.
    pub version: u32,
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub user: InboundUser,
    /// The message as Meta sent it (`id`, `timestamp`, `type` and the typed body).
    pub message: InboundMessage,
    /// When the customer-service window closes (epoch s), after this message.
    pub window_closes_at: Option<i64>,
    /// `opt_out` or `opt_in` when the text was a consent keyword (already recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_keyword: Option<String>,
    /// Meta has the message but not its content yet (131060: the first message to a number
    /// also on the WhatsApp Business app); the user wrote all the same, so the window opened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_unavailable: bool,
    /// The message's file, fetched from Meta and kept in the media bucket (image, audio,
    /// video, document and sticker messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::media::StoredMedia>,
    /// Why a message that had a file reaches bots without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_error: Option<crate::media::MediaError>,
}

/// The inbound error of a message whose content is not available yet.
pub(super) const CONTENT_UNAVAILABLE: i64 = 131_060;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundUser {
    /// The business-scoped user id, or the phone number when Meta sent no BSUID.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}
