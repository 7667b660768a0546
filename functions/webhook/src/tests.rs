//! Handler tests on in-memory ports. The same paths run against ministack and the simulator in
//! `tests/integration/webhook.rs`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use whatsapp_core::signature::sign;
use whatsapp_fakes::{MemoryPorts, MemoryQueue, StaticSecrets};

use super::*;

/// The Meta events we do not own.
mod foreign;

const SECRET: &str = "app-secret-1234567";
const VERIFY: &str = "verify-token-xyz";
const NOW_MS: i64 = 1_751_234_567_000;

type TestWebhook = Webhook<MemoryPorts, StaticSecrets, MemoryQueue>;

fn webhook() -> TestWebhook {
    Webhook {
        ports: MemoryPorts::default(),
        secrets: StaticSecrets::new(SECRET, VERIFY, "access-token-secret"),
        events: MemoryQueue::default(),
        settings: Settings::default(),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../events/meta/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn post(w: &TestWebhook, body: &[u8], sig: Option<&str>) -> (Response, Tally) {
    w.receive(sig, body, NOW_MS).await
}

async fn signed(w: &TestWebhook, body: &[u8]) -> (Response, Tally) {
    let sig = sign(SECRET.as_bytes(), body);
    post(w, body, Some(&sig)).await
}

async fn get(w: &TestWebhook, pairs: &[(&str, &str)]) -> Response {
    let query: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    w.handle(
        Request {
            method: "GET",
            query: &query,
            signature: None,
            body: b"",
        },
        NOW_MS,
    )
    .await
}

#[tokio::test]
async fn verification_get_table() {
    let w = webhook();
    let good = get(
        &w,
        &[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", VERIFY),
            ("hub.challenge", "1158201444"),
        ],
    )
    .await;
    assert_eq!(
        good,
        Response {
            status: 200,
            content_type: "text/plain",
            body: "1158201444".into()
        }
    );
    let wrong_last_byte = format!("{}Z", &VERIFY[..VERIFY.len() - 1]);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("hub.mode", "subscribe"),
            ("hub.verify_token", &wrong_last_byte),
            ("hub.challenge", "1"),
        ],
        vec![("hub.mode", "subscribe"), ("hub.challenge", "1")],
        vec![("hub.mode", "subscribe"), ("hub.verify_token", VERIFY)],
        vec![],
        vec![
            ("hub.mode", "unsubscribe"),
            ("hub.verify_token", VERIFY),
            ("hub.challenge", "1"),
        ],
    ];
    for c in cases {
        assert_eq!(get(&w, &c).await.status, 403, "{c:?}");
    }
}

