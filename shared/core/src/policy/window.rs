//! The customer-service window (CSW) and the free entry point window (FEP).
//!
//! - The CSW is open for 24 h after the user's latest message. Only a message from the user
//!   opens or extends it; our sends and status receipts never do. Free-form (non-template)
//!   messages may be sent only while it is open; templates may be sent at any time.
//! - The FEP opens when the user came through a click-to-WhatsApp ad (a message with a
//!   `referral`) and the business replies within 24 h of that message. It lasts 72 h from the
//!   reply; every message in it is free. It changes pricing only: the CSW still decides whether a
//!   free-form message may be sent.

use super::HOUR;
use crate::webhook::TemplateCategory;

/// Length of the customer-service window.
pub const CSW_SECONDS: i64 = 24 * HOUR;
/// Length of the free entry point window.
pub const FEP_SECONDS: i64 = 72 * HOUR;
/// How long after a referral message a reply still opens the FEP.
pub const FEP_REPLY_WITHIN_SECONDS: i64 = 24 * HOUR;

/// What we store about one user's windows with one business number. Every field is a
/// timestamp, so expiry is computed, never inferred from an item's absence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowState {
    /// When the user last wrote to us.
    pub last_inbound_at: Option<i64>,
    /// When the user last wrote to us with a click-to-WhatsApp referral.
    pub last_referral_at: Option<i64>,
    /// When our reply opened the current (or last) free entry point window.
    pub fep_opened_at: Option<i64>,
}

impl WindowState {
    /// End of the customer-service window, if the user ever wrote.
    pub fn csw_expires_at(&self) -> Option<i64> {
        self.last_inbound_at.map(|t| t.saturating_add(CSW_SECONDS))
    }

    /// Whether free-form messages may be sent at `now`.
    pub fn csw_open(&self, now: i64) -> bool {
        self.csw_expires_at().is_some_and(|end| now < end)
    }

    /// End of the free entry point window, if one was opened.
    pub fn fep_expires_at(&self) -> Option<i64> {
        self.fep_opened_at.map(|t| t.saturating_add(FEP_SECONDS))
    }

    /// Whether messages sent at `now` are free under the free entry point.
    pub fn fep_open(&self, now: i64) -> bool {
        match (self.fep_opened_at, self.fep_expires_at()) {
            (Some(start), Some(end)) => start <= now && now < end,
            _ => false,
        }
    }

    /// The state after a user message sent at `at`. Never moves a timestamp backwards, so a late
    /// delivery of an older message cannot shorten a window.
    /// Both states in one, each timestamp the later of the two: what a user's windows are
    /// when their identity moved and each identity held some of them.
    #[must_use]
    pub fn merged(self, other: WindowState) -> Self {
        WindowState {
            last_inbound_at: max_opt(self.last_inbound_at, other.last_inbound_at),
            last_referral_at: max_opt(self.last_referral_at, other.last_referral_at),
            fep_opened_at: max_opt(self.fep_opened_at, other.fep_opened_at),
        }
    }

    #[must_use]
    pub fn with_inbound(self, at: i64, has_referral: bool) -> Self {
        WindowState {
            last_inbound_at: max_opt(self.last_inbound_at, Some(at)),
            last_referral_at: if has_referral {
                max_opt(self.last_referral_at, Some(at))
            } else {
                self.last_referral_at
            },
            ..self
        }
    }

    /// The state after we send a message at `at`: opens the FEP if this is the first reply
    /// within 24 h of the latest referral.
    #[must_use]
    pub fn with_business_reply(self, at: i64) -> Self {
        let Some(referral_at) = self.last_referral_at else {
            return self;
        };
        let within = referral_at <= at && at < referral_at.saturating_add(FEP_REPLY_WITHIN_SECONDS);
        let already_opened_for_this_referral = self.fep_opened_at.is_some_and(|o| o >= referral_at);
        if within && !already_opened_for_this_referral {
            WindowState {
                fep_opened_at: Some(at),
                ..self
            }
        } else {
            self
        }
    }

