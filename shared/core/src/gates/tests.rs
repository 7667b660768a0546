//! The gates as a table: every refusal reason, and the order in which they are checked.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::job::SendJob;
use crate::policy::{CSW_SECONDS, ReachRefused};
use crate::webhook::TemplateCategory;

/// The gates Cloud API changes of 2025–26 added: OTP templates by phone number (131062) and
/// the per-user marketing hold (131049).
mod cloud_api_2026;

const NOW: i64 = 1_790_900_000;
const ON: GateSettings = GateSettings {
    require_opt_in: true,
    opt_out_exempt: CategorySet::AUTHENTICATION,
};

fn job(message: serde_json::Value) -> SendJob {
    SendJob::parse(
        &json!({"version": 1, "idempotency_key": "k", "phone_number_id": "1",
                "to": {"wa_id": "16505551234"}, "message": message})
        .to_string(),
    )
    .unwrap()
}

fn text() -> OutboundMessage {
    job(json!({"type": "text", "text": {"body": "hi"}})).message
}

/// `order_update` with one body variable; `n` parameters supplied.
fn template(n: usize) -> OutboundMessage {
    let params: Vec<_> = (0..n)
        .map(|i| json!({"type": "text", "text": format!("p{i}")}))
        .collect();
    let components = if n == 0 {
        json!([])
    } else {
        json!([{"type": "body", "parameters": params}])
    };
    job(
        json!({"type": "template", "template": {"name": "order_update",
        "language": {"code": "en_US"}, "components": components}}),
    )
    .message
}

fn record(status: TemplateStatus, category: TemplateCategory) -> TemplateRecord {
    TemplateRecord {
        status: Some(status),
        category: Some(category),
        components: Some(json!([{"type": "BODY", "text": "Order {{1}} shipped"}]).to_string()),
        ..TemplateRecord::default()
    }
}

fn open_window() -> WindowState {
    WindowState::default().with_inbound(NOW - 60, false)
}

fn closed_window() -> WindowState {
    WindowState::default().with_inbound(NOW - CSW_SECONDS - 1, false)
}

fn opted_in() -> Consent {
    Consent {
        opt_in_at: Some(NOW - 100),
        ..Consent::default()
    }
}

fn opted_out() -> Consent {
    Consent {
        opt_in_at: Some(NOW - 100),
        opt_out_at: Some(NOW - 50),
        ..Consent::default()
    }
}

fn marketing_stopped() -> Consent {
    Consent {
        marketing_stop_at: Some(NOW - 10),
        ..opted_in()
    }
}

#[derive(Debug)]
struct Row {
    name: &'static str,
    message: OutboundMessage,
    window: WindowState,
    consent: Consent,
    paused: bool,
    template: Option<TemplateRecord>,
    settings: GateSettings,
    /// `None`: passes; `Some(reason)`: refused with it.
    want: Option<&'static str>,
}

fn row(name: &'static str, message: OutboundMessage, want: Option<&'static str>) -> Row {
    Row {
        name,
        message,
        window: open_window(),
        consent: Consent::default(),
        paused: false,
        template: Some(record(TemplateStatus::Approved, TemplateCategory::Utility)),
        settings: ON,
        want,
    }
}

