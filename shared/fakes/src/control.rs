//! The sender's shared counters and the poller's records in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use whatsapp_core::policy::{PairTurn, pair_turn};
use whatsapp_core::ports::{QueueError, StoreError, Turn, UserKey};

use crate::lock;

/// The send-control counters in memory, with the adapter's contracts (slots add then grant; a
/// pair turn is taken only when free; the reach budget counts unique users per moving day).
#[derive(Debug, Default)]
pub struct MemorySendControl {
    /// (number, slot, shard) → sends added.
    pub slots: Mutex<HashMap<(String, i64, u32), u64>>,
    pub pairs: Mutex<HashMap<UserKey, i64>>,
    pub reached: Mutex<HashMap<(String, String), i64>>,
    pub budgets: Mutex<HashMap<String, whatsapp_core::policy::ReachBudget>>,
    pub limits: Mutex<HashMap<String, whatsapp_core::ports::NumberLimits>>,
    pub states: Mutex<HashMap<String, whatsapp_core::ports::NumberState>>,
    pub histories: Mutex<HashMap<String, whatsapp_core::ports::HealthHistory>>,
    /// Portfolio → day → users first reached that day.
    pub days: Mutex<HashMap<(String, i64), u64>>,
    /// Makes `number_limits` fail (the table unreachable).
    pub fail_limits: std::sync::atomic::AtomicBool,
}

impl whatsapp_core::ports::NumberStateStore for MemorySendControl {
    async fn number_state(
        &self,
        phone: &str,
    ) -> Result<Option<whatsapp_core::ports::NumberState>, StoreError> {
        Ok(lock(&self.states).get(phone).cloned())
    }

    async fn put_number_state(
        &self,
        phone: &str,
        st: &whatsapp_core::ports::NumberState,
    ) -> Result<(), StoreError> {
        let mut st = st.clone();
        st.backoff_until = None;
        lock(&self.limits).insert(
            phone.to_owned(),
            whatsapp_core::ports::NumberLimits {
                mps: Some(st.health.mps()),
                tier: Some(st.health.messaging_tier()),
                marketing_paused: st.marketing_paused,
            },
        );
        lock(&self.states).insert(phone.to_owned(), st);
        Ok(())
    }

    async fn set_backoff(&self, phone: &str, until: i64) -> Result<(), StoreError> {
        lock(&self.states)
            .entry(phone.to_owned())
            .or_insert_with(|| whatsapp_core::ports::NumberState {
                health: whatsapp_core::policy::NumberHealth::default(),
                marketing_paused: false,
                polled_at: 0,
                backoff_until: None,
            })
            .backoff_until = Some(until);
        Ok(())
    }

    async fn append_history(
        &self,
        phone: &str,
        at_ms: i64,
        changes: &[whatsapp_core::policy::HealthChange],
    ) -> Result<(), StoreError> {
        lock(&self.histories)
            .entry(phone.to_owned())
            .or_default()
            .push((at_ms, changes.to_vec()));
        Ok(())
    }

    async fn history(
        &self,
        phone: &str,
    ) -> Result<whatsapp_core::ports::HealthHistory, StoreError> {
        Ok(lock(&self.histories)
            .get(phone)
            .cloned()
            .unwrap_or_default())
    }

    async fn reached_7d(&self, portfolio: &str, now: i64) -> Result<u64, StoreError> {
        let last = now.div_euclid(86_400);
        let days = lock(&self.days);
        Ok((last - 6..=last)
            .filter_map(|d| days.get(&(portfolio.to_owned(), d)))
            .sum())
    }
}

/// Keeps published alerts in memory.
#[derive(Debug, Default)]
pub struct MemoryAlerts {
    pub published: Mutex<Vec<(String, serde_json::Value)>>,
}

impl whatsapp_core::ports::AlertSink for MemoryAlerts {
    async fn publish(&self, subject: &str, event: &serde_json::Value) -> Result<(), QueueError> {
        lock(&self.published).push((subject.to_owned(), event.clone()));
        Ok(())
    }
}

impl whatsapp_core::ports::SendControl for MemorySendControl {
    async fn add_to_slot(
        &self,
        phone: &str,
        slot: i64,
        shard: u32,
        wanted: u32,
    ) -> Result<u64, StoreError> {
        let mut slots = lock(&self.slots);
        let c = slots.entry((phone.to_owned(), slot, shard)).or_default();
        *c += u64::from(wanted);
        Ok(*c)
    }

    async fn take_pair_turn(
        &self,
        key: &UserKey,
        now_ms: i64,
        gap_ms: i64,
    ) -> Result<Turn, StoreError> {
        let mut pairs = lock(&self.pairs);
        match pair_turn(pairs.get(key).copied(), now_ms, gap_ms) {
            PairTurn::Reserve { at_ms, next_at_ms } => {
                pairs.insert(key.clone(), next_at_ms);
                Ok(Turn::Reserved { at_ms })
            }
            PairTurn::Take { next_at_ms } => {
                pairs.insert(key.clone(), next_at_ms);
                Ok(Turn::Now)
            }
        }
    }

    async fn reach(
        &self,
        portfolio: &str,
        user: &str,
        now: i64,
        limit: Option<u32>,
    ) -> Result<whatsapp_core::ports::Reach, StoreError> {
        use whatsapp_core::ports::Reach;
        if limit.is_none() {
            return Ok(Reach::AlreadyCounted);
        }
        let mut reached = lock(&self.reached);
        let key = (portfolio.to_owned(), user.to_owned());
        if whatsapp_core::policy::reach_counted(reached.get(&key).copied(), now) {
            return Ok(Reach::AlreadyCounted);
        }
        let mut budgets = lock(&self.budgets);
        let budget = budgets.remove(portfolio).unwrap_or_default();
        match budget.clone().reserve(now, limit) {
            Ok(b) => {
                budgets.insert(portfolio.to_owned(), b);
                reached.insert(key, now);
                *lock(&self.days)
                    .entry((portfolio.to_owned(), now.div_euclid(86_400)))
                    .or_default() += 1;
                Ok(Reach::Reserved)
            }
            Err(refused) => {
                budgets.insert(portfolio.to_owned(), budget);
                Ok(Reach::Refused(refused))
            }
        }
    }

    async fn number_limits(
        &self,
        phone: &str,
    ) -> Result<whatsapp_core::ports::NumberLimits, StoreError> {
        if self.fail_limits.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new("control.number_limits", "unreachable"));
        }
        Ok(lock(&self.limits).get(phone).cloned().unwrap_or_default())
    }
}
