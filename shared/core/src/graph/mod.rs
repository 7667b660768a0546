//! The Graph API (Cloud API) wire types: the `/messages` request we build from a job, its
//! response, and Meta's error envelope with a classification of every documented code.

mod errors;

pub use errors::*;

use serde::{Deserialize, Serialize};

use crate::job::{OutboundMessage, Recipient, SendJob};

/// The Graph API version used unless configured otherwise.
pub const DEFAULT_GRAPH_VERSION: &str = "v25.0";

/// The longest `biz_opaque_callback_data` Meta accepts, in bytes.
pub const CALLBACK_DATA_MAX: usize = 512;

/// Which route a message is sent through. Meta asks that marketing templates go through the
/// Marketing Messages API and everything else through the Cloud API ("Route template messages
/// by category", Sep 2026); a WABA whose marketing is disabled on the Cloud API answers 131063.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SendEndpoint {
    /// `POST /{phone-number-id}/messages`.
    #[default]
    Messages,
    /// `POST /{phone-number-id}/marketing_messages` (marketing templates only).
    MarketingMessages,
}

impl SendEndpoint {
    /// The path below the API version for `phone_number_id`.
    pub fn path(self, phone_number_id: &str) -> String {
        match self {
            SendEndpoint::Messages => format!("{phone_number_id}/messages"),
            SendEndpoint::MarketingMessages => format!("{phone_number_id}/marketing_messages"),
        }
    }
}

/// The JSON body of `POST /{phone-number-id}/messages` (and of `/marketing_messages`, which
/// takes the same body for a template).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessageRequest<'a> {
    /// Where it is posted; not part of the body.
    #[serde(skip)]
    pub endpoint: SendEndpoint,
    pub messaging_product: &'static str,
    pub recipient_type: &'static str,
    /// Phone number recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// Business-scoped user id recipient (used instead of `to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ReplyContext<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_identity_key_hash: Option<&'a str>,
    #[serde(flatten)]
    pub message: &'a OutboundMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyContext<'a> {
    pub message_id: &'a str,
}

impl<'a> SendMessageRequest<'a> {
    /// Builds the request for `job`, tagging it with `callback_data` (which Meta echoes in every
    /// status webhook of the message). Returns `None` if `callback_data` is over 512 bytes.
    pub fn for_job(job: &'a SendJob, callback_data: Option<&'a str>) -> Option<Self> {
        if callback_data.is_some_and(|c| c.len() > CALLBACK_DATA_MAX) {
            return None;
        }
        let (to, recipient) = match &job.to {
            Recipient::WaId(w) => (Some(w.as_str()), None),
            Recipient::UserId(u) => (None, Some(u.as_str())),
        };
        Some(SendMessageRequest {
            endpoint: SendEndpoint::Messages,
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to,
            recipient,
            context: job
                .reply_to
                .as_deref()
                .map(|m| ReplyContext { message_id: m }),
            biz_opaque_callback_data: callback_data,
            recipient_identity_key_hash: job.recipient_identity_key_hash.as_deref(),
            message: &job.message,
        })
    }
}

/// Mark-as-read (with optional typing indicator) body for `POST /{phone-number-id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkReadRequest {
    pub messaging_product: String,
    pub status: String,
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_indicator: Option<TypingIndicator>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingIndicator {
    #[serde(rename = "type")]
    pub kind: String,
}

impl MarkReadRequest {
    pub fn new(message_id: impl Into<String>, typing: bool) -> Self {
        MarkReadRequest {
            messaging_product: "whatsapp".into(),
            status: "read".into(),
            message_id: message_id.into(),
            typing_indicator: typing.then(|| TypingIndicator {
                kind: "text".into(),
            }),
        }
    }
}

/// The success response of `/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessageResponse {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub contacts: Vec<ResponseContact>,
    #[serde(default)]
    pub messages: Vec<ResponseMessage>,
}

impl SendMessageResponse {
    /// The wamid of the accepted message.
    pub fn wamid(&self) -> Option<&str> {
        self.messages.first().map(|m| m.id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseContact {
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub id: String,
    /// `accepted` or `held_for_quality_assessment`; kept as a string so new values parse.
    #[serde(default)]
    pub message_status: Option<String>,
}

/// The phone-number node fields the poller reads (`GET /{phone-number-id}?fields=...`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_name: Option<String>,
    /// GREEN, YELLOW, RED, UNKNOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_rating: Option<String>,
    /// CONNECTED, FLAGGED, RESTRICTED, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_business_manager_messaging_limit: Option<crate::webhook::MessagingTier>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// STANDARD or HIGH.
    pub level: String,
}

/// The fields requested from a phone-number node.
pub const PHONE_NUMBER_FIELDS: &str = "id,display_phone_number,verified_name,quality_rating,status,name_status,throughput,whatsapp_business_manager_messaging_limit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_for_a_job_has_the_graph_shape() {
        let job = SendJob::parse(
            r#"{"version":1,"idempotency_key":"k1","phone_number_id":"106540352242922",
                "to":{"wa_id":"16505551234"},"reply_to":"wamid.X",
                "message":{"type":"image","image":{"link":"https://x.test/a.png","caption":"hi",
                "mime_type":"image/png","size_bytes":10}}}"#,
        )
        .unwrap();
        let req = SendMessageRequest::for_job(&job, Some("job:k1")).unwrap();
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"messaging_product":"whatsapp","recipient_type":"individual",
                "to":"16505551234","context":{"message_id":"wamid.X"},
                "biz_opaque_callback_data":"job:k1","type":"image",
                "image":{"link":"https://x.test/a.png","caption":"hi"}})
        );
    }

    #[test]
    fn request_to_a_bsuid_uses_recipient_and_template_index_is_a_string() {
        let job = SendJob::parse(
            r#"{"version":1,"idempotency_key":"k2","phone_number_id":"1","to":{"user_id":"US.1349"},
                "message":{"type":"template","template":{"name":"t","language":{"code":"en_US"},
                "components":[{"type":"button","sub_type":"quick_reply","index":0,
                "parameters":[{"type":"payload","payload":"P"}]}]}}}"#,
        )
        .unwrap();
        let v = serde_json::to_value(SendMessageRequest::for_job(&job, None).unwrap()).unwrap();
        assert_eq!(v["recipient"], "US.1349");
        assert!(v.get("to").is_none());
        assert_eq!(v["template"]["components"][0]["index"], "0");
    }

    #[test]
    fn oversized_callback_data_is_refused() {
        let job = SendJob::parse(
            r#"{"version":1,"idempotency_key":"k","phone_number_id":"1","to":{"wa_id":"16505551234"},
                "message":{"type":"text","text":{"body":"x"}}}"#,
        )
        .unwrap();
        let long = "x".repeat(CALLBACK_DATA_MAX + 1);
        assert!(SendMessageRequest::for_job(&job, Some(&long)).is_none());
    }
}
