//! How a priced message is filed for finance. The messages table keeps, for every message whose
//! status carried `pricing`, the attributes finance counts from, and a sparse global secondary
//! index ([`USAGE_INDEX`]) on `usage_pk` = `<phone_number_id>#<YYYY-MM-DD>#<shard>` (the UTC day
//! of the earliest priced status, and one of [`USAGE_SHARDS`] shards chosen by the callback data,
//! or the wamid when there is none) and [`USAGE_SORT_KEY`]. The
//! usage aggregator reads one number's day from that index, shard by shard, and
//! writes the day's counters as absolute values, so a retried or reordered webhook can never
//! count twice (the `finance` crate).

use chrono::{DateTime, NaiveDate};

/// The messages table's index of priced messages by number and day.
pub const USAGE_INDEX: &str = "by_usage_day";

/// The usage index's sort key: the message's callback data (`biz_opaque_callback_data`), or its
/// wamid when it has none. With the shard taken from the same value, the sender finds its own
/// send by callback data in one partition per day: the usage index is also the reconciliation
/// index for every priced message (one index entry per message, not two).
pub const USAGE_SORT_KEY: &str = "usage_sk";

/// The sort key, and the value the shard is taken from, of a message.
pub fn usage_sort_key<'a>(callback_data: Option<&'a str>, wamid: &'a str) -> &'a str {
    callback_data.unwrap_or(wamid)
}

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

/// Shards of one number's usage day in the index. A value of a GSI key without a sort key is
/// one partition, which takes at most 1,000 writes/s and is never split (reference:
/// reliability §9); one number at 1,000 priced messages/s would take all of it on one
/// `<phone>#<day>`. Eight shards put about 125 writes/s on each, under the 300 we allow a key.
pub const USAGE_SHARDS: u32 = 8;

/// The shard of a message: FNV-1a of its wamid, so every status of a message (and a recount)
/// files it under the same key, in every process.
pub fn usage_shard(wamid: &str) -> u32 {
    fnv1a(wamid) % USAGE_SHARDS
}

/// FNV-1a (32 bits): a hash that is the same in every process and release, to pick shards.
pub(crate) fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The usage index partition of one shard of one number's day.
pub fn usage_partition(phone_number_id: &str, day: NaiveDate, shard: u32) -> String {
    format!("{phone_number_id}#{}#{shard}", day.format("%Y-%m-%d"))
}

/// Every usage index partition a number's day may be filed under: its shards, and the
/// unsharded `<phone>#<day>` of messages priced before the index was sharded (their records
/// live [`MESSAGE_RETENTION_SECONDS`]).
pub fn usage_partitions(phone_number_id: &str, day: NaiveDate) -> Vec<String> {
    let mut all: Vec<String> = (0..USAGE_SHARDS)
        .map(|shard| usage_partition(phone_number_id, day, shard))
        .collect();
    all.push(format!("{phone_number_id}#{}", day.format("%Y-%m-%d")));
    all
}

/// The phone number id of a usage index partition (sharded or not): phone-number ids are
/// digits, so it is everything before the first `#`.
pub fn partition_number(usage_pk: &str) -> &str {
    usage_pk.split('#').next().unwrap_or(usage_pk)
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
            usage_partition("1065", usage_day(1_795_478_399), 3),
            "1065#2026-11-23#3"
        );
        assert_eq!(partition_number("1065#2026-11-23#3"), "1065");
        assert_eq!(partition_number("1065#2026-11-23"), "1065", "unsharded");
    }

    #[test]
    fn a_day_is_read_from_every_shard_and_the_unsharded_key() {
        let day = usage_day(1_795_478_399);
        let all = usage_partitions("1065", day);
        assert_eq!(all.len(), USAGE_SHARDS as usize + 1);
        for shard in 0..USAGE_SHARDS {
            assert!(all.contains(&usage_partition("1065", day, shard)));
        }
        assert!(all.contains(&"1065#2026-11-23".to_owned()));
    }

    /// The arithmetic DynamoDB does not show an emulator: one number's 1,000 priced messages a
    /// second, spread by their wamids, put no index key over 300 writes/s.
    #[test]
    fn no_usage_index_key_takes_more_than_300_writes_a_second_at_1000_messages() {
        let mut per_shard = [0u32; USAGE_SHARDS as usize];
        // Ten seconds of wamids shaped like Meta's (base64 of a counter-bearing blob).
        let n = 10_000;
        for i in 0..n {
            let wamid = format!("wamid.HBgLMTY1MDM4NzkzMDk1FQIAERgS{i:016X}QUI2MEY2RTQA");
            per_shard[usage_shard(&wamid) as usize] += 1;
        }
        let hottest = *per_shard.iter().max().unwrap();
        let per_second = hottest * 1_000 / n;
        assert!(
            per_second <= 300,
            "hottest shard: {per_second}/s ({per_shard:?})"
        );
        assert!(per_shard.iter().all(|&c| c > 0), "every shard used");
        // Stable: the same wamid, the same shard.
        assert_eq!(usage_shard("wamid.A"), usage_shard("wamid.A"));
    }
}
