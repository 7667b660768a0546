//! The local template rules, one violation at a time and all at once.

use super::*;
use serde_json::json;

fn submission(v: Value) -> TemplateSubmission {
    serde_json::from_value(v).unwrap()
}

fn codes(t: &TemplateSubmission) -> Vec<(String, String)> {
    validate(t).into_iter().map(|v| (v.path, v.code)).collect()
}

#[test]
fn a_good_utility_template_passes() {
    let t = submission(json!({
    "name": "order_update", "language": "en_US", "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["8812"]}},
        {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today.", "example": {"body_text": [["Ann", "8812"]]}},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {"type": "BUTTONS", "buttons": [
            {"type": "URL", "text": "Track", "url": "https://x.example/o/{{1}}", "example": ["https://x.example/o/8812"]},
            {"type": "QUICK_REPLY", "text": "Stop updates"}]}
    ]}));
    assert_eq!(codes(&t), []);
}

#[test]
fn named_parameters_need_named_examples() {
    let t = submission(json!({
        "name": "maint", "language": "pt_BR", "category": "UTILITY", "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Olá {{technician}}, a visita de {{maintenance}} está marcada.",
            "example": {"body_text_named_params": [{"param_name": "technician", "example": "Ana"}]}}]}));
    assert_eq!(
        codes(&t),
        [(
            "components[0].example.body_text_named_params".into(),
            "example_missing".into()
        )]
    );
}

#[test]
fn every_violation_is_reported_at_once() {
    let t = submission(json!({
    "name": "Bad Name!", "language": "english", "category": "PROMO",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "{{1}} and {{2}}"},
        {"type": "BODY", "text": "{{1}}{{3}} end {{name}}", "example": {"body_text": [["a"]]}},
        {"type": "FOOTER", "text": "Footer {{1}} that is far too long to be a footer of a WhatsApp template"},
        {"type": "BUTTONS", "buttons": [
            {"type": "URL", "text": "Go", "url": "http://x.example/{{1}}/y"},
            {"type": "OTP", "otp_type": "COPY_CODE"},
            {"type": "TELEPATHY", "text": "?"}]},
        {"type": "BODY", "text": "again"}
    ]}));
    let got = codes(&t);
    for want in [
        ("name", "name_format"),
        ("language", "language_format"),
        ("category", "category"),
        ("components[0].text", "too_many_variables"),
        ("components[0].example.header_text", "example_missing"),
        ("components[1].text", "mixed_parameters"),
        ("components[2].text", "too_long"),
        ("components[2].text", "variables_not_allowed"),
        ("components[3].buttons[0].url", "url_format"),
        ("components[3].buttons[0].example", "example_missing"),
        ("components[3].buttons[1].type", "category_structure"),
        ("components[3].buttons[2].type", "button_type"),
        ("components[4].type", "duplicate_component"),
    ] {
        assert!(
            got.contains(&(want.0.to_owned(), want.1.to_owned())),
            "missing {want:?} in {got:#?}"
        );
    }
    assert!(got.len() >= 13);
}

#[test]
fn positional_rules_sequence_edges_adjacency_and_examples() {
    let body = |text: &str, ex: Value| {
        submission(
            json!({"name": "t", "language": "en", "category": "MARKETING",
            "components": [{"type": "BODY", "text": text, "example": {"body_text": ex}}]}),
        )
    };
    assert_eq!(
        codes(&body("Hi {{1}} and {{3}}.", json!([["a", "b"]])))[0].1,
        "parameter_sequence"
    );
    assert_eq!(
        codes(&body("{{1}} is here.", json!([["a"]])))[0].1,
        "variable_at_edge"
    );
    assert_eq!(
        codes(&body("Hi there {{1}}", json!([["a"]])))[0].1,
        "variable_at_edge"
    );
    assert_eq!(
        codes(&body("Hi {{1}} {{2}} there.", json!([["a", "b"]])))[0].1,
        "adjacent_variables"
    );
    assert_eq!(
        codes(&body("Hi {{1}}, {{2}} there.", json!([["a"]])))[0].1,
        "example_count"
    );
    assert_eq!(codes(&body("Hi {{1}}, {{1}} there.", json!([["a"]]))), []);
}

