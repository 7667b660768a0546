//! One budget write for many new users: the reservations a sender instance asks for at the same
//! time (the jobs of one batch pass their gates together) are taken together, `k` slots of one
//! shard in one conditional update (group commit). The first caller for a portfolio leads: it
//! reserves for every caller waiting, then again for those who came while it wrote, until none
//! wait. A campaign's batch of 10 new users costs about two shard writes instead of ten.
//!
//! Nothing is reserved ahead of need, so nothing is held between invocations (a frozen
//! container holds no slots). When the shard has no room for the whole group, every caller is
//! told so and takes the per-user path (`budget.rs`), which tries the other shards; the
//! portfolio still refuses only when every shard is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{DynamoSendControl, n, s, update_conditionally};
use whatsapp_core::policy::{
    REACH_DAYS_KEPT, budget_key, day_attr, first_live_hour, hour_attr, reach_shard,
    reach_shard_limit,
};
use whatsapp_core::ports::StoreError;

/// A caller waiting for a slot: whether the group got one (`Some(shard)`), or the shard had no
/// room for the group (`None`).
type Answer = Result<Option<u32>, StoreError>;

struct Waiter {
    user: String,
    limit: u32,
    now: i64,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Group {
    waiting: Vec<Waiter>,
    /// The leader serving the group (a number no other leader had).
    leader: Option<u64>,
}

/// The groups of one sender instance, by portfolio.
#[derive(Default, Clone)]
pub(super) struct Groups(Arc<Mutex<HashMap<String, Group>>>);

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Groups")
    }
}

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The waiters to serve next; `None` (and the lead given up, under the same lock, so no
    /// waiter is left behind) when there are none.
    fn next_round(&self, portfolio: &str) -> Option<Vec<Waiter>> {
        let mut groups = self.lock();
        let group = groups.get_mut(portfolio)?;
        if group.waiting.is_empty() {
            groups.remove(portfolio);
            return None;
        }
        Some(std::mem::take(&mut group.waiting))
    }
}

/// The lead of one portfolio's group, given up when dropped.
struct Lead<'a> {
    groups: &'a Groups,
    portfolio: &'a str,
    id: u64,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        // After the last round `next_round` removed the group (and a later caller may lead a new
        // one); a leader dropped mid-way removes its own group here.
        let mut groups = self.groups.lock();
        if groups
            .get(self.portfolio)
            .is_some_and(|g| g.leader == Some(self.id))
        {
            groups.remove(self.portfolio);
        }
    }
}

impl DynamoSendControl {
    /// One slot for `user` from a group reservation, or `None` when the group's shard had no
    /// room for the group (the caller then takes the per-user path).
    pub(super) async fn group_slot(
        &self,
        portfolio_id: &str,
        user: &str,
        now: i64,
        limit: u32,
    ) -> Answer {
        static LEADERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (answer, rx) = oneshot::channel();
        let lead = {
            let mut groups = self.groups.lock();
            let group = groups.entry(portfolio_id.to_owned()).or_default();
            group.waiting.push(Waiter {
                user: user.to_owned(),
                limit,
                now,
                answer,
            });
            match group.leader {
                Some(_) => None,
                None => {
                    let id = LEADERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    group.leader = Some(id);
                    Some(id)
                }
            }
        };
        if let Some(id) = lead {
            // Should this future be dropped mid-way, the group goes with it: its waiters' answers
            // are dropped, which they see as an error (the job is retried), never as a hang.
            let _lead = Lead {
                groups: &self.groups,
                portfolio: portfolio_id,
                id,
            };
            while let Some(round) = self.groups.next_round(portfolio_id) {
                let limit = round.iter().map(|w| w.limit).min().unwrap_or(0);
                let now = round.iter().map(|w| w.now).max().unwrap_or(now);
                let shard = reach_shard(&round[0].user);
                let got = self
                    .reserve_in_shard(portfolio_id, shard, limit, round.len() as u32, now)
                    .await
                    .map(|taken| taken.then_some(shard));
                for w in round {
                    let answer = match &got {
                        Ok(v) => Ok(*v),
                        Err(e) => Err(StoreError::new(e.operation, e.source.to_string())),
                    };
                    let _ = w.answer.send(answer);
                }
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::new("control.budget_group", "leader gone")))
    }

    /// `k` slots of shard `shard` of a portfolio whose limit is `limit`, at once, if the shard
    /// has room for all of them (pruned first when its earliest hour has left the window);
    /// `false` otherwise. One conditional `UpdateItem`, no read first.
    pub(super) async fn reserve_in_shard(
        &self,
        portfolio_id: &str,
        shard: u32,
        limit: u32,
        k: u32,
        now: i64,
    ) -> Result<bool, StoreError> {
        let shard_limit = reach_shard_limit(limit, shard);
        if k == 0 || k > shard_limit {
            return Ok(false);
        }
        let pk = budget_key(portfolio_id, shard);
        let (hour, day) = (now.div_euclid(3600), now.div_euclid(86_400));
        let update = format!(
            "SET {h} = if_not_exists({h}, :zero) + :k, oldest = if_not_exists(oldest, :hour), \
             expires_at = :exp ADD used :k, {d} :k",
            h = hour_attr(hour),
            d = day_attr(day)
        );
        // Two rounds are enough (a prune makes the shard current); the third is for a prune
        // that raced another.
        for _ in 0..3 {
            let taken = update_conditionally(
                &self.client,
                &self.table,
                s(pk.clone()),
                "control.budget_reserve",
                &update,
                "(attribute_not_exists(used) OR used <= :room) \
                 AND (attribute_not_exists(oldest) OR oldest >= :live)",
                vec![
                    (":zero", n(0)),
                    (":k", n(i64::from(k))),
                    (":hour", n(hour)),
                    (":exp", n(now + (REACH_DAYS_KEPT + 1) * 86_400)),
                    (":room", n(i64::from(shard_limit - k))),
                    (":live", n(first_live_hour(now))),
                ],
            )
            .await?;
            if taken.applied {
                return Ok(true);
            }
            let seen = taken
                .item
                .as_ref()
                .map(super::budget_shard)
                .unwrap_or_default();
            match seen.prune(now) {
                None => return Ok(false),
                Some(p) => self.prune(&pk, &seen, &p).await?,
            }
        }
        Err(StoreError::new(
            "control.budget_reserve",
            "the shard kept changing while it was pruned",
        ))
    }
}
