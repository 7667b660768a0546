
#[test]
fn a_conversation_action_passes_whatever_the_window_and_consent() {
    let action =
        job(json!({"type": "mark_read", "mark_read": {"message_id": "wamid.IN", "typing_indicator": true}}))
            .message;
    assert!(is_action(&action));
    assert!(!is_action(&text()));
    for consent in [opted_out(), marketing_stopped(), Consent::default()] {
        let facts = SendFacts {
            window: closed_window(),
            consent,
            marketing_paused: true,
            template: None,
        };
        assert_eq!(
            decide(&action, &facts, NOW, &ON),
            Decision::Pass {
                business_initiated: false
            },
            "no window, consent or messaging-limit gate for an action"
        );
    }
}
