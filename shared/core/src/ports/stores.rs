//! The stores: windows, idempotency records, consent, messages, templates, phone state, quarantine.

use std::future::Future;

use super::{StoreError, UserKey};

use crate::policy::{Consent, WindowState};
use crate::webhook::{
    AccountUpdate, ApiError, BusinessCapabilityUpdate, Conversation, PhoneNumberQualityUpdate,
    Pricing, StatusKind, TemplateCategoryUpdate, TemplateStatusUpdate,
};

/// The customer-service and free-entry-point windows, per user.
pub trait SessionStore: Send + Sync {
    /// The stored windows; the default (all closed) when the user never wrote.
    fn window(&self, key: &UserKey)
    -> impl Future<Output = Result<WindowState, StoreError>> + Send;

    /// The stored windows and, when the user's identity moved away from `key`, where to
    /// ([`crate::identity`]), in one read.
    fn window_record(
        &self,
        key: &UserKey,
    ) -> impl Future<Output = Result<WindowRecord, StoreError>> + Send {
        async move {
            Ok(WindowRecord {
                state: self.window(key).await?,
                moved_to: None,
            })
        }
    }

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

/// One identity change, as the stores apply it ([`crate::identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMove {
    pub phone_number_id: String,
    /// The user keys the state was kept under before (the previous business-scoped id, and
    /// the old phone number for state kept before Meta sent business-scoped ids), distinct
    /// and never equal to `to`.
    pub from: Vec<String>,
    /// The user key from now on: the new business-scoped id, else the new phone number.
    pub to: String,
    /// The user's phone number after the change, when Meta shared it.
    pub new_wa_id: Option<String>,
    /// The user's business-scoped id after the change, when Meta sent it.
    pub new_user_id: Option<String>,
    /// The previous business-scoped id, when Meta sent it: its phone-number aliases move.
    pub previous_user_id: Option<String>,
    /// When the change happened (the system message's timestamp).
    pub at: i64,
}

/// Where an old identity's state went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    /// The user key the state is kept under now.
    pub user: String,
    /// The phone number after the change, when known.
    pub wa_id: Option<String>,
    /// When the change happened.
    pub at: i64,
}

/// One user key's windows, and the identity they moved to if they did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowRecord {
    pub state: WindowState,
    pub moved_to: Option<Successor>,
}

/// Moves a user's state when their identity changes.
pub trait IdentityStore: Send + Sync {
    /// Merges the windows and consent kept under each of `m.from` into `m.to` and leaves on
    /// each old key a pointer to the new one, in one transaction: a reader sees the state
    /// before or after, never neither. Then points the user's phone-number aliases at the new
    /// business-scoped id. Idempotent; a move older than a pointer already there changes
    /// nothing on that key.
    fn move_identity(
        &self,
        m: &IdentityMove,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    /// `generation` names this use of the key: the owner token of the holder that created the
    /// record, kept by every takeover and new when the key is used again after its record
    /// expired. `None` for a record created before generations were stored.
    Started {
        previous: Option<PreviousHold>,
        generation: Option<String>,
    },
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
    /// Meta refused marketing to the user with 131049 (see [`Consent::marketing_held_at`]).
    MarketingHeld,
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
    /// The recipient as an earlier status named it (`recipient_user_id`, else `recipient_id`).
    pub recipient: Option<String>,
    /// Every status the message had and when (its webhook's timestamp, the first one seen of
    /// each), in time order (ties by rank): stale and out-of-order statuses included, which
    /// `status` skips.
    pub status_times: Vec<(StatusKind, i64)>,
}

/// The attribute that keeps when a message first had `status`; `None` for a status Meta may
/// add later (kept as the latest status only).
pub fn status_time_attribute(status: &StatusKind) -> Option<&'static str> {
    Some(match status {
        StatusKind::Sent => "at_sent",
        StatusKind::Delivered => "at_delivered",
        StatusKind::Read => "at_read",
        StatusKind::Played => "at_played",
        StatusKind::Failed => "at_failed",
        StatusKind::Deleted => "at_deleted",
        StatusKind::Other(_) => return None,
    })
}

/// A stored message's status times, read through `at` (attribute name → its value): every
/// status with a time, in time order, ties by rank. The one reading of them, for the store
/// and for operators.
pub fn status_times(at: impl Fn(&'static str) -> Option<i64>) -> Vec<(StatusKind, i64)> {
    let kinds = [
        StatusKind::Sent,
        StatusKind::Delivered,
        StatusKind::Read,
        StatusKind::Played,
        StatusKind::Failed,
        StatusKind::Deleted,
    ];
    let mut out: Vec<(StatusKind, i64)> = kinds
        .into_iter()
        .filter_map(|k| {
            let t = at(status_time_attribute(&k)?)?;
            Some((k, t))
        })
        .collect();
    out.sort_by_key(|(k, t)| (*t, crate::policy::status_rank(k)));
    out
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

    /// The wamid of a message from `phone_number_id` whose status webhooks echoed
    /// `callback_data` (`biz_opaque_callback_data`), if any arrived between `from` and `until`
    /// (epoch s: from the send attempt to now): how the sender learns whether a send whose
    /// outcome it never saw reached Meta.
    fn find_by_callback(
        &self,
        phone_number_id: &str,
        callback_data: &str,
        from: i64,
        until: i64,
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
