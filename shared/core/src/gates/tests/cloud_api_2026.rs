use super::*;

#[test]
fn otp_authentication_templates_go_by_phone_number_or_not_at_all() {
    let otp = TemplateRecord {
        status: Some(TemplateStatus::Approved),
        category: Some(TemplateCategory::Authentication),
        components: Some(
            json!([{"type": "BODY", "text": "{{1}} is your code"},
                   {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "ONE_TAP"}]}])
            .to_string(),
        ),
        ..TemplateRecord::default()
    };
    assert!(needs_phone_number(Some(&otp)));
    let plain_auth = TemplateRecord {
        components: Some(json!([{"type": "BODY", "text": "{{1}} is your code"}]).to_string()),
        ..otp.clone()
    };
    assert!(!needs_phone_number(Some(&plain_auth)));
    let utility_with_otp_like_button = TemplateRecord {
        category: Some(TemplateCategory::Utility),
        ..otp.clone()
    };
    assert!(!needs_phone_number(Some(&utility_with_otp_like_button)));
    assert!(!needs_phone_number(None));

    assert_eq!(addressing(false, true, false), Ok(Addressing::AsGiven));
    assert_eq!(addressing(true, false, false), Ok(Addressing::AsGiven));
    assert_eq!(addressing(true, true, true), Ok(Addressing::PhoneNumber));
    let refused = addressing(true, true, false).unwrap_err();
    assert_eq!(refused.reason(), "bsuid_not_supported");
    assert!(refused.detail().contains("131062"));
}

#[test]
fn marketing_waits_24_hours_after_a_131049_from_any_job_and_nothing_else_does() {
    use TemplateCategory::{Marketing, Utility};
    let held = Consent {
        marketing_held_at: Some(NOW - 3_600),
        ..opted_in()
    };
    let marketing = Row {
        window: closed_window(),
        consent: held,
        template: Some(record(TemplateStatus::Approved, Marketing)),
        ..row("marketing, held", template(1), None)
    };
    assert_eq!(
        decide_row(&marketing),
        Decision::Defer {
            until: NOW - 3_600 + 86_400
        }
    );
    // A day after the refusal it goes again.
    let over = Row {
        consent: Consent {
            marketing_held_at: Some(NOW - 86_400),
            ..opted_in()
        },
        ..marketing
    };
    assert!(matches!(decide_row(&over), Decision::Pass { .. }));
    // Utility and free-form are not held; a refusal still wins over the hold.
    let utility = Row {
        consent: held,
        template: Some(record(TemplateStatus::Approved, Utility)),
        ..row("utility, held", template(1), None)
    };
    assert!(matches!(decide_row(&utility), Decision::Pass { .. }));
    let text_row = Row {
        consent: held,
        ..row("free-form, held", text(), None)
    };
    assert!(matches!(decide_row(&text_row), Decision::Pass { .. }));
    let stopped = Row {
        consent: Consent {
            marketing_stop_at: Some(NOW - 10),
            ..held
        },
        template: Some(record(TemplateStatus::Approved, Marketing)),
        ..row("marketing stopped and held", template(1), None)
    };
    assert_eq!(
        decide_row(&stopped),
        Decision::Refuse(Refusal::MarketingOptOut)
    );
}