fn table() -> Vec<Row> {
    use TemplateCategory::{Authentication, Marketing, Utility};
    use TemplateStatus as S;
    let approved = |c| Some(record(S::Approved, c));
    vec![
        // Passing paths.
        row("free-form in the window", text(), None),
        Row {
            template: approved(Utility),
            ..row("utility template in the window", template(1), None)
        },
        Row {
            window: closed_window(),
            consent: opted_in(),
            template: approved(Marketing),
            ..row(
                "marketing to an opted-in user outside the window",
                template(1),
                None,
            )
        },
        Row {
            window: closed_window(),
            settings: GateSettings {
                require_opt_in: false,
                ..ON
            },
            ..row(
                "no opt-in needed when REQUIRE_OPT_IN is off",
                template(1),
                None,
            )
        },
        Row {
            template: approved(Authentication),
            ..row("authentication template in the window", template(1), None)
        },
        // Gate 2: consent.
        Row {
            window: closed_window(),
            consent: opted_out(),
            ..row(
                "opted out, outside the window",
                template(1),
                Some("opted_out"),
            )
        },
        Row {
            window: closed_window(),
            ..row(
                "no opt-in, outside the window",
                template(1),
                Some("no_opt_in"),
            )
        },
        Row {
            consent: marketing_stopped(),
            template: approved(Marketing),
            ..row("marketing stopped", template(1), Some("marketing_opt_out"))
        },
        Row {
            consent: opted_out(),
            template: approved(Marketing),
            ..row(
                "marketing to an opted-out user in the window",
                template(1),
                Some("opted_out"),
            )
        },
        // An opt-out holds inside the window too (the STOP message itself opens it): templates
        // are refused but for the exempt categories; a free-form reply still goes.
        Row {
            consent: opted_out(),
            template: approved(Utility),
            ..row(
                "utility to an opted-out user in the window",
                template(1),
                Some("opted_out"),
            )
        },
        Row {
            consent: opted_out(),
            ..row(
                "a free-form reply to an opted-out user in the window",
                text(),
                None,
            )
        },
        Row {
            consent: opted_out(),
            template: approved(Authentication),
            ..row(
                "an authentication code to an opted-out user",
                template(1),
                None,
            )
        },
        Row {
            consent: opted_out(),
            window: closed_window(),
            template: approved(Authentication),
            settings: GateSettings {
                require_opt_in: false,
                ..ON
            },
            ..row(
                "an authentication code outside the window",
                template(1),
                None,
            )
        },
        Row {
            consent: opted_out(),
            template: approved(Authentication),
            settings: GateSettings {
                opt_out_exempt: CategorySet::NONE,
                ..ON
            },
            ..row("no exemption configured", template(1), Some("opted_out"))
        },
        Row {
            consent: opted_out(),
            template: approved(Utility),
            settings: GateSettings {
                opt_out_exempt: CategorySet {
                    utility: true,
                    ..CategorySet::NONE
                },
                ..ON
            },
            ..row("utility exempted by configuration", template(1), None)
        },
        Row {
            template: None,
            consent: marketing_stopped(),
            ..row(
                "an unknown template counts as marketing",
                template(1),
                Some("marketing_opt_out"),
            )
        },
        Row {
            paused: true,
            template: approved(Marketing),
            ..row(
                "marketing paused on the number",
                template(1),
                Some("marketing_paused"),
            )
        },
        Row {
            paused: true,
            template: approved(Utility),
            ..row("the pause leaves utility alone", template(1), None)
        },
        // Gate 3: window.
        Row {
            window: closed_window(),
            consent: opted_in(),
            ..row(
                "free-form outside the window",
                text(),
                Some("window_closed"),
            )
        },
        Row {
            window: WindowState::default(),
            consent: opted_in(),
            ..row(
                "free-form to a user who never wrote",
                text(),
                Some("window_closed"),
            )
        },
        // Gate 4: template.
        Row {
            template: None,
            ..row("unknown template", template(1), Some("template_unknown"))
        },
        Row {
            template: Some(record(S::Paused, Utility)),
            ..row("paused template", template(1), Some("template_paused"))
        },
        Row {
            template: Some(record(S::Disabled, Utility)),
            ..row("disabled template", template(1), Some("template_disabled"))
        },
        Row {
            template: Some(record(S::Pending, Utility)),
            ..row(
                "pending template",
                template(1),
                Some("template_not_approved"),
            )
        },
        Row {
            template: Some(TemplateRecord {
                status: None,
                ..record(S::Approved, Utility)
            }),
            ..row(
                "template of no known status",
                template(1),
                Some("template_not_approved"),
            )
        },
        Row {
            template: Some(TemplateRecord {
                components: None,
                ..record(S::Approved, Utility)
            }),
            ..row(
                "template without a definition",
                template(1),
                Some("template_definition_missing"),
            )
        },
        Row {
            template: approved(Utility),
            ..row(
                "parameters that do not fit",
                template(2),
                Some("template_parameters"),
            )
        },
        // Gate order: where several gates would refuse, the earliest wins.
        Row {
            window: closed_window(),
            consent: opted_out(),
            template: None,
            ..row("consent before template", template(1), Some("opted_out"))
        },
        Row {
            window: closed_window(),
            consent: opted_out(),
            ..row("consent before window", text(), Some("opted_out"))
        },
        Row {
            window: closed_window(),
            consent: Consent {
                marketing_stop_at: Some(NOW),
                ..opted_out()
            },
            template: approved(Marketing),
            ..row(
                "opt-out before marketing stop",
                template(1),
                Some("opted_out"),
            )
        },
        Row {
            window: closed_window(),
            template: approved(Marketing),
            consent: marketing_stopped(),
            paused: true,
            ..row(
                "marketing stop before pause",
                template(1),
                Some("marketing_opt_out"),
            )
        },
        Row {
            paused: true,
            template: Some(record(S::Paused, Marketing)),
            ..row(
                "marketing pause before template status",
                template(1),
                Some("marketing_paused"),
            )
        },
        Row {
            template: Some(TemplateRecord {
                components: None,
                ..record(S::Disabled, Utility)
            }),
            ..row(
                "status before definition",
                template(1),
                Some("template_disabled"),
            )
        },
    ]
}

