//! How a priced message is filed for finance. The messages table keeps, for every message whose
//! status carried `pricing`, the attributes finance counts from, and a sparse global secondary
//! index ([`USAGE_INDEX`]) on `usage_pk` = `<phone_number_id>#<YYYY-MM-DD>` (the UTC day of the
//! earliest priced status). The usage aggregator reads one number's day from that index and
//! writes the day's counters as absolute values, so a retried or reordered webhook can never
//! count twice (the `finance` crate).

use chrono::{DateTime, NaiveDate};

/// The messages table's index of priced messages by number and day.
pub const USAGE_INDEX: &str = "by_usage_day";

/// Attributes the usage index projects besides its keys: everything the aggregator counts by.
/// Only the pricing write sets them, so the index is written once per message (again only if an
/// earlier priced status arrives later), never by the statuses that follow.
pub const USAGE_INDEX_ATTRIBUTES: [&str; 8] = [
    "waba_id",
    "priced_at",
    "pricing_category",
    "pricing_type",
    "pricing_model",
    "pricing_billable",
    "conversation_id",
    "usage_recipient",
];

/// The UTC day of an epoch-seconds timestamp (usage days are UTC days, as are the day buckets
/// the reconciliation asks `pricing_analytics` for).
/// Message records (and with them the usage index) are kept this long after their last status:
/// finance and reconciliation read them; Meta retries webhooks for 7 days.
pub const MESSAGE_RETENTION_SECONDS: i64 = 90 * 24 * 3600;

/// Whether the usage index may already have lost messages of `day` at `now` (epoch s): a message
/// priced on `day` expires [`MESSAGE_RETENTION_SECONDS`] after its last status, so from the start
/// of `day` plus the retention on, recounting the day may count fewer than there were.
pub fn index_may_have_lost(day: NaiveDate, now: i64) -> bool {
    let start = day
        .and_hms_opt(0, 0, 0)
        .map_or(i64::MIN, |t| t.and_utc().timestamp());
    now >= start.saturating_add(MESSAGE_RETENTION_SECONDS)
}

pub fn usage_day(epoch_seconds: i64) -> NaiveDate {
    DateTime::from_timestamp(epoch_seconds, 0)
        .unwrap_or_default()
        .date_naive()
}

/// The usage index partition of one number's day.
pub fn usage_partition(phone_number_id: &str, day: NaiveDate) -> String {
    format!("{phone_number_id}#{}", day.format("%Y-%m-%d"))
}

/// The phone number id of a usage index partition.
pub fn partition_number(usage_pk: &str) -> &str {
    usage_pk.rsplit_once('#').map_or(usage_pk, |(pn, _)| pn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_projects_what_the_aggregator_reads() {
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/template.yaml"
        ))
        .unwrap();
        let index = template
            .split(&format!("IndexName: {USAGE_INDEX}"))
            .nth(1)
            .expect("the messages table declares the usage index");
        let projected: Vec<&str> = index
            .split("NonKeyAttributes:")
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .map_while(|l| l.trim().strip_prefix("- "))
            .collect();
        assert_eq!(projected, USAGE_INDEX_ATTRIBUTES);
    }

    #[test]
    fn a_day_may_have_lost_messages_from_its_start_plus_the_retention() {
        let day: NaiveDate = "2026-09-01".parse().unwrap();
        let start = 1_788_220_800; // 2026-09-01T00:00:00Z
        assert!(!index_may_have_lost(
            day,
            start + MESSAGE_RETENTION_SECONDS - 1
        ));
        assert!(index_may_have_lost(day, start + MESSAGE_RETENTION_SECONDS));
    }

    #[test]
    fn days_are_utc() {
        // 2026-11-23T23:59:59Z and the next second.
        assert_eq!(usage_day(1_795_478_399).to_string(), "2026-11-23");
        assert_eq!(usage_day(1_795_478_400).to_string(), "2026-11-24");
        assert_eq!(
            usage_partition("1065", usage_day(1_795_478_399)),
            "1065#2026-11-23"
        );
        assert_eq!(partition_number("1065#2026-11-23"), "1065");
    }
}
