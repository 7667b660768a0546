//! Consent: opt-in / opt-out (keywords or producers' records) and the marketing stop / resume
//! Meta reports. Each is a timestamp; the later of a pair wins, so events arriving out of order
//! settle on the same state.

use unicode_normalization::UnicodeNormalization;

/// A user's consent with one business number, as stored timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consent {
    pub opt_in_at: Option<i64>,
    pub opt_out_at: Option<i64>,
    pub marketing_stop_at: Option<i64>,
    pub marketing_resume_at: Option<i64>,
    /// When Meta last refused marketing to this user with 131049: no marketing template goes
    /// to them until [`MARKETING_HOLD_S`] later, from any job (Meta enforces excessive retries
    /// at account level).
    pub marketing_held_at: Option<i64>,
}

/// How long marketing to a user waits after a 131049: Meta asks for at least 24 h.
pub const MARKETING_HOLD_S: i64 = 24 * 3600;

fn later(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x > y,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl Consent {
    /// The user opted in and has not opted out since.
    pub fn opted_in(&self) -> bool {
        later(self.opt_in_at, self.opt_out_at)
    }

    /// The user opted out and has not opted in since.
    pub fn opted_out(&self) -> bool {
        later(self.opt_out_at, self.opt_in_at)
    }

    /// The union of two records of one user (kept under two keys): the later of each event.
    pub fn merged(&self, other: &Consent) -> Consent {
        let max = |a: Option<i64>, b: Option<i64>| a.max(b);
        Consent {
            opt_in_at: max(self.opt_in_at, other.opt_in_at),
            opt_out_at: max(self.opt_out_at, other.opt_out_at),
            marketing_stop_at: max(self.marketing_stop_at, other.marketing_stop_at),
            marketing_resume_at: max(self.marketing_resume_at, other.marketing_resume_at),
            marketing_held_at: max(self.marketing_held_at, other.marketing_held_at),
        }
    }

    /// Until when marketing to this user waits after a 131049 (epoch s), if that is after `now`.
    pub fn marketing_held_until(&self, now: i64) -> Option<i64> {
        self.marketing_held_at
            .map(|t| t.saturating_add(MARKETING_HOLD_S))
            .filter(|&until| until > now)
    }

    /// The user stopped marketing messages and has not resumed them since.
    pub fn marketing_stopped(&self) -> bool {
        later(self.marketing_stop_at, self.marketing_resume_at)
    }
}

/// Folds text for keyword matching: trimmed, lowercase, accents and surrounding punctuation
/// removed (`" Stöp! "` → `"stop"`).
pub fn fold_keyword(text: &str) -> String {
    text.trim()
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned()
}

/// Whether `text` is exactly one of `keywords` (already folded), case- and accent-insensitive.
pub fn is_keyword(text: &str, folded_keywords: &[String]) -> bool {
    let t = fold_keyword(text);
    !t.is_empty() && folded_keywords.contains(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keywords_match_regardless_of_case_accents_and_punctuation() {
        let kw: Vec<String> = ["STOP", "ARRÊT"].iter().map(|k| fold_keyword(k)).collect();
        for t in ["stop", " STOP ", "Stop!", "arret", "Arrêt.", "ARRÊT"] {
            assert!(is_keyword(t, &kw), "{t}");
        }
        for t in ["stop please", "stopped", "", "!!"] {
            assert!(!is_keyword(t, &kw), "{t}");
        }
    }

    #[test]
    fn the_later_event_of_a_pair_wins() {
        let c = Consent {
            opt_in_at: Some(10),
            opt_out_at: Some(20),
            ..Consent::default()
        };
        assert!(c.opted_out() && !c.opted_in());
        let c = Consent {
            opt_in_at: Some(30),
            ..c
        };
        assert!(c.opted_in() && !c.opted_out());
        assert!(!Consent::default().opted_in() && !Consent::default().marketing_stopped());
    }

    #[test]
    fn a_marketing_hold_lasts_24_hours_from_the_refusal_and_merges_to_the_later() {
        let c = Consent {
            marketing_held_at: Some(1_000),
            ..Consent::default()
        };
        assert_eq!(c.marketing_held_until(1_000), Some(1_000 + 86_400));
        assert_eq!(c.marketing_held_until(1_000 + 86_399), Some(87_400));
        assert_eq!(c.marketing_held_until(1_000 + 86_400), None);
        let later = Consent {
            marketing_held_at: Some(5_000),
            ..Consent::default()
        };
        assert_eq!(c.merged(&later).marketing_held_at, Some(5_000));
        assert_eq!(Consent::default().marketing_held_until(0), None);
    }

    proptest! {
        /// Applying stop/resume events in any order, keeping the latest of each, gives the
        /// state of the latest event overall.
        #[test]
        fn order_of_arrival_does_not_matter(events in prop::collection::vec((0i64..1000, any::<bool>()), 1..20)) {
            let mut c = Consent::default();
            for &(t, stop) in &events {
                let slot = if stop { &mut c.marketing_stop_at } else { &mut c.marketing_resume_at };
                *slot = Some(slot.map_or(t, |x| x.max(t)));
            }
            let latest = events.iter().max_by_key(|(t, stop)| (*t, !*stop)).unwrap();
            let ties = events.iter().any(|(t, s)| *t == latest.0 && *s != latest.1);
            if !ties {
                prop_assert_eq!(c.marketing_stopped(), latest.1);
            }
        }
    }
}
