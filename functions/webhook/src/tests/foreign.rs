//! The Meta events the middleware does not own: published verbatim (or their location, when
//! too large), malformed values quarantined, and nothing acknowledged that is not durable.

use super::*;

#[tokio::test]
async fn an_unhandled_field_is_published_verbatim_with_its_field_waba_and_time() {
    let w = webhook();
    let body = fixture("unknown-field.json");
    let (resp, tally) = signed(&w, &body).await;
    assert_eq!((resp.status, tally.published), (200, 1));
    let published = w.ports.meta_events.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    let (event, attributes) = &published[0];
    let event: serde_json::Value = serde_json::from_str(event).unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let change = &sent["entry"][0]["changes"][0];
    assert_eq!(event["kind"], "unhandled");
    assert_eq!(event["field"], change["field"]);
    assert_eq!(event["value"], change["value"], "verbatim");
    assert_eq!(event["waba_id"], sent["entry"][0]["id"]);
    assert_eq!(event["entry_time"], sent["entry"][0]["time"]);
    let attribute = |name: &str| {
        attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(attribute("field").as_deref(), Some("flows"));
    assert_eq!(attribute("kind").as_deref(), Some("unhandled"));
    assert_eq!(
        attribute("event_id"),
        event["event_id"].as_str().map(str::to_owned)
    );
    assert!(w.ports.quarantine.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_value_is_quarantined_and_published_and_its_neighbour_applied() {
    let w = webhook();
    let (resp, tally) = signed(&w, &fixture("malformed-known-field.json")).await;
    assert_eq!(resp.status, 200);
    assert_eq!((tally.published, tally.applied), (1, 1));
    let kept = w.ports.quarantine.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, "malformed/message_template_status_update");
    assert_eq!(
        kept[0].0,
        br#"{
      "unexpected": true
     }"#
    );
    let events = w.ports.meta_events.events();
    assert_eq!(events[0]["kind"], "malformed");
    assert_eq!(
        events[0]["quarantined"],
        "mem://malformed/message_template_status_update/1"
    );
    assert!(events[0]["reason"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn one_odd_message_is_published_and_its_neighbours_reach_the_bots() {
    let w = webhook();
    let (resp, tally) = signed(&w, &fixture("messages-with-one-malformed-part.json")).await;
    assert_eq!(resp.status, 200);
    assert_eq!((tally.applied, tally.published), (3, 2));
    let forwarded: Vec<String> = w
        .ports
        .inbound
        .bodies()
        .iter()
        .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["message"]["id"].to_string())
        .collect();
    assert_eq!(forwarded, ["\"wamid.GOOD1\"", "\"wamid.GOOD2\""]);
    let parts: Vec<_> = w
        .ports
        .meta_events
        .events()
        .iter()
        .map(|e| (e["part"].clone(), e["value"]["id"].clone()))
        .collect();
    assert_eq!(
        parts,
        [
            (
                serde_json::json!("messages"),
                serde_json::json!("wamid.ODD")
            ),
            (serde_json::json!("statuses"), serde_json::Value::Null),
        ]
    );
}

#[tokio::test]
async fn a_value_too_large_for_the_topic_goes_to_s3_and_the_event_names_it() {
    let w = webhook();
    let huge = "x".repeat(300 * 1024);
    let body = serde_json::to_vec(&serde_json::json!({"object": "whatsapp_business_account", "entry": [
        {"id": "1029", "time": 1_751_234_567, "changes": [{"field": "history", "value": {"history": [{"chunk": huge}]}}]}]}))
    .unwrap();
    let (resp, tally) = signed(&w, &body).await;
    assert_eq!((resp.status, tally.published), (200, 1));
    let published = w.ports.meta_events.published.lock().unwrap().clone();
    let size = published[0].0.len()
        + published[0]
            .1
            .iter()
            .map(|(k, v)| k.len() + "String".len() + v.len())
            .sum::<usize>();
    assert!(size < 262_144, "SNS's limit, body and attributes: {size}");
    let event: serde_json::Value = serde_json::from_str(&published[0].0).unwrap();
    assert!(event.get("value").is_none());
    assert_eq!(event["value_location"], "mem://oversized/history/1");
    let kept = w.ports.quarantine.kept.lock().unwrap();
    assert!(kept[0].0.len() > 300 * 1024);
}

#[tokio::test]
async fn system_errors_and_messages_without_a_user_are_published_not_dropped() {
    let w = webhook();
    let (resp, tally) = signed(&w, &fixture("system-errors.json")).await;
    assert_eq!((resp.status, tally.published), (200, 1));
    let events = w.ports.meta_events.events();
    assert_eq!(events[0]["kind"], "system_error");
    assert_eq!(events[0]["part"], "errors");
    assert!(events[0]["value"]["code"].is_i64());

    let no_user = r#"{"object":"whatsapp_business_account","entry":[{"id":"1029","changes":[{"field":"messages","value":{
        "metadata":{"display_phone_number":"1","phone_number_id":"106540352242922"},
        "messages":[{"id":"wamid.NOUSER","timestamp":"1751234567","type":"text","text":{"body":"hi"}}]}}]}]}"#;
    let (resp, tally) = signed(&w, no_user.as_bytes()).await;
    assert_eq!((resp.status, tally.published), (200, 1));
    let events = w.ports.meta_events.events();
    assert_eq!(events[1]["kind"], "skipped");
    assert_eq!(events[1]["reason"], "message_without_user");
    assert_eq!(events[1]["value"]["id"], "wamid.NOUSER");
}

#[tokio::test]
async fn when_the_topic_fails_the_event_is_queued_for_the_processor_not_acknowledged_away() {
    let w = webhook();
    w.ports.meta_events.fail.store(true, Ordering::SeqCst);
    let body = fixture("unknown-field.json");
    let (resp, tally) = signed(&w, &body).await;
    assert_eq!((resp.status, tally.queued), (200, 1));
    let queued = w.events.bodies();
    let again = whatsapp_core::webhook::Envelope::from_slice(queued[0].as_bytes()).unwrap();
    let original = whatsapp_core::webhook::Envelope::from_slice(&body).unwrap();
    assert_eq!(
        serde_json::to_value(&again.entry[0].changes).unwrap(),
        serde_json::to_value(&original.entry[0].changes).unwrap(),
        "the change travels verbatim"
    );

    w.events.fail.store(true, Ordering::SeqCst);
    let (resp, _) = signed(&w, &body).await;
    assert_eq!(
        resp.status, 500,
        "neither published nor queued: Meta retries"
    );
}

#[tokio::test]
async fn when_an_item_cannot_be_queued_meta_is_asked_to_retry() {
    let w = webhook();
    w.ports.inbound.fail.store(true, Ordering::SeqCst);
    w.events.fail.store(true, Ordering::SeqCst);
    let (resp, _) = signed(&w, &fixture("inbound-text.json")).await;
    assert_eq!(resp.status, 500);
    // The bots' queue failing alone is covered by the events queue.
    w.events.fail.store(false, Ordering::SeqCst);
    let (resp, tally) = signed(&w, &fixture("inbound-text.json")).await;
    assert_eq!((resp.status, tally.queued), (200, 1));
    let queued: Envelope = serde_json::from_str(&w.events.bodies()[0]).unwrap();
    assert_eq!(queued.items().count(), 1);
}
