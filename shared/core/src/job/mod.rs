//! The send-job contract: what event producers put on the send queue.
//!
//! A job is versioned JSON. The `message` object has the same shape as the Graph API's message
//! body (`{"type": "text", "text": {...}}`), so producers who know the Cloud API know the
//! contract; the envelope (`to`, `messaging_product`, `biz_opaque_callback_data`) is ours to
//! build. Parsing is strict: unknown fields are rejected. Decode with [`SendJob::parse`], which
//! reports every violation at once.
//!
//! The JSON Schema generated from these types is committed at `shared/core/schema/send-job.schema.json`.

mod message;
mod validate;

pub use message::*;
pub use validate::{Violation, ViolationCode, file_violations, limits};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The contract version this build understands.
pub const JOB_VERSION: u32 = 1;

/// One message to send, as an event producer puts it on the send queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "SendJob", extend("$id" = "https://whatsapp-middleware/send-job.v1.json"))]
pub struct SendJob {
    /// Contract version; must be 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The producer's key for this job. A job with a key already seen is never sent twice.
    /// 1–200 visible ASCII characters; no spaces.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[!-~]+$"))]
    pub idempotency_key: String,
    /// Our business phone number to send from (Meta's phone-number id).
    #[schemars(regex(pattern = r"^[0-9]{1,32}$"))]
    pub phone_number_id: String,
    /// The user to send to.
    pub to: Recipient,
    /// The message, in the Graph API's shape.
    pub message: OutboundMessage,
    /// wamid of a message to reply to (shown quoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub reply_to: Option<String>,
    /// The recipient's identity key hash as the producer last saw it (`identity_key_hash` of an
    /// inbound message's contact, when the number checks identity changes): sent as
    /// `recipient_identity_key_hash`, so that Meta refuses the message (137000,
    /// `identity_key_mismatch`) if the user's identity key changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[!-~]+$"))]
    pub recipient_identity_key_hash: Option<String>,
    /// Do not send after this instant (RFC 3339); the job is then dead-lettered as expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
    /// Opaque key/value pairs echoed in the job's outcome event. Never sent to Meta.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub correlation: BTreeMap<String, String>,
}

/// Who receives the message: exactly one of a phone number (`wa_id`) or a business-scoped
/// user id (`user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipient {
    /// Phone number in international format, digits only, no `+` (E.164, 7–15 digits).
    WaId(#[schemars(regex(pattern = r"^[1-9][0-9]{6,14}$"))] String),
    /// Business-scoped user id, e.g. `US.13491208655302741918` or `US.ENT.1181...`.
    UserId(#[schemars(regex(pattern = r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$"))] String),
}

impl Recipient {
    /// The identifier as a string, whichever kind it is.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::WaId(s) | Recipient::UserId(s) => s,
        }
    }
}

/// Why a job was refused before any attempt to send it.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum JobRejection {
    /// The body is not JSON, or does not have the contract's shape.
    #[error("job is not valid JSON of the contract's shape: {detail}")]
    Malformed { detail: String },
    /// The body has the right shape but breaks one or more rules; all are listed.
    #[error("job breaks {} rule(s)", violations.len())]
    Invalid { violations: Vec<Violation> },
}

impl SendJob {
    /// Decodes and validates a job body. On failure, the rejection lists every violation.
    pub fn parse(body: &str) -> Result<SendJob, JobRejection> {
        let job: SendJob = serde_json::from_str(body).map_err(|e| JobRejection::Malformed {
            detail: e.to_string(),
        })?;
        let violations = job.violations();
        if violations.is_empty() {
            Ok(job)
        } else {
            Err(JobRejection::Invalid { violations })
        }
    }

    /// Every rule this job breaks (empty when valid).
    pub fn violations(&self) -> Vec<Violation> {
        validate::job(self)
    }
}

/// The JSON Schema of [`SendJob`], as committed in `shared/core/schema/send-job.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SendJob)).unwrap_or_default()
}
