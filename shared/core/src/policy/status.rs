//! Merging out-of-order, duplicated status webhooks into one delivery state.
//!
//! The merge is a join on a total order (`sent < delivered < read < played < failed`), so the
//! result does not depend on arrival order or duplicates, a late `sent` never downgrades
//! `delivered`, and nothing pulls a message out of `failed`. `deleted` and unknown values never
//! override a known status.

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

/// The status to keep when `incoming` arrives for a message whose stored status is `current`.
pub fn merge_status(current: Option<&StatusKind>, incoming: &StatusKind) -> StatusKind {
    match current {
        None => incoming.clone(),
        Some(cur) => {
            // Ties (two unranked values) break on the wire string so the merge stays commutative.
            if (status_rank(incoming), incoming.as_str()) > (status_rank(cur), cur.as_str()) {
                incoming.clone()
            } else {
                cur.clone()
            }
        }
    }
}

/// Whether `incoming` would change the stored status `current`.
pub fn status_advances(current: Option<&StatusKind>, incoming: &StatusKind) -> bool {
    current.is_none_or(|cur| merge_status(Some(cur), incoming) != *cur)
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
        /// Any permutation, with duplicates, of a set of statuses merges to the same result.
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
            prop_assert_eq!(a, fold(&shuffled));
        }
    }
}
