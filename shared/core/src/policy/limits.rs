//! The arithmetic of the sender's rate and quota limits, kept pure so that the DynamoDB adapter
//! only stores what these functions decide.

use std::collections::BTreeMap;

/// Width of one throughput slot. A number's cap is spread over slots of this width, so that any
/// interval of `t` ms holds at most `cap × t / 1000 + slot capacity` sends: well inside the token
/// bucket Meta (and our simulator) measures, whose burst is a whole second's worth.
pub const THROUGHPUT_SLOT_MS: i64 = 100;

/// How many sends throughput slot `slot` admits for a number capped at `mps` messages per
/// second: the cap spread exactly over the second's slots (80 → 8 each; 85 → 8 or 9; 5 → 1 in
/// every other slot), so no second ever admits more than `mps`.
pub fn slot_capacity(mps: u32, slot: i64) -> u32 {
    let per_second = 1000 / THROUGHPUT_SLOT_MS;
    let upto = |k: i64| (i128::from(mps) * i128::from(k)).div_euclid(i128::from(per_second));
    u32::try_from(upto(slot + 1) - upto(slot)).unwrap_or(0)
}

/// The most writes one throughput-slot key may take in a second. A DynamoDB partition takes
/// at most 1,000 writes/s and one item is never split (reliability §9); 300 is the bound we
/// hold every key to, and 250 leaves a margin.
pub const SLOT_KEY_WRITES_PER_S: u32 = 250;

/// How many keys one throughput slot of a number capped at `mps` is spread over: enough that
/// no key takes more than [`SLOT_KEY_WRITES_PER_S`] writes a second even when every message is a
/// write of its own (a trickle: batches of one). 1 up to 250 msg/s (one write per slot, as
/// before), 4 at 1,000.
pub fn slot_shards(mps: u32) -> u32 {
    mps.div_ceil(SLOT_KEY_WRITES_PER_S).max(1)
}

/// Shard `shard`'s part of a slot's `capacity`, spread exactly: the parts of the `shards`
/// shards sum to the capacity, so the slot never admits more than it would unsharded.
pub fn shard_capacity(capacity: u32, shard: u32, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    let upto = |k: u64| u64::from(capacity) * k / shards;
    u32::try_from(upto(u64::from(shard) + 1) - upto(u64::from(shard))).unwrap_or(0)
}

/// The slot that contains `now_ms`.
pub fn slot_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(THROUGHPUT_SLOT_MS)
}

/// How many of `wanted` sends a slot grants, given its counter *after* our atomic add of
/// `wanted` (`count_after`) and its capacity. Concurrent senders each add first and then take
/// what fitted before them, so the slot never admits more than `capacity` in all.
pub fn granted(count_after: u64, wanted: u32, capacity: u32) -> u32 {
    let before = count_after.saturating_sub(u64::from(wanted));
    let room = u64::from(capacity).saturating_sub(before);
    u32::try_from(room.min(u64::from(wanted))).unwrap_or(0)
}

/// Hourly buckets of the unique users a portfolio reached outside a service window: the moving
/// 24 h of the messaging limit. A bucket leaves the count 24 h after the *end* of its hour, so a
/// reach stops counting at most one hour late, never early.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReachBudget {
    /// Hour (epoch s / 3600) → users first reached in it.
    pub buckets: BTreeMap<i64, u32>,
}

/// Hours a reach stays counted.
pub const REACH_HOURS: i64 = 24;

/// Whether a user reached at `reached_at` still counts against the budget at `now`: within
/// the moving 24 h, so a new message to them takes no new slot.
pub fn reach_counted(reached_at: Option<i64>, now: i64) -> bool {
    reached_at.is_some_and(|at| at > now - REACH_HOURS * 3600)
}

impl ReachBudget {
    /// Drops the hours every reach of which is more than 24 h old at `now` (epoch s): hour `h`
    /// holds reaches up to `(h + 1) × 3600`, so it stays until `(h + 1 + 24) × 3600`.
    pub fn pruned(mut self, now: i64) -> Self {
        let oldest = now.div_euclid(3600) - REACH_HOURS;
        self.buckets.retain(|&h, _| h >= oldest);
        self
    }

    /// Users reached in the window.
    pub fn used(&self) -> u64 {
        self.buckets.values().map(|&v| u64::from(v)).sum()
    }

    /// Counts one more user at `now`; `None` when `limit` is already used up.
    pub fn reserve(self, now: i64, limit: Option<u32>) -> Result<Self, ReachRefused> {
        let mut b = self.pruned(now);
        if let Some(limit) = limit
            && b.used() >= u64::from(limit)
        {
            // The earliest hour to leave the window frees room.
            let first = b
                .buckets
                .keys()
                .next()
                .copied()
                .unwrap_or(now.div_euclid(3600));
            return Err(ReachRefused {
                limit,
                retry_at: (first + 1 + REACH_HOURS) * 3600,
            });
        }
        *b.buckets.entry(now.div_euclid(3600)).or_default() += 1;
        Ok(b)
    }
}

/// The portfolio's messaging limit is used up until `retry_at` (epoch s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("messaging limit of {limit} unique users per 24 h reached")]
pub struct ReachRefused {
    pub limit: u32,
    pub retry_at: i64,
}

