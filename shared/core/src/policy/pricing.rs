//! How Meta prices an outbound message under per-message pricing (PMP, from 1 Jul 2025), as
//! the `category` and `type` its status webhooks will carry.
//!
//! - marketing templates: always charged;
//! - authentication templates: always charged (the international rate in some markets);
//! - utility templates: free inside an open customer-service window, charged outside;
//! - non-template (service) messages: free, and only possible inside the window;
//! - everything is free inside a free entry point window.
//!
//! Meta announced that from 1 Oct 2026 service messages and utility templates inside the window
//! are charged too ([`PricingRegime::Pmp2026`]). The reference marks this "confirm on Meta's live
//! page", so the regime is chosen by date with a per-deployment override.

use super::window::{OutboundKind, TemplateCategoryKind, WindowState};
use crate::webhook::{PricingCategory, PricingType};

/// Which set of PMP rules applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PricingRegime {
    /// 1 Jul 2025 – 30 Sep 2026: service and in-window utility are free.
    Pmp2025,
    /// From 1 Oct 2026: service and in-window utility are charged; the FEP stays free.
    Pmp2026,
}

/// 2026-10-01T00:00:00Z.
pub const PMP2026_STARTS_AT: i64 = 1_790_812_800;

impl PricingRegime {
    /// The regime in force at `now` by Meta's announced dates.
    pub fn in_force_at(now: i64) -> Self {
        if now >= PMP2026_STARTS_AT {
            PricingRegime::Pmp2026
        } else {
            PricingRegime::Pmp2025
        }
    }
}

/// The pricing verdict for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedAs {
    pub category: PricingCategory,
    pub kind: PricingType,
}

impl PricedAs {
    /// Whether Meta charges for it.
    pub fn is_charged(&self) -> bool {
        self.kind.is_charged()
    }
}

/// Prices a message of `kind` sent at `now` to a user whose windows are `state`.
/// `international_authentication` says whether the recipient's market charges the
/// authentication-international rate.
pub fn price_message(
    kind: OutboundKind,
    state: &WindowState,
    now: i64,
    regime: PricingRegime,
    international_authentication: bool,
) -> PricedAs {
    use PricingCategory as C;
    use PricingType as T;
    if state.fep_open(now) {
        return PricedAs {
            category: C::ReferralConversion,
            kind: T::FreeEntryPoint,
        };
    }
    let in_csw = state.csw_open(now);
    let free_in_csw = |category| PricedAs {
        category,
        kind: if in_csw && regime == PricingRegime::Pmp2025 {
            T::FreeCustomerService
        } else {
            T::Regular
        },
    };
    match kind {
        OutboundKind::FreeForm => free_in_csw(C::Service),
        OutboundKind::Template(TemplateCategoryKind::Utility) => free_in_csw(C::Utility),
        OutboundKind::Template(TemplateCategoryKind::Marketing) => PricedAs {
            category: C::Marketing,
            kind: T::Regular,
        },
        OutboundKind::Template(TemplateCategoryKind::Authentication) => PricedAs {
            category: if international_authentication {
                C::AuthenticationInternational
            } else {
                C::Authentication
            },
            kind: T::Regular,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::window::CSW_SECONDS;
    use proptest::prelude::*;

    const T0: i64 = 1_780_000_000; // before the 2026 regime
    const MKT: OutboundKind = OutboundKind::Template(TemplateCategoryKind::Marketing);
    const UTIL: OutboundKind = OutboundKind::Template(TemplateCategoryKind::Utility);
    const AUTH: OutboundKind = OutboundKind::Template(TemplateCategoryKind::Authentication);

    fn in_window() -> WindowState {
        WindowState::default().with_inbound(T0, false)
    }

    #[test]
    fn utility_is_free_inside_the_window_and_charged_outside() {
        let p = price_message(UTIL, &in_window(), T0 + 60, PricingRegime::Pmp2025, false);
        assert_eq!(p.kind, PricingType::FreeCustomerService);
        let p = price_message(
            UTIL,
            &in_window(),
            T0 + CSW_SECONDS,
            PricingRegime::Pmp2025,
            false,
        );
        assert_eq!(p.kind, PricingType::Regular);
        assert_eq!(p.category, PricingCategory::Utility);
    }

    #[test]
    fn service_is_free_in_2025_and_charged_from_october_2026() {
        let p = price_message(
            OutboundKind::FreeForm,
            &in_window(),
            T0 + 1,
            PricingRegime::Pmp2025,
            false,
        );
        assert_eq!(
            (p.category.clone(), p.is_charged()),
            (PricingCategory::Service, false)
        );
        let p = price_message(
            OutboundKind::FreeForm,
            &in_window(),
            T0 + 1,
            PricingRegime::Pmp2026,
            false,
        );
        assert!(p.is_charged());
        assert_eq!(
            PricingRegime::in_force_at(PMP2026_STARTS_AT - 1),
            PricingRegime::Pmp2025
        );
        assert_eq!(
            PricingRegime::in_force_at(PMP2026_STARTS_AT),
            PricingRegime::Pmp2026
        );
    }

    #[test]
    fn authentication_uses_the_international_category_when_asked() {
        let p = price_message(
            AUTH,
            &WindowState::default(),
            T0,
            PricingRegime::Pmp2025,
            true,
        );
        assert_eq!(p.category, PricingCategory::AuthenticationInternational);
        assert!(p.is_charged());
    }

    #[test]
    fn everything_is_free_in_a_free_entry_point_window() {
        let s = WindowState::default()
            .with_inbound(T0, true)
            .with_business_reply(T0 + 10);
        for kind in [MKT, UTIL, AUTH, OutboundKind::FreeForm] {
            let p = price_message(kind, &s, T0 + 48 * 3600, PricingRegime::Pmp2026, false);
            assert_eq!(p.kind, PricingType::FreeEntryPoint);
        }
    }

    fn any_kind() -> impl Strategy<Value = OutboundKind> {
        prop_oneof![
            Just(MKT),
            Just(UTIL),
            Just(AUTH),
            Just(OutboundKind::FreeForm)
        ]
    }

    proptest! {
        /// Marketing is charged whenever no free entry point is open, in any regime and window.
        #[test]
        fn marketing_is_always_charged_outside_a_free_entry_point(
            last in proptest::option::of(0i64..500_000), dt in 0i64..500_000, new_regime: bool
        ) {
            let s = last.map_or(WindowState::default(), |l| WindowState::default().with_inbound(T0 + l, false));
            let regime = if new_regime { PricingRegime::Pmp2026 } else { PricingRegime::Pmp2025 };
            let p = price_message(MKT, &s, T0 + dt, regime, false);
            prop_assert_eq!(&p.category, &PricingCategory::Marketing);
            prop_assert!(p.is_charged());
        }

        /// Under the 2025 rules nothing sent inside the window is charged except marketing and
        /// authentication.
        #[test]
        fn only_marketing_and_authentication_are_charged_in_window_2025(kind in any_kind(), dt in 0i64..CSW_SECONDS) {
            let p = price_message(kind, &in_window(), T0 + dt, PricingRegime::Pmp2025, false);
            let expect_charged = matches!(kind, OutboundKind::Template(TemplateCategoryKind::Marketing | TemplateCategoryKind::Authentication));
            prop_assert_eq!(p.is_charged(), expect_charged);
        }
    }
}