    /// Whether a message of `kind` may be sent at `now`.
    pub fn permits(&self, kind: OutboundKind, now: i64) -> Result<(), WindowDenial> {
        match kind {
            OutboundKind::Template(_) => Ok(()),
            OutboundKind::FreeForm if self.csw_open(now) => Ok(()),
            OutboundKind::FreeForm => Err(WindowDenial {
                closed_at: self.csw_expires_at(),
            }),
        }
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What kind of message we are about to send, for window and pricing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundKind {
    /// Anything that is not a template: text, media, interactive, reaction, ...
    FreeForm,
    /// A template of the given (current) category.
    Template(TemplateCategoryKind),
}

/// The template categories that matter for policy, without the open `Other` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateCategoryKind {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategoryKind {
    /// Maps a stored category; an unknown category is treated as marketing, the most
    /// restricted and most expensive one.
    pub fn from_category(c: &TemplateCategory) -> Self {
        match c {
            TemplateCategory::Utility => Self::Utility,
            TemplateCategory::Authentication => Self::Authentication,
            TemplateCategory::Marketing | TemplateCategory::Other(_) => Self::Marketing,
        }
    }
}

/// A free-form message was refused because the customer-service window is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("customer-service window closed; send an approved template instead")]
pub struct WindowDenial {
    /// When the window closed; `None` if the user never wrote.
    pub closed_at: Option<i64>,
}

/// Meta's pair rate as turns: one message per `gap_ms` from one number to one user. Given when
/// the next turn is free (`next_at_ms`, stored per pair; `None` when we never sent), a send at
/// `now_ms` either takes the turn now (the one after is free `gap_ms` later), or reserves the
/// next free turn, to be used within [`PAIR_TURN_WINDOW_MS`] of its start: a burst of waiters
/// gets one turn each, in order, instead of racing for the same one on every redelivery.
/// Reserved turns are `gap_ms + PAIR_TURN_WINDOW_MS + PAIR_TURN_MARGIN_MS` apart, so that a
/// holder sending at the end of its window is still `gap_ms` ahead of the next, and every turn
/// keeps [`PAIR_TURN_MARGIN_MS`] for the difference in the two requests' way to Meta.
pub fn pair_turn(next_at_ms: Option<i64>, now_ms: i64, gap_ms: i64) -> PairTurn {
    match next_at_ms {
        Some(at_ms) if at_ms > now_ms => PairTurn::Reserve {
            at_ms,
            next_at_ms: at_ms + gap_ms + PAIR_TURN_WINDOW_MS + PAIR_TURN_MARGIN_MS,
        },
        _ => PairTurn::Take {
            next_at_ms: now_ms + gap_ms + PAIR_TURN_MARGIN_MS,
        },
    }
}

/// Meta measures the pair rate between its requests' arrivals, not between our decisions: the
/// one who takes a turn sends after the store's answer, the holder of a reservation straight
/// away. A turn keeps this much on top of the gap for that difference.
pub const PAIR_TURN_MARGIN_MS: i64 = 500;

/// Whether a turn reserved at `at_ms` may still be used at `now_ms` (after waiting for its
/// start, if early). A holder that comes back later reserves a new turn: sending late could
/// crowd the next holder's.
pub fn reserved_turn_usable(at_ms: i64, now_ms: i64) -> bool {
    now_ms <= at_ms + PAIR_TURN_WINDOW_MS
}

/// How long after its start a reserved turn may be used.
pub const PAIR_TURN_WINDOW_MS: i64 = 1_500;

/// What [`pair_turn`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairTurn {
    /// Send now; the next turn is free at `next_at_ms`.
    Take { next_at_ms: i64 },
    /// The turn starting at `at_ms` is ours; the next is free at `next_at_ms`.
    Reserve { at_ms: i64, next_at_ms: i64 },
}