/// The result of asking to reach a user outside a service window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The user was already reached within the moving 24 h: no new slot needed.
    AlreadyCounted,
    /// A slot of the portfolio's budget was taken for this user.
    Reserved,
    /// The budget is used up.
    Refused(ReachRefused),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_spread_the_cap() {
        let second = |mps| {
            (0..10)
                .map(|k| slot_capacity(mps, 170 + k))
                .collect::<Vec<_>>()
        };
        assert_eq!(second(80), [8; 10]);
        assert_eq!(second(1_000), [100; 10]);
        assert_eq!(second(5), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        assert_eq!(second(85).iter().sum::<u32>(), 85);
    }

    proptest! {
        /// However concurrent adds interleave, the grants of one slot sum to at most its capacity
        /// and to exactly min(capacity, total wanted).
        #[test]
        fn grants_never_exceed_capacity(wants in proptest::collection::vec(1u32..20, 1..30), cap in 1u32..50) {
            let mut count = 0u64;
            let mut total = 0u32;
            for w in &wants {
                count += u64::from(*w);
                total += granted(count, *w, cap);
            }
            let wanted: u32 = wants.iter().sum();
            prop_assert_eq!(total, cap.min(wanted));
        }

        /// Any interval of `len` ms holds at most cap × len / 1000 plus one slot's worth, so
        /// slotted sends fit a token bucket whose burst is a second's worth.
        #[test]
        fn slotted_sends_fit_a_one_second_bucket(mps in 1u32..2000, start in 0i64..100_000, len in 1i64..5000) {
            let most: u64 = (slot_of(start)..=slot_of(start + len - 1))
                .map(|k| u64::from(slot_capacity(mps, k)))
                .sum();
            let bucket = u64::from(mps) + u64::from(mps) * len as u64 / 1000;
            prop_assert!(most <= bucket, "{most} > {bucket}");
        }
    }

    #[test]
    fn reach_budget_counts_a_moving_day() {
        let t0 = 1_790_812_800;
        let mut b = ReachBudget::default();
        for i in 0..3 {
            b = b.reserve(t0 + i * 3600, Some(3)).unwrap();
        }
        let refused = b.clone().reserve(t0 + 3 * 3600, Some(3)).unwrap_err();
        assert_eq!(refused.retry_at, t0 + 25 * 3600);
        // A day after the end of the first reach's hour, that hour leaves the window.
        let b = b.reserve(t0 + 25 * 3600, Some(3)).unwrap();
        assert_eq!(b.used(), 3);
        assert!(ReachBudget::default().reserve(t0, None).is_ok());
    }

    #[test]
    fn a_reach_in_the_middle_of_an_hour_is_never_freed_early() {
        let t0 = 1_790_812_800; // 00:00
        let reached = t0 + 45 * 60; // 00:45
        let b = ReachBudget::default().reserve(reached, Some(1)).unwrap();
        // 00:00 the next day is 23 h 15 min after the reach: the slot is still taken.
        let refused = b.clone().reserve(t0 + 24 * 3600, Some(1)).unwrap_err();
        assert!(
            refused.retry_at >= reached + 24 * 3600,
            "{}",
            refused.retry_at
        );
        assert!(b.clone().reserve(reached + 24 * 3600 - 1, Some(1)).is_err());
        // At most an hour late.
        assert!(b.reserve(refused.retry_at, Some(1)).is_ok());
        assert!(refused.retry_at <= reached + 25 * 3600);
        assert!(reach_counted(Some(reached), reached + 24 * 3600 - 1));
        assert!(!reach_counted(Some(reached), reached + 24 * 3600));
    }

    proptest! {
        /// Whatever the times, a reservation is refused whenever the users really reached in
        /// the 24 h before it already fill the limit: the budget never frees a slot early.
        #[test]
        fn the_budget_never_frees_a_slot_early(gaps in proptest::collection::vec(0i64..20_000, 1..60), limit in 1u32..6) {
            let mut now = 1_790_812_800 + 1_234;
            let mut b = ReachBudget::default();
            let mut granted: Vec<i64> = Vec::new();
            for gap in gaps {
                now += gap;
                let exact = granted.iter().filter(|&&t| t > now - 24 * 3600).count();
                match b.clone().reserve(now, Some(limit)) {
                    Ok(next) => {
                        prop_assert!(exact < limit as usize, "granted with {exact} reached in 24 h");
                        b = next;
                        granted.push(now);
                    }
                    Err(r) => prop_assert!(r.retry_at > now),
                }
            }
        }
    }

    #[test]
    fn slots_are_sharded_only_above_250_msg_s_and_shards_sum_to_the_slot() {
        assert_eq!(slot_shards(0), 1);
        assert_eq!(slot_shards(80), 1);
        assert_eq!(slot_shards(250), 1);
        assert_eq!(slot_shards(251), 2);
        assert_eq!(slot_shards(1_000), 4);
        for mps in [1, 5, 80, 85, 251, 999, 1_000, 1_003] {
            let shards = slot_shards(mps);
            for slot in 0..20 {
                let cap = slot_capacity(mps, slot);
                let sum: u32 = (0..shards).map(|k| shard_capacity(cap, k, shards)).sum();
                assert_eq!(sum, cap, "mps {mps} slot {slot}");
            }
        }
    }

    /// The arithmetic DynamoDB does not show an emulator: at 1,000 msg/s with every message
    /// its own write (the worst case), no slot key takes more than 300 writes a second.
    #[test]
    fn no_slot_key_takes_more_than_300_writes_a_second_at_1000_msg_s() {
        let mps = 1_000;
        let shards = slot_shards(mps);
        let per_second = 1000 / THROUGHPUT_SLOT_MS as u32;
        for slot in 0..10 {
            let cap = slot_capacity(mps, slot);
            for k in 0..shards {
                // A key lives one slot: its writes, at most its capacity, fall within 100 ms.
                let writes_per_s = shard_capacity(cap, k, shards) * per_second;
                assert!(writes_per_s <= 300, "{writes_per_s}/s on shard {k}");
            }
        }
    }
}
