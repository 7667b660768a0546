//! The sender's shared limits and the quality poller's records.

use std::future::Future;

use super::{QueueError, StoreError, UserKey};

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
/// A pair-rate turn, as [`SendControl::take_pair_turn`] gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Send now.
    Now,
    /// The turn starting at `at_ms` (epoch ms) is ours; use it within
    /// [`crate::policy::PAIR_TURN_WINDOW_MS`] of its start.
    Reserved { at_ms: i64 },
}

pub trait SendControl: Send + Sync {
    /// Adds `wanted` to shard `shard` of throughput slot `slot` of a number and returns the
    /// count after the add ([`crate::policy::slot_shards`]).
    fn add_to_slot(
        &self,
        phone_number_id: &str,
        slot: i64,
        shard: u32,
        wanted: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes the pair-rate turn for `key` at `now_ms` if it is free, or reserves the next free
    /// one ([`crate::policy::pair_turn`]), atomically with every other sender.
    fn take_pair_turn(
        &self,
        key: &UserKey,
        now_ms: i64,
        gap_ms: i64,
    ) -> impl Future<Output = Result<Turn, StoreError>> + Send;

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
