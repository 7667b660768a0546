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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshStats {
    /// Each refreshed day's totals per category, over the refreshed numbers.
    pub by_category: BTreeMap<(NaiveDate, String), Counts>,
    pub days: usize,
    /// Days older than the messages' retention, whose counters were only ever raised: the
    /// index may have lost some of their messages, so a lower count is not the truth.
    pub days_kept: usize,
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
    refresh_with(index, usage, numbers, period, now, |_, _| {}).await
}

/// [`refresh`], calling `progress(done, total)` after each day and month.
pub async fn refresh_with(
    index: &PricedIndex,
    usage: &UsageTable,
    numbers: &[String],
    period: Period,
    now: i64,
    mut progress: impl FnMut(usize, usize),
) -> Result<RefreshStats, StoreError> {
    let total = period.days().count() + period.months().len();
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
        for (key, counts) in &fresh {
            stats
                .by_category
                .entry((day, key.category.clone()))
                .or_default()
                .add(counts);
        }
        let pk = day_pk(day);
        let stored: Vec<UsageRow> = usage
            .partition(&pk)
            .await?
            .into_iter()
            .filter(|r| refreshed.contains(r.key.phone_number_id.as_str()))
            .collect();
        let lossy = whatsapp_core::usage::index_may_have_lost(day, now);
        let (w, d) = apply(usage, &pk, stored, fresh, lossy, now).await?;
        stats.rows_written += w;
        stats.rows_deleted += d;
        stats.days += 1;
        stats.days_kept += usize::from(lossy);
        progress(stats.days, total);
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
        // Months are summed from the day counters, which are kept: the sums are the truth.
        let (w, d) = apply(usage, &pk, stored, sums, false, now).await?;
        stats.rows_written += w;
        stats.rows_deleted += d;
        stats.months += 1;
        progress(stats.days + stats.months, total);
    }
    Ok(stats)
}

/// Makes a partition hold exactly `fresh` (among the rows `stored` lists). Where the source may
/// have lost rows (`lossy`), only raises: no counter is lowered and none deleted.
async fn apply(
    usage: &UsageTable,
    pk: &str,
    stored: Vec<UsageRow>,
    fresh: BTreeMap<UsageKey, Counts>,
    lossy: bool,
    now: i64,
) -> Result<(usize, usize), StoreError> {
    let (puts, deletes) = plan(stored, fresh, lossy);
    usage.write(pk, &puts, &deletes, now).await?;
    Ok((puts.len(), deletes.len()))
}

/// The rows to put and the sort keys to delete so that a partition holding `stored` holds
/// `fresh`; with `lossy`, only the puts that raise every counter of a row, and no deletes.
fn plan(
    stored: Vec<UsageRow>,
    fresh: BTreeMap<UsageKey, Counts>,
    lossy: bool,
) -> (Vec<UsageRow>, Vec<String>) {
    let stored: HashMap<String, Counts> = stored
        .into_iter()
        .map(|r| (sort_key(&r.key), r.counts))
        .collect();
    let fresh_keys: HashSet<String> = fresh.keys().map(sort_key).collect();
    let puts: Vec<UsageRow> = fresh
        .into_iter()
        .filter(|(k, c)| {
            let old = stored.get(&sort_key(k));
            !c.is_zero() && old != Some(c) && (!lossy || old.is_none_or(|o| c.covers(o)))
        })
        .map(|(key, counts)| UsageRow { key, counts })
        .collect();
    let deletes: Vec<String> = if lossy {
        Vec::new()
    } else {
        stored
            .keys()
            .filter(|sk| !fresh_keys.contains(*sk))
            .cloned()
            .collect()
    };
    (puts, deletes)
}

/// The refresh's EMF documents: per day and category, `UsageMessages` and `UsageCharged`
/// stamped at the day's start (UTC), so that a one-day period holds one day. Each run restates
/// the day's total; the dashboard plots the maximum, the latest and largest restatement.
pub fn usage_metrics(stats: &RefreshStats) -> Vec<serde_json::Value> {
    use whatsapp_core::metrics::{catalog, document};
    stats
        .by_category
        .iter()
        .map(|((day, category), counts)| {
            let at_ms = day
                .and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp_millis());
            document(
                &[("Category", category.as_str())],
                &[
                    (catalog::USAGE_MESSAGES, counts.messages as f64),
                    (catalog::USAGE_CHARGED, counts.charged as f64),
                ],
                at_ms,
            )
        })
        .collect()
}

/// Today (UTC) from epoch seconds.
pub fn today(now: i64) -> NaiveDate {
    whatsapp_core::usage::usage_day(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(category: &str, n: u64) -> UsageRow {
        UsageRow {
            key: UsageKey {
                day: "2026-08-01".parse().unwrap(),
                waba_id: "1".into(),
                phone_number_id: "2".into(),
                category: category.into(),
                pricing_type: "regular".into(),
                country: "BR".into(),
                pricing_model: "PMP".into(),
            },
            counts: Counts {
                messages: n,
                charged: n,
                conversations: 0,
            },
        }
    }

    #[test]
    fn a_day_the_index_may_have_lost_is_only_ever_raised() {
        let stored = vec![row("marketing", 5), row("utility", 3), row("service", 1)];
        // Recounted after the retention: marketing lost rows, utility gained one, service gone.
        let fresh: BTreeMap<UsageKey, Counts> = [row("marketing", 2), row("utility", 4)]
            .into_iter()
            .map(|r| (r.key, r.counts))
            .collect();
        let (puts, deletes) = plan(stored.clone(), fresh.clone(), true);
        assert_eq!(puts.len(), 1);
        assert_eq!(
            (puts[0].key.category.as_str(), puts[0].counts.messages),
            ("utility", 4)
        );
        assert!(deletes.is_empty());
        // A day still within the retention is made exact.
        let (puts, deletes) = plan(stored, fresh, false);
        assert_eq!(puts.len(), 2);
        assert_eq!(deletes.len(), 1);
    }
}
