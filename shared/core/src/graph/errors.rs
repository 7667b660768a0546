//! Meta's error envelope and what to do about each documented error code.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `{"error": {...}}` as returned by the Graph API on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorEnvelope {
    pub error: GraphErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<GraphErrorData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// How to treat a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: retry after a short back-off.
    Retry,
    /// Will pass, but not soon: reschedule after a long delay.
    WaitAndRetry,
    /// Retrying the same message cannot succeed.
    Terminal,
}

/// A side effect the caller should apply besides retrying or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    None,
    /// Re-read the access token from the secret store, then retry once.
    RefreshToken,
    /// Only this recipient is rate limited (pair rate): keep others flowing.
    BackOffRecipient,
    /// Lower this number's send rate.
    ThrottleNumber,
    /// The user stopped marketing messages: record the opt-out.
    RecordMarketingOptOut,
    /// The service window is closed: only a template can reach the user.
    RequireTemplate,
    /// Our template copy is stale or the template changed state: resync it.
    ResyncTemplate,
    /// The recipient cannot receive WhatsApp messages.
    MarkUndeliverable,
    /// Stop sending from this number until an operator looks.
    PauseNumber,
    /// Meta holds marketing to this user (131049, enforced per account): no marketing template
    /// to them from any job until the wait has passed.
    HoldUserMarketing,
    /// The message cannot go to a business-scoped user id (131062: one-tap, zero-tap and
    /// copy-code authentication templates): send it to the user's phone number if we know it.
    SendToPhoneNumber,
    /// Marketing templates are disabled on the Cloud API for this account (131063): they go
    /// through the Marketing Messages API, where the number's setting allows.
    UseMarketingMessages,
    /// A listing's paging cursor is no longer valid (131059): list again from the start.
    RestartListing,
}

/// The verdict for one error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub code: i64,
    pub class: ErrorClass,
    /// Minimum wait before the next attempt (zero for terminal errors).
    #[serde(with = "secs")]
    pub retry_after: Duration,
    /// How many attempts in all make sense (`None`: until the queue's redrive limit).
    pub max_attempts: Option<u8>,
    /// Whether an operator should be alerted.
    pub alert: bool,
    pub action: ErrorAction,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

struct Rule {
    codes: (i64, i64),
    class: ErrorClass,
    retry_after_s: u64,
    max_attempts: Option<u8>,
    alert: bool,
    action: ErrorAction,
}

const fn rule(
    lo: i64,
    hi: i64,
    class: ErrorClass,
    retry_after_s: u64,
    max_attempts: Option<u8>,
    alert: bool,
    action: ErrorAction,
) -> Rule {
    Rule {
        codes: (lo, hi),
        class,
        retry_after_s,
        max_attempts,
        alert,
        action,
    }
}

use ErrorAction as A;
use ErrorClass::{Retry as R, Terminal as P, WaitAndRetry as W};