#[tokio::test]
async fn every_bad_signature_form_is_refused_and_nothing_happens() {
    let w = webhook();
    let body = fixture("inbound-text.json");
    let good = sign(SECRET.as_bytes(), &body);
    let mut wrong = good.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(good.len() - 1.., last);
    let forms = [
        None,
        Some(good.replace("sha256=", "sha1=")),
        Some(good[..good.len() - 4].to_owned()),
        Some(format!("sha256={}", "g".repeat(64))),
        Some(wrong),
        Some(sign(b"another-secret", &body)),
    ];
    for f in forms {
        let (resp, tally) = post(&w, &body, f.as_deref()).await;
        assert_eq!(resp.status, 401, "{f:?}");
        assert_eq!(tally.items, 0);
    }
    assert!(w.ports.inbound.bodies().is_empty());
    assert!(w.ports.sessions.items.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_oversize_body_is_refused_before_hashing() {
    let w = webhook();
    let body = vec![b' '; w.settings.max_body_bytes + 1];
    let (resp, _) = post(&w, &body, None).await;
    assert_eq!(
        resp.status, 413,
        "413 even without a signature: the body is never hashed"
    );
}

#[tokio::test]
async fn signed_invalid_json_is_acknowledged_and_quarantined() {
    let w = webhook();
    let (resp, tally) = signed(
        &w,
        b"{\"object\": \"whatsapp_business_account\", \"entry\": [",
    )
    .await;
    assert_eq!((resp.status, tally.items), (200, 0));
    let kept = w.ports.quarantine.kept.lock().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, "invalid-json");
}

#[tokio::test]
async fn quarantined_bodies_and_values_are_counted_for_the_alarm() {
    let w = webhook();
    let (_, tally) = signed(&w, b"not json").await;
    assert_eq!(tally.quarantined, 1);
    assert_eq!(tally.metrics(1.0, NOW_MS)["EventsQuarantined"], 1.0);
    let (resp, tally) = signed(&w, &fixture("malformed-known-field.json")).await;
    assert_eq!((resp.status, tally.quarantined), (200, 1));
    assert_eq!(tally.metrics(1.0, NOW_MS)["EventsQuarantined"], 1.0);
    let (_, clean) = signed(&w, &fixture("inbound-text.json")).await;
    assert!(
        clean
            .metrics(1.0, NOW_MS)
            .get("EventsQuarantined")
            .is_none()
    );
}

#[tokio::test]
async fn an_inbound_message_opens_the_window_and_reaches_the_bots_once() {
    let w = webhook();
    let body = fixture("inbound-text.json");
    let (resp, tally) = signed(&w, &body).await;
    assert_eq!((resp.status, tally.applied), (200, 1));
    let (_, again) = signed(&w, &body).await;
    assert_eq!(again.duplicates, 1, "Meta's retry changes nothing");
    let forwarded = w.ports.inbound.bodies();
    assert_eq!(forwarded.len(), 1);
    let event: whatsapp_core::ingest::InboundEvent = serde_json::from_str(&forwarded[0]).unwrap();
    assert_eq!(
        event.user.user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(event.window_closes_at, Some(1_749_416_383 + 24 * 3600));
    let windows = w.ports.sessions.items.lock().unwrap();
    assert_eq!(windows.len(), 1, "keyed by the BSUID");
    assert_eq!(
        windows.keys().next().unwrap().user,
        "US.13491208655302741918"
    );
}

#[tokio::test]
async fn a_message_whose_content_is_unavailable_still_opens_the_window_and_reaches_the_bots() {
    let w = webhook();
    let (resp, tally) = signed(&w, &fixture("inbound-unavailable-131060.json")).await;
    assert_eq!((resp.status, tally.applied), (200, 1));
    let forwarded = w.ports.inbound.bodies();
    assert_eq!(
        forwarded.len(),
        1,
        "131060 is an inbound error, not a dropped message"
    );
    let event: whatsapp_core::ingest::InboundEvent = serde_json::from_str(&forwarded[0]).unwrap();
    assert!(event.content_unavailable);
    assert_eq!(event.message.errors[0].code, 131_060);
    assert_eq!(event.window_closes_at, Some(1_749_416_383 + 24 * 3600));
    // Any other message says nothing of it.
    let w = webhook();
    signed(&w, &fixture("inbound-text.json")).await;
    assert!(!w.ports.inbound.bodies()[0].contains("content_unavailable"));
}

#[tokio::test]
async fn a_batched_payload_processes_every_entry_change_and_item() {
    let w = webhook();
    let (resp, tally) = signed(&w, &fixture("batched-2-entries-2-changes.json")).await;
    assert_eq!(resp.status, 200);
    assert_eq!((tally.items, tally.applied), (6, 6));
    // Two texts straight to the bots; two images through the media fetcher first.
    assert_eq!(w.ports.inbound.bodies().len(), 2);
    assert_eq!(w.ports.media_fetch.bodies().len(), 2);
    assert_eq!(w.ports.messages.items.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn window_hits_are_reported_only_for_posts_carrying_inbound_messages() {
    let w = webhook();
    let (_, tally) = signed(&w, &fixture("batched-2-entries-2-changes.json")).await;
    assert_eq!((tally.inbound, tally.window_hits), (4, 4));
    let doc = tally.metrics(7.123_456_7, 1_795_435_200_000);
    assert_eq!(doc["WindowHits"], 4.0);
    assert_eq!(doc["WebhookItems"], 6.0);
    assert_eq!(doc["WebhookLatency"], 7.123, "rounded to the microsecond");
    let names = |d: &serde_json::Value| {
        d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&doc),
        ["WebhookLatency", "WebhookItems", "WindowHits"]
    );

    // Statuses only: no window to hit, so no value (the metric's sum is unchanged).
    let statuses = Tally {
        items: 1,
        applied: 1,
        ..Tally::default()
    };
    let doc = statuses.metrics(7.0, 1_795_435_200_000);
    assert!(doc.get("WindowHits").is_none());
    assert_eq!(names(&doc), ["WebhookLatency", "WebhookItems"]);
}

#[tokio::test]
async fn stop_keyword_and_user_preferences_update_consent() {
    let w = webhook();
    let body = String::from_utf8(fixture("inbound-text.json"))
        .unwrap()
        .replace("Does it come in another color?", " Stöp! ");
    signed(&w, body.as_bytes()).await;
    signed(&w, &fixture("user-preferences.json")).await;
    let consent = w.ports.contacts.consent.lock().unwrap().clone();
    let by_bsuid = consent
        .iter()
        .find(|(k, _)| k.user == "US.13491208655302741918")
        .unwrap()
        .1;
    assert!(by_bsuid.opted_out());
    let by_phone = consent
        .iter()
        .find(|(k, _)| k.user == "16505551234")
        .unwrap()
        .1;
    assert!(by_phone.marketing_stopped());
}

/// A function URL event (payload 2.0) from `events/`, as the entry point reads it.
fn url_event(name: &str) -> Incoming {
    let event = std::fs::read_to_string(format!(
        "{}/../../events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    Incoming::from_event(&serde_json::from_str(&event).unwrap()).unwrap()
}

#[tokio::test]
async fn the_entry_point_decodes_base64_bodies() {
    // Signed with SECRET over the decoded bytes of events/meta/inbound-text.json.
    let req = url_event("webhook-url-post-base64.json");
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.body,
        fixture("inbound-text.json"),
        "the HMAC sees the decoded bytes"
    );
    let (resp, _) = post(&webhook(), &req.body, req.signature.as_deref()).await;
    assert_eq!(resp.status, 200);
}

#[test]
fn a_query_that_is_not_a_valid_uri_is_still_read() {
    // lambda_http panics building a URI from this; Meta never sends it, an attacker might.
    let mut event: aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest =
        serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../../events/webhook-url-get-verify.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
    event.raw_query_string =
        Some("hub.mode=subscribe&hub.verify_token=a b|c^{}&hub.challenge=1".into());
    let req = Incoming::from_event(&event).unwrap();
    assert_eq!(
        req.query.get("hub.verify_token").map(String::as_str),
        Some("a b|c^{}")
    );
    event.is_base64_encoded = true;
    event.body = Some("not base64!".into());
    assert_eq!(Incoming::from_event(&event), None);
}

#[tokio::test]
async fn the_entry_point_reads_a_raw_query_string() {
    let req = url_event("webhook-url-get-verify.json");
    let query = req.query;
    assert_eq!(query.get("hub.challenge").map(String::as_str), Some("7+1"));
    let resp = webhook()
        .handle(
            Request {
                method: "GET",
                query: &query,
                signature: None,
                body: b"",
            },
            NOW_MS,
        )
        .await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "7+1"));
}

#[tokio::test]
async fn a_message_another_delivery_is_still_forwarding_goes_to_the_events_queue() {
    use whatsapp_core::ports::DedupeStore;
    let w = webhook();
    let body = fixture("inbound-text.json");
    let env = whatsapp_core::webhook::Envelope::from_slice(&body).unwrap();
    let wamid = match env.items().next().unwrap().1 {
        whatsapp_core::webhook::Item::Message { message, .. } => message.id.clone(),
        _ => panic!("the fixture is one inbound message"),
    };
    // A delivery that took the forward lease and then died: its lease has not run out yet.
    w.ports
        .dedupe
        .begin(
            &format!("in#{wamid}"),
            &wamid,
            "the-delivery-that-died",
            NOW_MS - 1_000,
            NOW_MS + 29_000,
            NOW_MS / 1000 + 3600,
        )
        .await
        .unwrap();
    let (resp, tally) = signed(&w, &body).await;
    // Acknowledged only because the item is durable on the events queue, whose processor
    // retries it once the lease runs out; the message is not lost.
    assert_eq!((resp.status, tally.queued, tally.duplicates), (200, 1, 0));
    assert_eq!(w.events.bodies().len(), 1);
    assert!(w.ports.inbound.bodies().is_empty());
}

#[tokio::test]
async fn with_the_placeholder_app_secret_every_post_is_refused_and_counted() {
    let mut w = webhook();
    w.secrets = StaticSecrets::new("SET-ME", VERIFY, "access-token-secret");
    // Anyone can compute an HMAC with the placeholder the template seeds.
    let body = fixture("inbound-text.json");
    let forged = sign(b"SET-ME", &body);
    let (resp, tally) = post(&w, &body, Some(&forged)).await;
    assert_eq!((resp.status, tally.items), (503, 0));
    assert!(tally.not_configured);
    assert_eq!(tally.metrics(1.0, NOW_MS)[NOT_CONFIGURED_METRIC], 1.0);
    assert!(w.ports.inbound.bodies().is_empty());
    assert!(w.ports.sessions.items.lock().unwrap().is_empty());
    // A short secret is refused the same way.
    w.secrets = StaticSecrets::new("short", VERIFY, "access-token-secret");
    let (resp, _) = post(&w, &body, Some(&sign(b"short", &body))).await;
    assert_eq!(resp.status, 503);
}

#[tokio::test]
async fn with_an_empty_verify_token_the_handshake_is_refused() {
    let mut w = webhook();
    w.secrets = StaticSecrets::new(SECRET, "", "access-token-secret");
    let r = get(
        &w,
        &[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", ""),
            ("hub.challenge", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 503);
}

#[test]
fn the_not_configured_alarm_watches_the_metric_the_refusal_emits() {
    let tally = Tally {
        not_configured: true,
        ..Tally::default()
    };
    let doc = tally.metrics(1.0, NOW_MS);
    let cw = &doc["_aws"]["CloudWatchMetrics"][0];
    let alarm = whatsapp_fakes::template_resource("WebhookNotConfiguredAlarm");
    assert!(alarm.contains(&format!("Namespace: {}", cw["Namespace"].as_str().unwrap())));
    assert!(alarm.contains(&format!("MetricName: {NOT_CONFIGURED_METRIC}")));
    assert!(alarm.contains("- Name: Function\n          Value: webhook"));
    assert_eq!(cw["Dimensions"][0], serde_json::json!(["Function"]));
    assert_eq!(doc["Function"], "webhook");
}

/// Found by the fuzz run: a timestamp of `i64::MAX` overflowed the window's arithmetic (a panic
/// in debug builds, a wrapped window in release). A message stamped after we received it is
/// taken as sent now.
#[tokio::test]
async fn a_message_stamped_in_the_far_future_opens_a_window_from_now() {
    use whatsapp_core::ports::{SessionStore, UserKey};
    let w = webhook();
    let body = String::from_utf8(fixture("inbound-text.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ts = v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = body.replace(&format!("\"{ts}\""), &i64::MAX.to_string());
    let (resp, tally) = signed(&w, body.as_bytes()).await;
    assert_eq!((resp.status, tally.applied), (200, 1));
    // Keyed by the business-scoped id the contact carries.
    let user = v["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"]
        .as_str()
        .unwrap();
    let key = UserKey {
        phone_number_id: v["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
            .as_str()
            .unwrap()
            .into(),
        user: user.into(),
    };
    let window = w.ports.sessions.window(&key).await.unwrap();
    assert_eq!(window.csw_expires_at(), Some(NOW_MS / 1000 + 300 + 86_400));
}

#[tokio::test]
async fn a_body_signed_by_any_configured_app_is_accepted_and_the_app_is_known() {
    use std::sync::Arc;
    use whatsapp_core::ports::{AppSecret, Secrets};
    let mut secrets = Secrets::single(SECRET, VERIFY, "access-token-secret");
    secrets.apps = vec![
        AppSecret {
            name: "support-app".into(),
            app_secret: "support-app-secret-0001".into(),
        },
        // A placeholder is never tried: anyone could sign with it.
        AppSecret {
            name: "unset".into(),
            app_secret: "SET-ME".into(),
        },
    ];
    let w = Webhook {
        secrets: StaticSecrets(Arc::new(secrets)),
        ..webhook()
    };
    let body = fixture("inbound-text.json");
    let (resp, tally) = post(&w, &body, Some(&sign(b"support-app-secret-0001", &body))).await;
    assert_eq!(
        (resp.status, tally.signed_by.as_deref()),
        (200, Some("support-app"))
    );
    let (resp, tally) = signed(&w, &body).await;
    assert_eq!(
        (resp.status, tally.signed_by.as_deref()),
        (200, Some("default"))
    );
    let (resp, _) = post(&w, &body, Some(&sign(b"SET-ME", &body))).await;
    assert_eq!(resp.status, 401);
    let (resp, _) = post(&w, &body, Some(&sign(b"some-other-app-secret", &body))).await;
    assert_eq!(resp.status, 401);
}

#[tokio::test]
async fn apps_alone_configure_the_webhook_and_placeholders_alone_do_not() {
    use std::sync::Arc;
    use whatsapp_core::ports::{AppSecret, Secrets};
    let app = |secret: &str| AppSecret {
        name: "only".into(),
        app_secret: secret.into(),
    };
    let mut secrets = Secrets::single("", VERIFY, "access-token-secret");
    secrets.apps = vec![app("only-app-secret-00001")];
    let w = Webhook {
        secrets: StaticSecrets(Arc::new(secrets.clone())),
        ..webhook()
    };
    let body = fixture("inbound-text.json");
    let (resp, tally) = post(&w, &body, Some(&sign(b"only-app-secret-00001", &body))).await;
    assert_eq!(
        (resp.status, tally.signed_by.as_deref()),
        (200, Some("only"))
    );
    secrets.apps = vec![app("SET-ME")];
    let w = Webhook {
        secrets: StaticSecrets(Arc::new(secrets)),
        ..webhook()
    };
    let (resp, tally) = post(&w, &body, Some(&sign(b"SET-ME", &body))).await;
    assert_eq!((resp.status, tally.not_configured), (503, true));
}
