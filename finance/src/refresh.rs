//! Recomputes usage from the messages table: for each day of a period and each number, the
//! day's counters from the usage index ([`crate::counting::count_day`]), written as absolute
//! values (changed counters put, vanished ones deleted); then each month the period touches, as
//! the sum of its day counters. Running it again, or with webhooks retried or reordered in
//! between, converges on the same numbers: nothing is ever incremented.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Days, NaiveDate};

use crate::counting::{Counts, UsageKey, UsageRow, conversations, count_day};
use crate::period::{Period, first_of_month, last_of_month};
use crate::store::{PricedIndex, StoreError, UsageTable, day_pk, month_pk, sort_key};

/// What a refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshStats {
    pub days: usize,
    pub messages: usize,
    pub rows_written: usize,
    pub rows_deleted: usize,
    pub months: usize,
}

/// Recomputes `period` for `numbers` (phone number ids).
pub async fn refresh(
    index: &PricedIndex,
    usage: &UsageTable,
    numbers: &[String],
    period: Period,
    now: i64,
) -> Result<RefreshStats, StoreError> {
    let mut stats = RefreshStats::default();
    let refreshed: HashSet<&str> = numbers.iter().map(String::as_str).collect();
    // A CBP conversation counts on the first day it was priced: remember the day before's.
    let mut before: HashMap<&str, HashSet<String>> = HashMap::new();
    let eve = period.from - Days::new(1);
    for pn in numbers {
        before.insert(pn, conversations(&index.day(pn, eve).await?));
    }
    for day in period.days() {
        let mut fresh: BTreeMap<UsageKey, Counts> = BTreeMap::new();
        for pn in numbers {
            let messages = index.day(pn, day).await?;
            stats.messages += messages.len();
            let prior = before.remove(pn.as_str()).unwrap_or_default();
            fresh.extend(count_day(day, &messages, &prior));
            before.insert(pn, conversations(&messages));
        }
        let pk = day_pk(day);
        let stored: Vec<UsageRow> = usage
            .partition(&pk)
            .await?
            .into_iter()
            .filter(|r| refreshed.contains(r.key.phone_number_id.as_str()))
            .collect();
        let (w, d) = apply(usage, &pk, stored, fresh, now).await?;
        stats.rows_written += w;
        stats.rows_deleted += d;
        stats.days += 1;
    }
    for month in period.months() {
        let whole = Period {
            from: first_of_month(month),
            to: last_of_month(month),
        };
        let mut sums: BTreeMap<UsageKey, Counts> = BTreeMap::new();
        for row in usage.days(&whole).await? {
            let key = UsageKey {
                day: whole.from,
                ..row.key
            };
            sums.entry(key).or_default().add(&row.counts);
        }
        let pk = month_pk(month);
        let stored = usage.partition(&pk).await?;
        let (w, d) = apply(usage, &pk, stored, sums, now).await?;
        stats.rows_written += w;
        stats.rows_deleted += d;
        stats.months += 1;
    }
    Ok(stats)
}

/// Makes a partition hold exactly `fresh` (among the rows `stored` lists).
async fn apply(
    usage: &UsageTable,
    pk: &str,
    stored: Vec<UsageRow>,
    fresh: BTreeMap<UsageKey, Counts>,
    now: i64,
) -> Result<(usize, usize), StoreError> {
    let stored: HashMap<String, Counts> = stored
        .into_iter()
        .map(|r| (sort_key(&r.key), r.counts))
        .collect();
    let fresh_keys: HashSet<String> = fresh.keys().map(sort_key).collect();
    let puts: Vec<UsageRow> = fresh
        .into_iter()
        .filter(|(k, c)| !c.is_zero() && stored.get(&sort_key(k)) != Some(c))
        .map(|(key, counts)| UsageRow { key, counts })
        .collect();
    let deletes: Vec<String> = stored
        .keys()
        .filter(|sk| !fresh_keys.contains(*sk))
        .cloned()
        .collect();
    usage.write(pk, &puts, &deletes, now).await?;
    Ok((puts.len(), deletes.len()))
}

/// Today (UTC) from epoch seconds.
pub fn today(now: i64) -> NaiveDate {
    whatsapp_core::usage::usage_day(now)
}