#[test]
fn edit_limits_are_meta_s() {
    let now = 1_790_812_800;
    let approved = |edits: Vec<i64>| TemplateRecord {
        status: Some(TemplateStatus::Approved),
        category: Some(TemplateCategory::Utility),
        edits,
        ..TemplateRecord::default()
    };
    assert!(edit_allowed(&approved(vec![]), None, now).is_ok());
    assert_eq!(
        edit_allowed(&approved(vec![now - 3600]), None, now)
            .unwrap_err()
            .code,
        "edit_limit_day"
    );
    let ten: Vec<i64> = (1..=10).map(|d| now - d * 2 * 86_400).collect();
    assert_eq!(
        edit_allowed(&approved(ten), None, now).unwrap_err().code,
        "edit_limit_month"
    );
    assert_eq!(
        edit_allowed(&approved(vec![]), Some("MARKETING"), now)
            .unwrap_err()
            .code,
        "category_locked"
    );
    let rejected = TemplateRecord {
        status: Some(TemplateStatus::Rejected),
        edits: vec![now - 10],
        ..TemplateRecord::default()
    };
    assert!(edit_allowed(&rejected, Some("MARKETING"), now).is_ok());
    let pending = TemplateRecord {
        status: Some(TemplateStatus::Pending),
        ..TemplateRecord::default()
    };
    assert_eq!(
        edit_allowed(&pending, None, now).unwrap_err().code,
        "not_editable"
    );
}

#[test]
fn authentication_templates_have_their_own_structure() {
    let ok = submission(
        json!({"name": "otp", "language": "en_US", "category": "AUTHENTICATION",
        "components": [{"type": "BODY", "add_security_recommendation": true},
                       {"type": "FOOTER", "code_expiration_minutes": 10},
                       {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}]}),
    );
    assert_eq!(codes(&ok), []);
    let bad = submission(
        json!({"name": "otp", "language": "en_US", "category": "AUTHENTICATION",
        "components": [{"type": "HEADER", "format": "TEXT", "text": "Code"},
                       {"type": "BODY", "text": "Your code is {{1}}"}]}),
    );
    let got = codes(&bad);
    assert!(got.contains(&("components[0]".into(), "category_structure".into())));
    assert!(got.contains(&("components[1].text".into(), "category_structure".into())));
    assert!(got.contains(&("components".into(), "category_structure".into())));
}

#[test]
fn send_ttl_is_checked_against_the_category_s_range() {
    let with_ttl = |category: &str, ttl: i64| {
        let mut v = json!({"name": "t", "language": "en", "category": category,
            "message_send_ttl_seconds": ttl,
            "components": [{"type": "BODY", "text": "Your order is ready."}]});
        if category == "AUTHENTICATION" {
            v["components"] = json!([{"type": "BODY", "text": "Your code is ready."},
                {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}]);
        }
        codes(&submission(v))
            .into_iter()
            .filter(|(_, c)| c == "ttl_range")
            .count()
    };
    for (category, ok, bad) in [
        ("UTILITY", [30, 43_200], [29, 43_201]),
        ("AUTHENTICATION", [30, 900], [29, 901]),
        ("MARKETING", [43_200, 2_592_000], [43_199, 2_592_001]),
    ] {
        for t in ok {
            assert_eq!(with_ttl(category, t), 0, "{category} {t}");
        }
        for t in bad {
            assert_eq!(with_ttl(category, t), 1, "{category} {t}");
        }
    }
    // It is sent to Meta as submitted.
    let t = submission(json!({"name": "t", "language": "en", "category": "UTILITY",
        "message_send_ttl_seconds": 600, "components": [{"type": "BODY", "text": "x"}]}));
    assert_eq!(
        serde_json::to_value(&t).unwrap()["message_send_ttl_seconds"],
        600
    );
}

#[test]
fn voice_call_and_request_contact_info_buttons_have_their_rules() {
    let with_buttons = |buttons: Value| {
        codes(&submission(
            json!({"name": "t", "language": "en", "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Talk to us."},
                           {"type": "BUTTONS", "buttons": buttons}]}),
        ))
    };
    assert_eq!(
        with_buttons(json!([{"type": "VOICE_CALL", "text": "Call us"},
                            {"type": "REQUEST_CONTACT_INFO"}])),
        []
    );
    assert_eq!(
        with_buttons(json!([{"type": "VOICE_CALL"}])),
        [("components[1].buttons[0].text".into(), "button_text".into())]
    );
    assert_eq!(
        with_buttons(json!([{"type": "REQUEST_CONTACT_INFO", "text": "x".repeat(26)}])),
        [("components[1].buttons[0].text".into(), "button_text".into())]
    );
    assert_eq!(
        with_buttons(
            json!([{"type": "VOICE_CALL", "text": "a"}, {"type": "VOICE_CALL", "text": "b"}])
        ),
        [("components[1].buttons".into(), "too_many_buttons".into())]
    );
    assert_eq!(
        with_buttons(json!([{"type": "REQUEST_CONTACT_INFO"}, {"type": "REQUEST_CONTACT_INFO"}])),
        [("components[1].buttons".into(), "too_many_buttons".into())]
    );
}
