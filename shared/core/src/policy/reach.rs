//! The portfolio's messaging-limit budget as the adapter stores it: spread over
//! [`REACH_SHARDS`] items whose limits sum to the portfolio's, each reserved by one atomic,
//! conditional counter update (no read first, no optimistic version, no transaction).
//!
//! One item per portfolio took every new user a campaign reached: at 1,000 new users/s that is
//! 1,000 transactions/s (2,000 write units) on one key, and optimistic retries on top, where a
//! DynamoDB partition takes at most 1,000 writes/s and one item is never split (reliability
//! §9). Eight shards put about 125 writes/s on each key, under the 300 we allow any key.
//!
//! A shard item holds, as top-level attributes (so that one `UpdateItem` can add to them):
//! `h<hour>` users reached in that hour (epoch s / 3600), `d<day>` users reached that day
//! (epoch day, for the tier projection), `used` the sum of its `h<hour>`, and `oldest` its
//! earliest hour. A reservation adds one to all three under the condition
//! `used < limit AND oldest >= <first live hour>`: `used` is exact exactly when no hour has left
//! the moving 24 h, and when one has, a prune (once an hour per shard) removes it first.

use std::collections::BTreeMap;

use super::{REACH_HOURS, shard_capacity};

/// Shards of one portfolio's budget.
pub const REACH_SHARDS: u32 = 8;

/// Days of `d<day>` counts a shard keeps: the projection's 7 and the day before.
pub const REACH_DAYS_KEPT: i64 = 8;

/// The shard a user's reservation tries first: a stable hash of the user, so a campaign's users
/// spread evenly over the shards in every process.
pub fn reach_shard(user: &str) -> u32 {
    crate::usage::fnv1a(user) % REACH_SHARDS
}

/// Shard `shard`'s part of a portfolio's `limit`: the parts sum to the limit exactly (250 →
/// 31 or 32 each), so the shards together never admit more users than the limit.
pub fn reach_shard_limit(limit: u32, shard: u32) -> u32 {
    shard_capacity(limit, shard, REACH_SHARDS)
}

/// The key of one shard of a portfolio's budget (shard 0 keeps the unsharded name).
pub fn budget_key(portfolio_id: &str, shard: u32) -> String {
    match shard {
        0 => format!("BUDGET#{portfolio_id}"),
        k => format!("BUDGET#{portfolio_id}#{k}"),
    }
}

/// The first hour (epoch s / 3600) whose reaches still count at `now`: hour `h` holds reaches
/// up to `(h + 1) × 3600`, so it counts until `(h + 1 + 24) × 3600` (never freed early).
pub fn first_live_hour(now: i64) -> i64 {
    now.div_euclid(3600) - REACH_HOURS
}

/// The attribute of one hour's count.
pub fn hour_attr(hour: i64) -> String {
    format!("h{hour}")
}

/// The attribute of one day's count.
pub fn day_attr(day: i64) -> String {
    format!("d{day}")
}

/// One shard of the budget, as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetShard {
    /// Hour → users reached in it.
    pub hours: BTreeMap<i64, u32>,
    /// Epoch day → users reached that day.
    pub days: BTreeMap<i64, u32>,
    /// The stored sum of `hours` (what the reservation's condition reads).
    pub used: u64,
    /// The stored earliest hour.
    pub oldest: Option<i64>,
}

/// What a prune removes from a shard whose earliest hour has left the moving 24 h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    pub hours: Vec<i64>,
    pub days: Vec<i64>,
    /// Users the removed hours held: `used` drops by this much.
    pub freed: u64,
    /// The earliest hour left (`None`: no hour left, `oldest` is removed).
    pub oldest: Option<i64>,
}

