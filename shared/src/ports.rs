//! Narrow ports, one per capability. Handlers are generic over them; [`crate::adapters`] holds
//! the AWS and HTTP implementations and `fakes` (feature `fakes`) the in-memory ones.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::graph::{
    Classification, GraphErrorBody, MarkReadRequest, PhoneNumberInfo, SendMessageRequest,
    SendMessageResponse, classify, classify_transport,
};
use crate::policy::WindowState;

/// The three secrets of a deployment, from one Secrets Manager secret (JSON with keys
/// `app_secret`, `verify_token`, `access_token`). `Debug` never prints them.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Secrets {
    /// Meta app secret: keys `X-Hub-Signature-256`.
    pub app_secret: String,
    /// The token Meta echoes in the verification GET.
    pub verify_token: String,
    /// System-user access token for the Graph API.
    pub access_token: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

/// Why the secrets could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error("secret is not a JSON object with app_secret, verify_token and access_token")]
    Malformed,
    #[error("secret store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the secrets come from. Implementations cache; `refresh` bypasses the cache (after a
/// 190 from Meta, say).
pub trait SecretSource: Send + Sync {
    fn secrets(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
    fn refresh(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
}

/// A failure of a store. Always retryable from the caller's point of view: the data is fine,
/// the store was not reachable or refused the call.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed")]
pub struct StoreError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            operation,
            source: source.into(),
        }
    }
}

/// One user as seen by one business number: the key of windows and consent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    pub phone_number_id: String,
    /// The business-scoped user id when known, else the phone number.
    pub user: String,
}

/// The customer-service and free-entry-point windows, per user.
pub trait SessionStore: Send + Sync {
    /// The stored windows; the default (all closed) when the user never wrote.
    fn window(&self, key: &UserKey)
    -> impl Future<Output = Result<WindowState, StoreError>> + Send;

    /// Records a user message sent at `at`. Atomic and monotonic: an older message arriving late
    /// changes nothing. Returns the state after the write.
    fn record_inbound(
        &self,
        key: &UserKey,
        at: i64,
        has_referral: bool,
    ) -> impl Future<Output = Result<WindowState, StoreError>> + Send;

    /// Records that we replied at `at`, opening the free entry point window if this is the
    /// first reply within 24 h of the latest referral. Returns the state after the write.
    fn record_business_reply(
        &self,
        key: &UserKey,
        at: i64,
    ) -> impl Future<Output = Result<WindowState, StoreError>> + Send;
}

/// The outcome of claiming a dedupe key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// We are the first: do the work.
    First,
    /// Someone claimed it before (and the claim has not expired).
    Duplicate,
}

/// Atomic first-writer-wins claims, for exactly-once effects.
pub trait DedupeStore: Send + Sync {
    /// Claims `key` until `expires_at` (epoch seconds) in one conditional write. An expired claim
    /// still present in the table counts as absent.
    fn claim(
        &self,
        key: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
}

/// A failure to enqueue.
#[derive(Debug, thiserror::Error)]
#[error("enqueue failed")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A queue we publish to (inbound events, outcomes, retries).
pub trait MessageQueue: Send + Sync {
    /// Enqueues one message, optionally delayed (≤ 900 s), and returns its id.
    fn send(
        &self,
        body: &str,
        delay_seconds: Option<u32>,
    ) -> impl Future<Output = Result<String, QueueError>> + Send;
}

/// A Graph API call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GraphCallError {
    /// Meta answered with its error envelope.
    #[error("Graph API error {} (HTTP {status})", body.code)]
    Api { status: u16, body: GraphErrorBody },
    /// No answer in time. `after_send` is true when the request was fully written, so Meta may
    /// have accepted the message: the ambiguous case, never retried blindly.
    #[error("Graph API call timed out")]
    Timeout { after_send: bool },
    /// The connection failed before the request was sent.
    #[error("could not reach the Graph API")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An answer we could not read.
    #[error("unreadable Graph API response (HTTP {status})")]
    Decode { status: u16, detail: String },
}

impl GraphCallError {
    /// What to do about it, from the shared classification table.
    pub fn classification(&self) -> Classification {
        match self {
            GraphCallError::Api { status, body } => classify(body.code, Some(*status)),
            GraphCallError::Timeout { .. } | GraphCallError::Transport(_) => {
                classify_transport(0, None)
            }
            GraphCallError::Decode { status, .. } => classify_transport(0, Some(*status)),
        }
    }
}

/// The parts of the Graph API the middleware calls.
pub trait GraphApi: Send + Sync {
    fn send_message(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
    ) -> impl Future<Output = Result<SendMessageResponse, GraphCallError>> + Send;

    fn mark_read(
        &self,
        phone_number_id: &str,
        request: &MarkReadRequest,
        access_token: &str,
    ) -> impl Future<Output = Result<(), GraphCallError>> + Send;

    fn phone_number(
        &self,
        phone_number_id: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<PhoneNumberInfo, GraphCallError>> + Send;
}
