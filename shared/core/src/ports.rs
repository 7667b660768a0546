//! Narrow ports, one per capability. Handlers are generic over them; the `whatsapp-aws` crate
//! holds the AWS and HTTP implementations and `whatsapp-fakes` the in-memory ones.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::graph::{
    Classification, GraphErrorBody, MarkReadRequest, PhoneNumberInfo, SendMessageRequest,
    SendMessageResponse, classify, classify_transport,
};
use crate::policy::{Consent, WindowState};
use crate::webhook::{
    AccountUpdate, ApiError, BusinessCapabilityUpdate, Conversation, PhoneNumberQualityUpdate,
    Pricing, StatusKind, TemplateCategoryUpdate, TemplateStatusUpdate,
};

/// The wall clock, read by each function's entry point once per invocation (library code takes
/// the time as a parameter, so tests choose it).
pub trait Clock: Send + Sync {
    /// Epoch milliseconds.
    fn now_ms(&self) -> i64;
}

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

/// What [`DedupeStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The record is ours: do the work, then `complete` (or `release` on failure).
    /// `previous` is set when we took over an in-progress record whose holder's lease ran out.
    Started { previous: Option<PreviousHold> },
    /// Someone else holds it and their in-progress lease runs until `until_ms`: retry later.
    InProgress { until_ms: i64 },
    /// The work was done; `result` is what `complete` stored.
    Completed { result: Option<String> },
    /// The key was used with a different payload: refuse (never replay another job's result).
    PayloadMismatch,
}

/// What the holder of an in-progress record left when its lease ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousHold {
    /// When the previous lease ended (epoch ms).
    pub held_until_ms: i64,
    /// What the previous holder wrote with [`DedupeStore::checkpoint`], if anything. `None`
    /// means it stopped without saying where it was (crash or timeout).
    pub checkpoint: Option<String>,
}