impl BudgetShard {
    /// From an item's attributes as `(name, number)` pairs: `h<hour>`, `d<day>`, `used`,
    /// `oldest`; anything else is ignored.
    pub fn from_attrs<'a>(attrs: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let mut b = BudgetShard::default();
        let count = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        for (name, v) in attrs {
            match (name, name.get(1..).and_then(|t| t.parse::<i64>().ok())) {
                ("used", _) => b.used = u64::try_from(v.max(0)).unwrap_or(0),
                ("oldest", _) => b.oldest = Some(v),
                (h, Some(hour)) if h.starts_with('h') => {
                    b.hours.insert(hour, count(v));
                }
                (d, Some(day)) if d.starts_with('d') => {
                    b.days.insert(day, count(v));
                }
                _ => {}
            }
        }
        b
    }

    /// Whether `used` counts only hours still live at `now` (the reservation's condition).
    pub fn is_current(&self, now: i64) -> bool {
        self.oldest.is_none_or(|o| o >= first_live_hour(now))
    }

    /// Users reached within the moving 24 h at `now`, whatever the stored `used` says.
    pub fn live(&self, now: i64) -> u64 {
        let first = first_live_hour(now);
        self.hours.range(first..).map(|(_, &c)| u64::from(c)).sum()
    }

    /// Slots left in the shard at `now`, for a shard limit of `limit`.
    pub fn room(&self, now: i64, limit: u32) -> u64 {
        u64::from(limit).saturating_sub(self.live(now))
    }

    /// When a full shard next frees a slot: the end of its earliest live hour's 24 h.
    pub fn frees_at(&self, now: i64) -> i64 {
        let hour = self
            .hours
            .range(first_live_hour(now)..)
            .find(|(_, c)| **c > 0)
            .map_or(now.div_euclid(3600), |(h, _)| *h);
        (hour + 1 + REACH_HOURS) * 3600
    }

    /// The prune that brings the shard current at `now`, or `None` when it is current.
    pub fn prune(&self, now: i64) -> Option<Prune> {
        if self.is_current(now) {
            return None;
        }
        let first = first_live_hour(now);
        let hours: Vec<i64> = self.hours.range(..first).map(|(h, _)| *h).collect();
        let freed = self.hours.range(..first).map(|(_, &c)| u64::from(c)).sum();
        let today = now.div_euclid(86_400);
        let days = self
            .days
            .range(..today - (REACH_DAYS_KEPT - 1))
            .map(|(d, _)| *d)
            .collect();
        Some(Prune {
            hours,
            days,
            freed,
            oldest: self.hours.range(first..).next().map(|(h, _)| *h),
        })
    }

    /// Users reached on the 7 days ending with `now`'s day.
    pub fn reached_7d(&self, now: i64) -> u64 {
        let today = now.div_euclid(86_400);
        self.days
            .range(today - 6..=today)
            .map(|(_, &c)| u64::from(c))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_812_800; // a midnight

    #[test]
    fn shard_limits_sum_to_the_portfolio_limit() {
        for limit in [1, 7, 250, 1_000, 2_000, 10_000, 100_000] {
            let parts: Vec<u32> = (0..REACH_SHARDS)
                .map(|k| reach_shard_limit(limit, k))
                .collect();
            assert_eq!(parts.iter().sum::<u32>(), limit, "{limit}");
            let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{parts:?}");
        }
    }

    #[test]
    fn users_spread_over_the_shards() {
        let mut per = [0u32; REACH_SHARDS as usize];
        for i in 0..8_000 {
            per[reach_shard(&format!("4477{i:08}")) as usize] += 1;
        }
        assert!(per.iter().all(|&c| (900..1_100).contains(&c)), "{per:?}");
        assert_eq!(budget_key("P", 0), "BUDGET#P");
        assert_eq!(budget_key("P", 3), "BUDGET#P#3");
    }

    #[test]
    fn attributes_parse_and_unknown_ones_are_ignored() {
        let h = T0 / 3600;
        let b = BudgetShard::from_attrs([
            ("used", 5),
            ("oldest", h),
            ("h", 9),
            (hour_attr(h).as_str(), 5),
            (day_attr(T0 / 86_400).as_str(), 5),
            ("pk", 0),
            ("expires_at", 42),
        ]);
        assert_eq!(b.used, 5);
        assert_eq!(b.oldest, Some(h));
        assert_eq!(b.hours.len(), 1);
        assert_eq!(b.days.len(), 1);
        assert_eq!(b.live(T0), 5);
        assert_eq!(b.room(T0, 7), 2);
        assert_eq!(b.reached_7d(T0 + 6 * 86_400), 5);
        assert_eq!(b.reached_7d(T0 + 7 * 86_400), 0);
    }

    #[test]
    fn an_hour_leaves_a_day_after_its_end_and_a_prune_frees_it() {
        let h = T0 / 3600;
        let b = BudgetShard::from_attrs([
            ("used", 3),
            ("oldest", h),
            (hour_attr(h).as_str(), 2),
            (hour_attr(h + 5).as_str(), 1),
            (day_attr(T0 / 86_400 - 9).as_str(), 4),
            (day_attr(T0 / 86_400).as_str(), 3),
        ]);
        // 24 h after the end of hour h: still counted until then.
        let just_before = (h + 1 + REACH_HOURS) * 3600 - 1;
        assert!(b.is_current(just_before));
        assert_eq!(b.prune(just_before), None);
        assert_eq!(b.frees_at(just_before), just_before + 1);
        let after = just_before + 1;
        assert!(!b.is_current(after));
        assert_eq!(b.live(after), 1);
        assert_eq!(
            b.prune(after),
            Some(Prune {
                hours: vec![h],
                days: vec![T0 / 86_400 - 9],
                freed: 2,
                oldest: Some(h + 5),
            })
        );
        // Everything gone: `oldest` goes too.
        let later = (h + 6 + REACH_HOURS) * 3600;
        assert_eq!(b.prune(later).unwrap().oldest, None);
        assert_eq!(b.prune(later).unwrap().freed, 3);
    }
}