/// Every code in the reference (§1d), as data. Order matters only for overlapping ranges: the
/// first match wins.
const RULES: &[Rule] = &[
    rule(0, 0, P, 0, None, true, A::RefreshToken),
    rule(190, 190, P, 0, None, true, A::RefreshToken),
    rule(1, 2, R, 5, None, false, A::None),
    rule(3, 3, P, 0, None, true, A::None),
    rule(4, 4, R, 120, None, false, A::ThrottleNumber),
    rule(10, 10, P, 0, None, true, A::None),
    rule(100, 100, P, 0, None, false, A::None),
    rule(200, 299, P, 0, None, true, A::None),
    rule(368, 368, W, 3600, None, true, A::PauseNumber),
    rule(80007, 80007, R, 120, None, false, A::ThrottleNumber),
    rule(130429, 130429, R, 1, None, false, A::ThrottleNumber),
    rule(131000, 131000, R, 5, None, false, A::None),
    rule(131008, 131009, P, 0, None, false, A::None),
    rule(131016, 131016, R, 5, None, false, A::None),
    rule(131021, 131021, P, 0, None, false, A::None),
    rule(130472, 130472, P, 0, None, false, A::None),
    rule(130497, 130497, P, 0, None, false, A::None),
    rule(131026, 131026, P, 0, None, false, A::MarkUndeliverable),
    rule(131030, 131030, P, 0, None, false, A::None),
    rule(131031, 131031, P, 0, None, true, A::PauseNumber),
    rule(131037, 131037, P, 0, None, true, A::PauseNumber),
    rule(131042, 131042, P, 0, None, true, A::PauseNumber),
    rule(131045, 131045, P, 0, None, true, A::PauseNumber),
    rule(131047, 131047, P, 0, None, false, A::RequireTemplate),
    rule(131048, 131048, W, 3600, None, true, A::PauseNumber),
    rule(
        131049,
        131049,
        W,
        24 * 3600,
        None,
        false,
        A::HoldUserMarketing,
    ),
    rule(131050, 131050, P, 0, None, false, A::RecordMarketingOptOut),
    rule(131051, 131051, P, 0, None, false, A::None),
    rule(131052, 131053, R, 10, Some(2), false, A::None),
    rule(131056, 131056, R, 6, None, false, A::BackOffRecipient),
    rule(131057, 131057, R, 60, None, false, A::None),
    rule(131059, 131059, R, 0, Some(3), false, A::RestartListing),
    // An inbound error (the first message to a coexistence number): never a send's answer.
    rule(131060, 131060, P, 0, None, false, A::None),
    rule(131062, 131062, P, 0, None, false, A::SendToPhoneNumber),
    rule(131063, 131063, P, 0, None, true, A::UseMarketingMessages),
    // Lifted after an enforcement period of hours: wait, never retry fast.
    rule(131064, 131064, W, 6 * 3600, None, true, A::None),
    rule(132000, 132001, P, 0, None, false, A::ResyncTemplate),
    rule(132005, 132005, P, 0, None, false, A::None),
    rule(132007, 132008, P, 0, None, false, A::None),
    rule(132012, 132012, P, 0, None, false, A::None),
    rule(132015, 132015, W, 3 * 3600, None, true, A::ResyncTemplate),
    rule(132016, 132016, P, 0, None, true, A::ResyncTemplate),
    rule(132018, 132018, P, 0, None, false, A::None),
    rule(132068, 132069, W, 3600, None, false, A::None),
    rule(135000, 135000, R, 5, Some(2), false, A::None),
    rule(137000, 137000, P, 0, None, false, A::None),
];

/// The codes the table knows, for tests and documentation.
pub fn known_codes() -> impl Iterator<Item = (i64, i64)> {
    RULES.iter().map(|r| r.codes)
}

impl Classification {
    /// The machine-readable reason a job refused by Meta with this error fails with.
    pub fn reason(&self) -> &'static str {
        match (self.action, self.code) {
            (ErrorAction::RequireTemplate, _) => "window_closed",
            (ErrorAction::RecordMarketingOptOut, _) => "marketing_opt_out",
            (ErrorAction::MarkUndeliverable, _) => "undeliverable",
            (ErrorAction::ResyncTemplate, _) => "template_refused",
            (ErrorAction::RefreshToken, _) => "access_token_invalid",
            (ErrorAction::SendToPhoneNumber, _) => "bsuid_not_supported",
            (ErrorAction::UseMarketingMessages, _) => "marketing_messages_required",
            (_, 130472) => "experiment_group",
            (_, 130497) => "country_restricted",
            (_, 131037) => "display_name_not_approved",
            (_, 137000) => "identity_key_mismatch",
            _ => "graph_error",
        }
    }
}

/// What to do about error `code`. An unknown code falls back on the HTTP status: 429 and 5xx
/// are retried, anything else is terminal (a payload Meta refuses will not pass on retry).
pub fn classify(code: i64, http_status: Option<u16>) -> Classification {
    if let Some(r) = RULES
        .iter()
        .find(|r| r.codes.0 <= code && code <= r.codes.1)
    {
        return Classification {
            code,
            class: r.class,
            retry_after: Duration::from_secs(r.retry_after_s),
            max_attempts: r.max_attempts,
            alert: r.alert,
            action: r.action,
        };
    }
    classify_transport(code, http_status)
}

