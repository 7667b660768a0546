//! Merging out-of-order, duplicated status webhooks into one delivery state.
//!
//! The stored status only ever moves up a total order of ranks (`sent < delivered < read <
//! played < failed`), so the rank kept does not depend on arrival order or duplicates, a late
//! `sent` never downgrades `delivered`, and nothing pulls a message out of `failed`. `deleted` and
//! unknown values have no rank: they never override a known status, and among themselves the
//! first kept stays. Every message store applies [`rank_advances`] (the DynamoDB one as its
//! conditional write).

use crate::webhook::StatusKind;

/// The position of a status in the merge order (0: unranked, never overrides a known status).
pub fn status_rank(s: &StatusKind) -> u8 {
    match s {
        StatusKind::Other(_) | StatusKind::Deleted => 0,
        StatusKind::Sent => 1,
        StatusKind::Delivered => 2,
        StatusKind::Read => 3,
        StatusKind::Played => 4,
        StatusKind::Failed => 5,
    }
}

/// Whether a status of rank `incoming` replaces the stored one of rank `current` (`None`:
/// nothing stored yet): only a higher rank does.
pub fn rank_advances(current: Option<u8>, incoming: u8) -> bool {
    current.is_none_or(|c| incoming > c)
}

/// Whether `incoming` would change the stored status `current`.
pub fn status_advances(current: Option<&StatusKind>, incoming: &StatusKind) -> bool {
    rank_advances(current.map(status_rank), status_rank(incoming))
}

/// The status to keep when `incoming` arrives for a message whose stored status is `current`.
pub fn merge_status(current: Option<&StatusKind>, incoming: &StatusKind) -> StatusKind {
    match current {
        Some(cur) if !status_advances(Some(cur), incoming) => cur.clone(),
        _ => incoming.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_status() -> impl Strategy<Value = StatusKind> {
        prop_oneof![
            Just(StatusKind::Sent),
            Just(StatusKind::Delivered),
            Just(StatusKind::Read),
            Just(StatusKind::Played),
            Just(StatusKind::Failed),
            Just(StatusKind::Deleted),
            "[a-z]{1,6}".prop_map(StatusKind::Other),
        ]
    }

    #[test]
    fn late_sent_does_not_downgrade_delivered() {
        assert_eq!(
            merge_status(Some(&StatusKind::Delivered), &StatusKind::Sent),
            StatusKind::Delivered
        );
    }

    #[test]
    fn nothing_pulls_a_message_out_of_failed() {
        for s in [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read] {
            assert_eq!(
                merge_status(Some(&StatusKind::Failed), &s),
                StatusKind::Failed
            );
        }
        assert!(!status_advances(
            Some(&StatusKind::Failed),
            &StatusKind::Read
        ));
    }

    proptest! {
        /// Any permutation, with duplicates, of a set of statuses merges to the same rank, and to
        /// the same status whenever one of them is ranked.
        #[test]
        fn merge_is_order_independent(statuses in prop::collection::vec(any_status(), 1..12), seed: u64) {
            let fold = |v: &[StatusKind]| v.iter().fold(None, |acc: Option<StatusKind>, s| Some(merge_status(acc.as_ref(), s)));
            let a = fold(&statuses);
            let mut shuffled = statuses.clone();
            // Deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            shuffled.extend(statuses.iter().cloned()); // duplicates
            let b = fold(&shuffled);
            let rank = |s: &Option<StatusKind>| s.as_ref().map(status_rank);
            prop_assert_eq!(rank(&a), rank(&b));
            if statuses.iter().any(|s| status_rank(s) > 0) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