/// Atomic claims and idempotency records, for exactly-once effects (the semantics of
/// Powertools' idempotency utility: one conditional put takes the record; an in-progress record
/// expires with the holder's deadline; a completed one answers duplicates; the payload hash is
/// checked on every path).
pub trait DedupeStore: Send + Sync {
    /// Claims `key` until `expires_at` (epoch seconds) in one conditional write. An expired claim
    /// still present in the table counts as absent.
    fn claim(
        &self,
        key: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Takes the idempotency record `key` for a payload hashing to `payload_hash`, in progress
    /// until `in_progress_until_ms` (epoch ms: the holder's deadline); the record lives until
    /// `expires_at` (epoch s). `owner` is the taker's fencing token ([`crate::unique_token`]):
    /// from then on only writes that carry it change the record.
    fn begin(
        &self,
        key: &str,
        payload_hash: &str,
        owner: &str,
        now_ms: i64,
        in_progress_until_ms: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Begin, StoreError>> + Send;

    /// Keeps `key` in progress until `in_progress_until_ms` and leaves `checkpoint` for whoever
    /// takes it over next (a deferral, a retry after back-off). Taking a record over consumes
    /// its checkpoint, so a holder that crashes leaves none. Fenced: fails, changing nothing,
    /// unless `owner` still holds the record.
    fn checkpoint(
        &self,
        key: &str,
        owner: &str,
        in_progress_until_ms: i64,
        checkpoint: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks `key` done, storing `result` for duplicates. Fenced as [`DedupeStore::checkpoint`].
    fn complete(
        &self,
        key: &str,
        owner: &str,
        result: Option<&str>,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives `key` up after a failure so that a retry can take it. Fenced as
    /// [`DedupeStore::checkpoint`].
    fn release(
        &self,
        key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A change of a user's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentEvent {
    /// The user agreed to business-initiated messages (keyword or a producer's record).
    OptIn,
    /// The user withdrew consent (keyword such as STOP).
    OptOut,
    /// The user stopped marketing messages (`user_preferences` or error 131050).
    MarketingStop,
    /// The user resumed marketing messages.
    MarketingResume,
}

/// Consent records and the phone-number → business-scoped-id alias.
pub trait ContactStore: Send + Sync {
    /// Records `event` at `at`; monotonic: an older event arriving late changes nothing.
    fn record_consent(
        &self,
        key: &UserKey,
        event: ConsentEvent,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn consent(&self, key: &UserKey) -> impl Future<Output = Result<Consent, StoreError>> + Send;

    /// Remembers that `wa_id` is `user_id` for this business number.
    fn record_alias(
        &self,
        phone_number_id: &str,
        wa_id: &str,
        user_id: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The phone number last seen for the business-scoped id `user_id` (the alias read the
    /// other way), so that consent kept under the phone number is found for a job addressed by
    /// `user_id`. Strongly consistent, as [`ContactStore::resolve_alias`].
    fn phone_of(
        &self,
        phone_number_id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The business-scoped id known for `wa_id`, if any. Strongly consistent: an alias just
    /// recorded by the webhook is seen by the next send.
    fn resolve_alias(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// A status webhook, as the message store merges it.
#[derive(Debug, Clone, Copy)]
pub struct StatusUpdate<'a> {
    pub wamid: &'a str,
    /// The business account the webhook came for (`entry[].id`).
    pub waba_id: &'a str,
    pub phone_number_id: &'a str,
    pub status: &'a StatusKind,
    pub at: i64,
    pub recipient: Option<&'a str>,
    pub callback_data: Option<&'a str>,
    pub pricing: Option<&'a Pricing>,
    pub conversation: Option<&'a Conversation>,
    pub error: Option<&'a ApiError>,
}

/// What the message store holds about one outbound message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageRecord {
    pub status: Option<StatusKind>,
    pub status_at: Option<i64>,
    pub error_code: Option<i64>,
    pub pricing_category: Option<String>,
    pub pricing_type: Option<String>,
    pub pricing_model: Option<String>,
    /// `pricing.billable` (deprecated under PMP; what CBP conversations are charged by).
    pub billable: Option<bool>,
    /// The earliest timestamp among the statuses that carried pricing: the message's usage day.
    pub priced_at: Option<i64>,
    pub waba_id: Option<String>,
    pub conversation_id: Option<String>,
    pub callback_data: Option<String>,
}

/// Outbound messages and their delivery status.
pub trait MessageStore: Send + Sync {
    /// Merges a status monotonically (sent < delivered < read < failed); returns whether it
    /// changed the stored status. Pricing is kept from the status with the earliest timestamp
    /// among those that carry it, so the stored pricing and usage day do not depend on the
    /// order or number of deliveries (finance counts from them; see [`crate::usage`]).
    fn merge_status(
        &self,
        update: StatusUpdate<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn message(
        &self,
        wamid: &str,
    ) -> impl Future<Output = Result<Option<MessageRecord>, StoreError>> + Send;

    /// The wamid of a message whose status webhooks echoed `callback_data`
    /// (`biz_opaque_callback_data`), if any arrived: how the sender learns whether a send whose
    /// outcome it never saw reached Meta.
    fn find_by_callback(
        &self,
        callback_data: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

pub use crate::templates::{TemplateDefinition, TemplateRecord};

/// Templates as Meta reports them.
pub trait TemplateStore: Send + Sync {
    /// Records a status event observed at `at` (entry time); monotonic by `at`.
    fn record_status(
        &self,
        waba_id: &str,
        update: &TemplateStatusUpdate,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a category change observed at `at`; monotonic by `at`.
    fn record_category(
        &self,
        waba_id: &str,
        update: &TemplateCategoryUpdate,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> impl Future<Output = Result<Option<TemplateRecord>, StoreError>> + Send;

    /// Stores a template's definition (and the status and category known with it) as of `at`;
    /// monotonic by `at` against status webhooks.
    fn put_definition(
        &self,
        waba_id: &str,
        definition: &TemplateDefinition,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Appends an edit made at `at` to the template's edit history.
    fn record_edit(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Phone-number and account state as Meta's webhooks report it.
pub trait PhoneStateStore: Send + Sync {
    fn record_quality(
        &self,
        waba_id: &str,
        update: &PhoneNumberQualityUpdate,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn record_capability(
        &self,
        waba_id: &str,
        update: &BusinessCapabilityUpdate,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn record_account(
        &self,
        waba_id: &str,
        update: &AccountUpdate,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The stored attributes of one state item (`PN#<waba>#<display number>` or `WABA#<waba>`),
    /// as strings, for inspection and the poller.
    fn state(
        &self,
        pk: &str,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, String>, StoreError>> + Send;
}

/// Where bodies we cannot parse are kept for inspection.
pub trait Quarantine: Send + Sync {
    /// Stores `body` and returns where it went.
    fn keep(
        &self,
        body: &[u8],
        reason: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
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

    /// Enqueues up to ten messages in one call; one result per body, in order.
    fn send_batch(
        &self,
        bodies: &[String],
    ) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send {
        async move {
            let mut out = Vec::with_capacity(bodies.len());
            for b in bodies {
                out.push(self.send(b, None).await.map(|_| ()));
            }
            out
        }
    }
}

/// Puts a received queue message back for later: the sender's deferrals and back-offs.
pub trait Redelivery: Send + Sync {
    /// Makes the message with `receipt_handle` visible again in `seconds` (≤ 12 h from the
    /// receive: SQS refuses more).
    fn redeliver_in(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Puts a fresh copy of `body` on the queue, visible in `delay_seconds` (≤ 900): a new
    /// retention period and a receive count of zero, for a job that would otherwise outlive the
    /// queue's retention or reach its redrive count while it waits.
    fn requeue(
        &self,
        body: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Where jobs that cannot be sent go, with a machine-readable reason, for an operator.
pub trait DeadLetters: Send + Sync {
    /// Keeps `body` unchanged, with `reason` (a code) and `detail` beside it.
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
        detail: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// A business number's sending profile: where its templates live, whose messaging limit it
/// shares, and its throughput cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberProfile {
    pub phone_number_id: String,
    pub waba_id: String,
    /// The business portfolio whose messaging limit the number shares.
    pub portfolio_id: String,
    /// Messages per second (80 by default, 1,000 after an upgrade).
    pub mps: u32,
    pub tier: crate::policy::MessagingTier,
}

/// What the state table says about a number's limits (written by the quality poller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberLimits {
    pub mps: Option<u32>,
    pub tier: Option<crate::policy::MessagingTier>,
    /// Marketing is paused on this number (quality RED, status FLAGGED: the poller decides).
    pub marketing_paused: bool,
}

/// A number's health history: when (epoch ms) and what changed, oldest first.
pub type HealthHistory = Vec<(i64, Vec<crate::policy::HealthChange>)>;

/// What the quality poller keeps about a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberState {
    pub health: crate::policy::NumberHealth,
    pub marketing_paused: bool,
    /// When it was last polled (epoch s); 0 when it never was (only a back-off is known).
    pub polled_at: i64,
    /// Polling waits until then after a Graph rate limit (epoch s).
    pub backoff_until: Option<i64>,
}

/// The quality poller's records: current state (which also sets the limits the sender
/// enforces), an append-only history of changes, and our own reach counts for the projection.
pub trait NumberStateStore: Send + Sync {
    fn number_state(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Option<NumberState>, StoreError>> + Send;

    /// Stores the state, and with it the cap (`mps`), tier and marketing pause the sender reads.
    fn put_number_state(
        &self,
        phone_number_id: &str,
        state: &NumberState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Polling of this number waits until `until` (epoch s).
    fn set_backoff(
        &self,
        phone_number_id: &str,
        until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends the changes seen at `at_ms` (never overwritten, never expired).
    fn append_history(
        &self,
        phone_number_id: &str,
        at_ms: i64,
        changes: &[crate::policy::HealthChange],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The history, oldest first.
    fn history(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<HealthHistory, StoreError>> + Send;

    /// Users the portfolio reached outside a window over the 7 days ending with `now`'s day
    /// (daily counts summed: a user reached on two days counts twice, an upper bound).
    fn reached_7d(
        &self,
        portfolio_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Where alert events go (an SNS topic in production).
pub trait AlertSink: Send + Sync {
    fn publish(
        &self,
        subject: &str,
        event: &serde_json::Value,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

pub use crate::policy::Reach;

/// Shared, atomic counters that hold the sender's limits across every concurrent instance.
pub trait SendControl: Send + Sync {
    /// Adds `wanted` to throughput slot `slot` of a number and returns the count after the add.
    fn add_to_slot(
        &self,
        phone_number_id: &str,
        slot: i64,
        wanted: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes the pair-rate turn for `key` at `now_ms` if the last one is at least `gap_ms` old;
    /// otherwise returns when the next turn is free (epoch ms) and takes nothing.
    fn take_pair_turn(
        &self,
        key: &UserKey,
        now_ms: i64,
        gap_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Counts `user` against the portfolio's unique-user budget (`limit` per moving 24 h,
    /// `None` = unlimited), atomically with every other sender.
    fn reach(
        &self,
        portfolio_id: &str,
        user: &str,
        now: i64,
        limit: Option<u32>,
    ) -> impl Future<Output = Result<Reach, StoreError>> + Send;

    /// The limits the poller last stored for a number.
    fn number_limits(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<NumberLimits, StoreError>> + Send;
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

    /// [`GraphApi::send_message`], giving up after `timeout`: the time the caller has left for
    /// the call before it must commit. A call cut short after the request was written is
    /// [`GraphCallError::Timeout`] with `after_send`, the ambiguous case. Implementations that
    /// cannot bound a call may ignore `timeout`.
    fn send_message_within(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<SendMessageResponse, GraphCallError>> + Send {
        let _ = timeout;
        self.send_message(phone_number_id, request, access_token)
    }

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

/// The template endpoints of the Graph API (WhatsApp Business Management API).
pub trait TemplateApi: Send + Sync {
    /// `POST /{waba}/message_templates`.
    fn create_template(
        &self,
        waba_id: &str,
        template: &crate::templates::TemplateSubmission,
        access_token: &str,
    ) -> impl Future<Output = Result<crate::templates::CreatedTemplate, GraphCallError>> + Send;

    /// `POST /{template-id}` with the new `components` (and `category`, unless approved).
    fn edit_template(
        &self,
        template_id: &str,
        edit: &serde_json::Value,
        access_token: &str,
    ) -> impl Future<Output = Result<(), GraphCallError>> + Send;

    /// `DELETE /{waba}/message_templates?name=` (every language of that name).
    fn delete_template(
        &self,
        waba_id: &str,
        name: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<(), GraphCallError>> + Send;

    /// One page of `GET /{waba}/message_templates`, after cursor `after`.
    fn list_templates(
        &self,
        waba_id: &str,
        after: Option<&str>,
        access_token: &str,
    ) -> impl Future<Output = Result<crate::templates::TemplatePage, GraphCallError>> + Send;
}