/// The verdict when there is no Meta error code: a transport failure (`http_status` `None`) or
/// an HTTP status with a body we could not read.
pub fn classify_transport(code: i64, http_status: Option<u16>) -> Classification {
    let retryable = match http_status {
        None => true,
        Some(s) => s == 429 || s >= 500,
    };
    Classification {
        code,
        class: if retryable { R } else { P },
        retry_after: Duration::from_secs(if retryable { 5 } else { 0 }),
        max_attempts: None,
        alert: !retryable,
        action: A::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_reference() {
        let cases: &[(i64, ErrorClass, ErrorAction)] = &[
            (190, P, A::RefreshToken),
            (4, R, A::ThrottleNumber),
            (80007, R, A::ThrottleNumber),
            (130429, R, A::ThrottleNumber),
            (131056, R, A::BackOffRecipient),
            (131048, W, A::PauseNumber),
            (131049, W, A::HoldUserMarketing),
            (131062, P, A::SendToPhoneNumber),
            (131063, P, A::UseMarketingMessages),
            (131064, W, A::None),
            (131060, P, A::None),
            (131059, R, A::RestartListing),
            (130497, P, A::None),
            (130472, P, A::None),
            (131037, P, A::PauseNumber),
            (137000, P, A::None),
            (131050, P, A::RecordMarketingOptOut),
            (131047, P, A::RequireTemplate),
            (131026, P, A::MarkUndeliverable),
            (131000, R, A::None),
            (2, R, A::None),
            (131057, R, A::None),
            (100, P, A::None),
            (250, P, A::None),
            (368, W, A::PauseNumber),
            (132000, P, A::ResyncTemplate),
            (132001, P, A::ResyncTemplate),
            (132015, W, A::ResyncTemplate),
            (132016, P, A::ResyncTemplate),
            (132018, P, A::None),
            (132069, W, A::None),
            (135000, R, A::None),
        ];
        for &(code, class, action) in cases {
            let c = classify(code, Some(400));
            assert_eq!((c.class, c.action), (class, action), "code {code}");
        }
        assert_eq!(classify(131056, None).retry_after, Duration::from_secs(6));
        assert_eq!(
            classify(131049, None).retry_after,
            Duration::from_secs(86_400)
        );
        // 131064 lifts after hours: never a fast retry, and an operator hears of it.
        let c = classify(131064, Some(400));
        assert!(c.retry_after >= Duration::from_secs(3_600) && c.alert);
        assert!(classify(131063, Some(400)).alert && classify(131037, Some(400)).alert);
    }

    #[test]
    fn each_terminal_2026_code_fails_with_its_own_reason() {
        for (code, reason) in [
            (131062, "bsuid_not_supported"),
            (131063, "marketing_messages_required"),
            (130497, "country_restricted"),
            (130472, "experiment_group"),
            (131037, "display_name_not_approved"),
            (137000, "identity_key_mismatch"),
            (131047, "window_closed"),
            (131021, "graph_error"),
        ] {
            assert_eq!(classify(code, Some(400)).reason(), reason, "code {code}");
        }
    }

    #[test]
    fn unknown_codes_fall_back_on_http_status() {
        assert_eq!(classify(999_999, Some(503)).class, R);
        assert_eq!(classify(999_999, Some(429)).class, R);
        assert_eq!(classify(999_999, Some(400)).class, P);
        assert_eq!(classify_transport(0, None).class, R);
    }

    #[test]
    fn no_two_rules_overlap() {
        let mut ranges: Vec<(i64, i64)> = known_codes().collect();
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 < w[1].0, "{:?} overlaps {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn error_envelope_parses_metas_shape() {
        let body = r#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException",
            "code":131047,"error_data":{"messaging_product":"whatsapp","details":"more than 24 hours"},
            "error_subcode":0,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
        let e: GraphErrorEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(e.error.code, 131047);
        assert_eq!(e.error.error_subcode, Some(0));
        assert_eq!(
            e.error.error_data.unwrap().details.as_deref(),
            Some("more than 24 hours")
        );
        assert_eq!(
            e.error.fbtrace_id.as_deref(),
            Some("Az8or2yhqkZfEZ-_4Qn_Bam")
        );
    }
}