fn decide_row(r: &Row) -> Decision {
    let facts = SendFacts {
        window: r.window,
        consent: r.consent,
        marketing_paused: r.paused,
        template: r.template.as_ref(),
    };
    decide(&r.message, &facts, NOW, &r.settings)
}

#[test]
fn every_row_of_the_gate_table_gets_its_verdict() {
    for r in table() {
        let got = match decide_row(&r) {
            Decision::Pass { .. } => None,
            Decision::Refuse(refusal) => Some(refusal.reason()),
            Decision::Defer { .. } => Some("deferred"),
        };
        assert_eq!(got, r.want, "{}", r.name);
    }
}

#[test]
fn gate_one_checks_the_number_and_the_deadline() {
    assert_eq!(admit(false), Err(Refusal::UnknownPhoneNumber));
    assert_eq!(admit(true), Ok(()));
    assert_eq!(
        deadline(Some(NOW - 1), NOW, false),
        Err(Refusal::Expired {
            after_unknown_attempt: false
        })
    );
    let unknown = deadline(Some(NOW - 1), NOW, true).unwrap_err();
    assert!(unknown.detail().contains("outcome is unknown"));
    assert_eq!(deadline(Some(NOW), NOW, false), Ok(()));
    assert_eq!(deadline(None, NOW, true), Ok(()));
}

#[test]
fn gate_five_refuses_only_when_the_budget_is_used_up() {
    assert_eq!(messaging_limit(Reach::Reserved), Ok(()));
    assert_eq!(messaging_limit(Reach::AlreadyCounted), Ok(()));
    let refused = messaging_limit(Reach::Refused(ReachRefused {
        limit: 250,
        retry_at: NOW + 60,
    }))
    .unwrap_err();
    assert_eq!(refused.reason(), "messaging_limit");
    assert!(refused.detail().contains("250 unique users"));
}

#[test]
fn the_tables_cover_every_refusal_reason() {
    let mut seen: BTreeSet<&str> = table().iter().filter_map(|r| r.want).collect();
    seen.extend([
        "unknown_phone_number",
        "expired",
        "messaging_limit",
        "bsuid_not_supported",
    ]); // the tests above and below
    // Decided from the idempotency record; its detail is the one the sender publishes.
    seen.insert(Refusal::IdempotencyKeyReused.reason());
    let all: BTreeSet<&str> = Refusal::REASONS.into_iter().collect();
    assert_eq!(seen, all);
}

#[test]
fn business_initiated_passes_must_take_a_messaging_limit_slot() {
    let r = Row {
        window: closed_window(),
        consent: opted_in(),
        ..row("outside", template(1), None)
    };
    assert_eq!(
        decide_row(&r),
        Decision::Pass {
            business_initiated: true
        }
    );
    assert_eq!(
        decide_row(&row("inside", text(), None)),
        Decision::Pass {
            business_initiated: false
        }
    );
}

