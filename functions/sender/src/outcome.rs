//! The outcome event: the one verdict of every job, published on the outcomes queue for the
//! producer. Its JSON shape is documented in the README.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use whatsapp_core::gates::Refusal;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Meta accepted the message; `wamid` identifies it in status webhooks.
    Accepted,
    /// We refused the job before calling Meta; `reason` says why.
    Rejected,
    /// Meta refused the message, or retries ran out; `error` has Meta's error.
    Failed,
}

/// Meta's error, as the outcome reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeError {
    /// Meta's numeric code (0 for transport failures).
    pub code: i64,
    /// Meta's message, or what went wrong on the way.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// `retry`, `wait_and_retry` or `terminal`, from the shared classification table.
    pub class: String,
}

/// One job's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Outcome schema version: 1.
    pub version: u32,
    pub outcome: Verdict,
    /// The job's key (absent only when the job was too malformed to have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    /// Meta's `message_status` (`accepted`, `held_for_quality_assessment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
    /// Machine-readable reason of a rejection or failure (see the README's table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail; never message text or phone numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every rule an invalid job broke, or every template-parameter mismatch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OutcomeError>,
    /// Failed attempts before this outcome.
    pub attempts: u32,
    /// Whether the wamid was learnt from status webhooks after a send whose response was lost.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconciled: bool,
    /// This verdict is about a body that does not own the `(phone_number_id, idempotency_key)`
    /// it names: a malformed or invalid body, or a different payload under a key already used.
    /// The key's own job has, or will have, its own verdict; a producer keyed on the pair must
    /// not take this one for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
    /// The producer's correlation pairs, echoed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub correlation: BTreeMap<String, String>,
    /// When the verdict was reached (epoch ms).
    pub decided_at_ms: i64,
}

impl Outcome {
    pub fn new(outcome: Verdict, decided_at_ms: i64) -> Self {
        Outcome {
            version: 1,
            outcome,
            idempotency_key: None,
            phone_number_id: None,
            wamid: None,
            message_status: None,
            reason: None,
            detail: None,
            violations: Vec::new(),
            error: None,
            attempts: 0,
            reconciled: false,
            foreign: false,
            correlation: BTreeMap::new(),
            decided_at_ms,
        }
    }

    pub fn rejected(reason: &str, detail: impl Into<String>, at_ms: i64) -> Self {
        Outcome {
            reason: Some(reason.to_owned()),
            detail: Some(detail.into()),
            ..Outcome::new(Verdict::Rejected, at_ms)
        }
    }

    /// The outcome of a job the gates refused.
    pub fn refused(refusal: &Refusal, at_ms: i64) -> Self {
        let mut o = Outcome::rejected(refusal.reason(), refusal.detail(), at_ms);
        if let Refusal::TemplateParameters { problems, .. } = refusal {
            o.violations = problems
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect();
        }
        o
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