/// Meta's pair rate: about one message every 6 s from one business number to one user.
pub const PAIR_RATE_GAP_MS: i64 = 6_000;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_790_000_000;

    #[test]
    fn window_is_open_for_exactly_24_hours_after_the_last_message() {
        let s = WindowState::default().with_inbound(T0, false);
        assert!(s.csw_open(T0));
        assert!(s.csw_open(T0 + CSW_SECONDS - 1));
        assert!(!s.csw_open(T0 + CSW_SECONDS));
    }

    #[test]
    fn free_form_needs_an_open_window_and_templates_do_not() {
        let never = WindowState::default();
        assert_eq!(
            never.permits(OutboundKind::FreeForm, T0),
            Err(WindowDenial { closed_at: None })
        );
        let s = never.with_inbound(T0, false);
        assert!(s.permits(OutboundKind::FreeForm, T0 + 10).is_ok());
        assert_eq!(
            s.permits(OutboundKind::FreeForm, T0 + CSW_SECONDS),
            Err(WindowDenial {
                closed_at: Some(T0 + CSW_SECONDS)
            })
        );
        let t = OutboundKind::Template(TemplateCategoryKind::Marketing);
        assert!(never.permits(t, T0).is_ok());
    }

    #[test]
    fn reply_within_24h_of_a_referral_opens_a_72h_free_entry_point() {
        let s = WindowState::default()
            .with_inbound(T0, true)
            .with_business_reply(T0 + 3600);
        assert_eq!(s.fep_opened_at, Some(T0 + 3600));
        assert!(s.fep_open(T0 + 3600 + FEP_SECONDS - 1));
        assert!(!s.fep_open(T0 + 3600 + FEP_SECONDS));
        // A second reply does not move it.
        let s2 = s.with_business_reply(T0 + 7200);
        assert_eq!(s2.fep_opened_at, Some(T0 + 3600));
    }

    #[test]
    fn late_reply_or_no_referral_opens_no_free_entry_point() {
        let late = WindowState::default()
            .with_inbound(T0, true)
            .with_business_reply(T0 + FEP_REPLY_WITHIN_SECONDS);
        assert_eq!(late.fep_opened_at, None);
        let plain = WindowState::default()
            .with_inbound(T0, false)
            .with_business_reply(T0 + 1);
        assert_eq!(plain.fep_opened_at, None);
    }

    #[test]
    fn pair_rate_reserves_the_next_turn_for_each_waiter() {
        let g = PAIR_RATE_GAP_MS;
        let (w, m) = (PAIR_TURN_WINDOW_MS, PAIR_TURN_MARGIN_MS);
        assert_eq!(
            pair_turn(None, 10_000, g),
            PairTurn::Take {
                next_at_ms: 16_000 + m
            }
        );
        // Sent at 10 000: the first waiter gets 16 500, the second the turn after it.
        assert_eq!(
            pair_turn(Some(16_000 + m), 12_000, g),
            PairTurn::Reserve {
                at_ms: 16_000 + m,
                next_at_ms: 22_000 + w + 2 * m
            }
        );
        assert_eq!(
            pair_turn(Some(22_000 + w + 2 * m), 12_001, g),
            PairTurn::Reserve {
                at_ms: 22_000 + w + 2 * m,
                next_at_ms: 28_000 + 2 * w + 3 * m
            }
        );
        assert_eq!(
            pair_turn(Some(16_000), 16_000, g),
            PairTurn::Take {
                next_at_ms: 22_000 + m
            }
        );
        assert!(reserved_turn_usable(16_000, 15_000), "early: wait for it");
        assert!(reserved_turn_usable(16_000, 16_000 + w));
        assert!(!reserved_turn_usable(16_000, 16_001 + w), "lapsed");
    }

    proptest! {
        /// Whatever order inbound messages arrive in, the window ends 24 h after the newest.
        #[test]
        fn window_depends_only_on_the_newest_message(mut times in prop::collection::vec(0i64..10_000_000, 1..20)) {
            let fold = |ts: &[i64]| ts.iter().fold(WindowState::default(), |s, &t| s.with_inbound(T0 + t, false));
            let a = fold(&times);
            times.reverse();
            let b = fold(&times);
            let newest = T0 + *times.iter().max().unwrap();
            prop_assert_eq!(a, b);
            prop_assert_eq!(a.csw_expires_at(), Some(newest + CSW_SECONDS));
        }

        /// A late, older message never shortens the window.
        #[test]
        fn older_message_never_shortens_the_window(t in 0i64..1_000_000, older_by in 0i64..1_000_000) {
            let s = WindowState::default().with_inbound(T0 + t, false);
            let after = s.with_inbound(T0 + t - older_by, false);
            prop_assert_eq!(after.csw_expires_at(), s.csw_expires_at());
        }

        /// Free-form is allowed exactly when now is within 24 h after the last message.
        #[test]
        fn free_form_allowed_iff_within_24h(last in 0i64..1_000_000, dt in -10i64..200_000) {
            let s = WindowState::default().with_inbound(T0 + last, false);
            let now = T0 + last + dt;
            let allowed = s.permits(OutboundKind::FreeForm, now).is_ok();
            prop_assert_eq!(allowed, now < T0 + last + CSW_SECONDS);
        }

        /// However sends are attempted, and however late within its window each holder of a
        /// reserved turn sends, no two sends are closer than the gap and the margin; every
        /// attempt gets a turn.
        #[test]
        fn pair_turns_are_a_gap_apart(
            attempts in prop::collection::vec((0i64..60_000, 0i64..=PAIR_TURN_WINDOW_MS), 1..30),
        ) {
            let mut attempts = attempts;
            attempts.sort_unstable();
            let mut next = None;
            let mut sends: Vec<i64> = Vec::new();
            for (now, late) in attempts {
                match pair_turn(next, now, PAIR_RATE_GAP_MS) {
                    PairTurn::Take { next_at_ms } => {
                        sends.push(now);
                        next = Some(next_at_ms);
                    }
                    PairTurn::Reserve { at_ms, next_at_ms } => {
                        prop_assert!(at_ms > now);
                        prop_assert!(reserved_turn_usable(at_ms, at_ms + late));
                        sends.push(at_ms + late);
                        next = Some(next_at_ms);
                    }
                }
            }
            sends.sort_unstable();
            let least = PAIR_RATE_GAP_MS + PAIR_TURN_MARGIN_MS;
            prop_assert!(sends.windows(2).all(|w| w[1] - w[0] >= least), "{:?}", sends);
        }
    }
}