fn any_consent() -> impl Strategy<Value = Consent> {
    let t = proptest::option::of(NOW - 1_000..NOW);
    let held = proptest::option::of(NOW - 2 * 86_400..NOW);
    (t.clone(), t.clone(), t.clone(), t, held).prop_map(|(a, b, c, d, e)| Consent {
        opt_in_at: a,
        opt_out_at: b,
        marketing_stop_at: c,
        marketing_resume_at: d,
        marketing_held_at: e,
    })
}

fn any_row() -> impl Strategy<Value = Row> {
    (
        0usize..3,
        proptest::option::of(0i64..3 * CSW_SECONDS),
        any_consent(),
        any::<bool>(),
        proptest::option::of((0usize..4, 0usize..4)),
        any::<bool>(),
    )
        .prop_map(|(n, ago, consent, paused, tpl, require)| {
            let statuses = [
                TemplateStatus::Approved,
                TemplateStatus::Paused,
                TemplateStatus::Pending,
                TemplateStatus::Disabled,
            ];
            let categories = [
                TemplateCategory::Marketing,
                TemplateCategory::Utility,
                TemplateCategory::Authentication,
                TemplateCategory::Other("NEW".into()),
            ];
            Row {
                name: "generated",
                message: if n == 0 { text() } else { template(n - 1) },
                window: ago.map_or(WindowState::default(), |a| {
                    WindowState::default().with_inbound(NOW - a, false)
                }),
                consent,
                paused,
                template: tpl.map(|(s, c)| record(statuses[s].clone(), categories[c].clone())),
                settings: GateSettings {
                    require_opt_in: require,
                    ..ON
                },
                want: None,
            }
        })
}

proptest! {
    /// The facts `needs` says are not needed never change the decision, so the sender may skip
    /// reading them.
    #[test]
    fn facts_not_needed_never_change_the_decision(r in any_row(), other in any_consent(), other_pause: bool) {
        let kind = kind_of(&r.message, r.template.as_ref());
        let needs = needs(kind, &r.window, NOW);
        let before = decide_row(&r);
        let changed = Row {
            consent: if needs.consent { r.consent } else { other },
            paused: if needs.marketing_pause { r.paused } else { other_pause },
            ..r
        };
        prop_assert_eq!(before, decide_row(&changed));
    }

    /// Whatever the facts: free-form passes only inside the window; templates only when
    /// approved; an opted-out user gets only free-form replies and exempt categories; no
    /// marketing reaches a user who stopped it.
    #[test]
    fn a_pass_keeps_every_rule(r in any_row()) {
        if let Decision::Pass { business_initiated } = decide_row(&r) {
            prop_assert_eq!(business_initiated, !r.window.csw_open(NOW));
            match r.message.as_template() {
                None => prop_assert!(r.window.csw_open(NOW)),
                Some(_) => {
                    let t = r.template.as_ref().unwrap();
                    prop_assert_eq!(t.status.as_ref(), Some(&TemplateStatus::Approved));
                    let marketing = !matches!(t.category, Some(TemplateCategory::Utility | TemplateCategory::Authentication));
                    if marketing {
                        prop_assert!(!r.consent.marketing_stopped() && !r.consent.opted_out() && !r.paused);
                        prop_assert!(r.consent.marketing_held_until(NOW).is_none());
                    }
                }
            }
            if r.consent.opted_out() {
                let kind = kind_of(&r.message, r.template.as_ref());
                prop_assert!(kind == OutboundKind::FreeForm || r.settings.opt_out_exempt.contains(kind));
            }
            if business_initiated && r.settings.require_opt_in {
                prop_assert!(r.consent.opted_in());
            }
        }
    }
}

#[test]
fn exempt_categories_parse_from_their_names() {
    assert_eq!(CategorySet::parse("").unwrap(), CategorySet::NONE);
    assert_eq!(
        CategorySet::parse(" authentication ").unwrap(),
        CategorySet::AUTHENTICATION
    );
    let both = CategorySet::parse("AUTHENTICATION,UTILITY").unwrap();
    assert!(both.utility && both.authentication && !both.marketing);
    assert!(CategorySet::parse("SERVICE").is_err());
}
