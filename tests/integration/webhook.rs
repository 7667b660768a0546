//! The webhook and the event processor on ministack, fed by webhooks the Cloud API simulator
//! produces and signs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use simulator::{InboundSpec, SimConfig, Simulator, Tier};
use webhook::{Settings, Webhook};
use whatsapp_aws::{AwsIngestPorts, CachedSecrets, SecretsManagerFetcher, SqsQueue, s3_client};
use whatsapp_core::ports::{ContactStore, MessageStore, SessionStore, UserKey};
use whatsapp_core::signature::sign;

use crate::support::{APP_SECRET, IngestStack, VERIFY_TOKEN, drain, ingest_stack, now};

pub(crate) type AwsWebhook =
    Webhook<AwsIngestPorts, CachedSecrets<SecretsManagerFetcher>, SqsQueue>;

pub(crate) const WABA: &str = "102290129340398";
pub(crate) const PHONE: &str = "106540352242922";

pub(crate) fn webhook(stack: &IngestStack) -> AwsWebhook {
    Webhook {
        ports: AwsIngestPorts::new(&stack.aws, &stack.resources),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&stack.aws),
                &stack.secret_id,
            ),
            Duration::from_secs(300),
        ),
        events: SqsQueue::new(
            aws_sdk_sqs::Client::new(&stack.aws),
            &stack.events_queue_url,
        ),
        settings: Settings::default(),
    }
}

/// Plays API Gateway in front of the handler.
pub(crate) async fn front(handler: Arc<AwsWebhook>) -> String {
    async fn serve(
        State(h): State<Arc<AwsWebhook>>,
        method: Method,
        Query(q): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let sig = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        let now_ms = now() * 1000;
        let out = h
            .handle(
                webhook::Request {
                    method: method.as_str(),
                    query: &q,
                    signature: sig,
                    body: &body,
                },
                now_ms,
            )
            .await;
        (StatusCode::from_u16(out.status).unwrap(), out.body)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/webhook", axum::routing::any(serve))
        .with_state(handler);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/webhook")
}

pub(crate) async fn simulator(callback: &str) -> simulator::RunningSimulator {
    let cfg = SimConfig {
        app_secret: APP_SECRET.into(),
        callback_url: Some(callback.into()),
        status_delay_ms: 5,
        pair_rate_gap_ms: 0,
        ..SimConfig::default()
    };
    let running = Simulator::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    running.sim.create_waba(WABA, Tier::T2K);
    running.sim.create_phone_number(PHONE, WABA, "15550783881");
    running.sim.add_token("tok", None);
    running
}

pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut f: impl FnMut() -> F,
) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_conversation_through_the_simulator() {
    let stack = ingest_stack().await;
    let handler = Arc::new(webhook(&stack));
    let url = front(Arc::clone(&handler)).await;
    let sim = simulator(&url).await;
    // GET verification as Meta does it.
    let r = reqwest::get(format!(
        "{url}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42"
    ))
    .await
    .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "42".to_owned())
    );

    // A user writes (non-ASCII text: Meta escapes it, the signature covers the escapes).
    let uid = sim.sim.add_user(Some("447700900001"), None, true);
    sim.sim
        .user_sends(
            &uid,
            InboundSpec {
                phone_number_id: PHONE.into(),
                message: json!({"type": "text", "text": {"body": "Olá ☕ café?"}}),
                referral: None,
                context: None,
                hide_phone_number: false,
                media: None,
            },
        )
        .unwrap();
    let inbound = {
        let mut got = Vec::new();
        for _ in 0..20 {
            got = drain(&stack.aws, &stack.resources.inbound_queue_url).await;
            if !got.is_empty() {
                break;
            }
        }
        got
    };
    assert_eq!(inbound.len(), 1);
    let event: whatsapp_core::ingest::InboundEvent =
        serde_json::from_str(inbound[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(event.user.user_id.as_deref(), Some(uid.as_str()));
    assert!(
        matches!(&event.message.content, whatsapp_core::webhook::MessageContent::Text(t) if t.body == "Olá ☕ café?")
    );

    let ports = AwsIngestPorts::new(&stack.aws, &stack.resources);
    let key = UserKey {
        phone_number_id: PHONE.into(),
        user: uid.clone(),
    };
    assert!(ports.sessions.window(&key).await.unwrap().csw_open(now()));
    assert_eq!(
        ports
            .contacts
            .resolve_alias(PHONE, "447700900001")
            .await
            .unwrap(),
        Some(uid.clone()),
        "wa_id is an alias of the BSUID"
    );

    // We reply through the simulator's Graph API; its statuses come back as webhooks.
    let resp: Value = reqwest::Client::new()
        .post(format!("{}/v25.0/{PHONE}/messages", sim.base_url()))
        .bearer_auth("tok")
        .json(&json!({"messaging_product": "whatsapp", "to": "447700900001", "type": "text", "text": {"body": "Sim!"}, "biz_opaque_callback_data": "job-42"}))
        .send().await.unwrap().json().await.unwrap();
    let wamid = resp["messages"][0]["id"].as_str().unwrap().to_owned();
    eventually("read status", || {
        let m = ports.messages.clone();
        let w = wamid.clone();
        async move {
            m.message(&w)
                .await
                .unwrap()
                .is_some_and(|r| r.status == Some(whatsapp_core::webhook::StatusKind::Read))
        }
    })
    .await;
    let record = ports.messages.message(&wamid).await.unwrap().unwrap();
    assert_eq!(record.callback_data.as_deref(), Some("job-42"));
    assert_eq!(record.pricing_category.as_deref(), Some("service"));
    assert!(
        sim.sim.deliveries().iter().all(|d| d.status == Some(200)),
        "every webhook acknowledged"
    );
}

/// Delivers `body` as Meta would: signed with the app secret over the exact bytes.
async fn deliver(h: &AwsWebhook, body: &[u8]) -> (webhook::Response, webhook::Tally) {
    h.receive(Some(&sign(APP_SECRET.as_bytes(), body)), body, now() * 1000)
        .await
}

fn envelope(changes: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": now(), "changes": changes}]})).unwrap()
}

fn status_change(wamid: &str, status: &str, ts: i64) -> Value {
    let mut s = json!({"id": wamid, "status": status, "timestamp": ts.to_string(), "recipient_id": "447700900002"});
    if status == "failed" {
        s["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    } else {
        s["pricing"] = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"});
    }
    json!([{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE}, "statuses": [s]}}])
}

#[tokio::test]
async fn twenty_concurrent_deliveries_of_one_message_have_one_effect() {
    let stack = ingest_stack().await;
    let handler = Arc::new(webhook(&stack));
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/meta/inbound-text.json"
    ))
    .unwrap();
    let sig = sign(APP_SECRET.as_bytes(), &body);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (h, body, sig) = (Arc::clone(&handler), body.clone(), sig.clone());
            tokio::spawn(async move { h.receive(Some(&sig), &body, now() * 1000).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().0.status, 200);
    }
    assert_eq!(
        drain(&stack.aws, &stack.resources.inbound_queue_url)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn statuses_in_every_order_settle_on_the_same_state() {
    let stack = ingest_stack().await;
    let handler = webhook(&stack);
    let ports = AwsIngestPorts::new(&stack.aws, &stack.resources);
    let orders: [[&str; 3]; 6] = [
        ["sent", "delivered", "read"],
        ["sent", "read", "delivered"],
        ["delivered", "sent", "read"],
        ["delivered", "read", "sent"],
        ["read", "sent", "delivered"],
        ["read", "delivered", "sent"],
    ];
    for (i, order) in orders.iter().enumerate() {
        let wamid = format!("wamid.order{i}");
        for (k, s) in order.iter().enumerate() {
            let body = envelope(status_change(&wamid, s, 1_000 + k as i64));
            let (resp, _) = deliver(&handler, &body).await;
            assert_eq!(resp.status, 200);
        }
        let r = ports.messages.message(&wamid).await.unwrap().unwrap();
        assert_eq!(
            r.status,
            Some(whatsapp_core::webhook::StatusKind::Read),
            "{order:?}"
        );
        assert_eq!(r.pricing_category.as_deref(), Some("utility"));
    }
    // `failed` is never left, whatever comes after it.
    for s in ["failed", "sent", "delivered", "read"] {
        let body = envelope(status_change("wamid.failed", s, 5));
        deliver(&handler, &body).await;
    }
    let r = ports
        .messages
        .message("wamid.failed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.status, r.error_code),
        (
            Some(whatsapp_core::webhook::StatusKind::Failed),
            Some(131026)
        )
    );
}

fn inbound(wamid: &str, ts: i64, text: &str) -> Value {
    json!([{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
        "contacts": [{"profile": {"name": "Ann"}, "wa_id": "447700900003", "user_id": "GB.777"}],
        "messages": [{"from": "447700900003", "from_user_id": "GB.777", "id": wamid, "timestamp": ts.to_string(), "type": "text", "text": {"body": text}}]}}])
}

#[tokio::test]
async fn a_late_old_message_does_not_shorten_the_window_and_keywords_set_consent() {
    let stack = ingest_stack().await;
    let handler = webhook(&stack);
    let ports = AwsIngestPorts::new(&stack.aws, &stack.resources);
    let t = now();
    for (id, ts, text) in [("wamid.new", t, "STOP"), ("wamid.old", t - 3600, "hello")] {
        let body = envelope(inbound(id, ts, text));
        assert_eq!(deliver(&handler, &body).await.0.status, 200);
    }
    let key = UserKey {
        phone_number_id: PHONE.into(),
        user: "GB.777".into(),
    };
    assert_eq!(
        ports.sessions.window(&key).await.unwrap().csw_expires_at(),
        Some(t + 24 * 3600)
    );
    assert!(ports.contacts.consent(&key).await.unwrap().opted_out());
    let body = envelope(inbound("wamid.start", t + 5, "start"));
    deliver(&handler, &body).await;
    assert!(ports.contacts.consent(&key).await.unwrap().opted_in());
}

#[tokio::test]
async fn signed_invalid_json_lands_in_the_quarantine_bucket() {
    let stack = ingest_stack().await;
    let handler = webhook(&stack);
    let body = b"{\"object\":\"whatsapp_business_account\",\"entry\":[{";
    let (resp, _) = deliver(&handler, body).await;
    assert_eq!(resp.status, 200);
    let listed = s3_client(&stack.aws, true)
        .list_objects_v2()
        .bucket(&stack.bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("webhooks/invalid-json/"));
}

#[tokio::test]
async fn items_that_fail_inline_reach_the_event_processor() {
    let stack = ingest_stack().await;
    // The messages table is missing: statuses cannot be processed inline.
    let mut broken = stack.resources.clone();
    broken.messages_table = "no-such-table".into();
    let handler = Webhook {
        ports: AwsIngestPorts::new(&stack.aws, &broken),
        ..webhook(&stack)
    };
    let body = envelope(status_change("wamid.fallback", "delivered", 10));
    let (resp, tally) = deliver(&handler, &body).await;
    assert_eq!(
        (resp.status, tally.queued),
        (200, 1),
        "acknowledged because the item is durable on the events queue"
    );

    let records: Vec<aws_lambda_events::event::sqs::SqsMessage> =
        drain(&stack.aws, &stack.events_queue_url)
            .await
            .into_iter()
            .map(|m| {
                let mut r = aws_lambda_events::event::sqs::SqsMessage::default();
                r.message_id = m.message_id;
                r.body = m.body;
                r
            })
            .collect();
    assert_eq!(records.len(), 1);
    let processor = event_processor::Processor {
        ports: AwsIngestPorts::new(&stack.aws, &stack.resources),
        ingest: Default::default(),
        concurrency: 4,
    };
    assert!(
        processor
            .handle(&records, now() * 1000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let r = AwsIngestPorts::new(&stack.aws, &stack.resources)
        .messages
        .message("wamid.fallback")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.status,
        Some(whatsapp_core::webhook::StatusKind::Delivered)
    );
}

#[tokio::test]
async fn template_and_phone_state_webhooks_update_their_tables() {
    let stack = ingest_stack().await;
    let handler = webhook(&stack);
    for f in [
        "template-status-rejected.json",
        "template-category-update.json",
        "phone-number-quality-update.json",
        "business-capability-update.json",
        "account-update.json",
        "account-update-volume-tier.json",
    ] {
        let body =
            std::fs::read(format!("{}/../events/meta/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let (resp, tally) = deliver(&handler, &body).await;
        assert_eq!((resp.status, tally.applied), (200, 1), "{f}");
    }
    use whatsapp_core::ports::{PhoneStateStore, TemplateStore};
    let ports = AwsIngestPorts::new(&stack.aws, &stack.resources);
    let t = ports
        .templates
        .template(WABA, "order_update", "en_US")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            t.status.as_ref().map(|s| s.as_str()),
            t.reason.as_deref(),
            t.category.as_ref().map(|c| c.as_str())
        ),
        (Some("REJECTED"), Some("INVALID_FORMAT"), Some("MARKETING"))
    );
    let pn = ports
        .phones
        .state(&format!("PN#{WABA}#15550783881"))
        .await
        .unwrap();
    assert_eq!(
        pn.get("messaging_limit").map(String::as_str),
        Some("TIER_10K")
    );
    let waba = ports.phones.state(&format!("WABA#{WABA}")).await.unwrap();
    assert_eq!(
        waba.get("account_event").map(String::as_str),
        Some("ACCOUNT_RESTRICTION"),
        "a volume-tier update leaves the account's state as it was"
    );
    // The volume tier is its own item, and finance lists it.
    let tiers = finance::tiers::TierTable::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        &stack.resources.phone_state_table,
    );
    let listed = tiers.list(Some(WABA)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].effective_month.as_str(),
            listed[0].pricing_category.as_str(),
            listed[0].region.as_str(),
            listed[0].tier.as_str()
        ),
        ("2026-12", "UTILITY", "India", "2")
    );
    assert_eq!(listed[0].reported_at, 1_780_000_000);
    assert!(tiers.list(Some("other-waba")).await.unwrap().is_empty());
    let csv = finance::tiers::render(&listed, finance::report::Format::Csv);
    assert_eq!(
        csv,
        format!(
            "waba,month,category,region,tier,reported_at\n{WABA},2026-12,UTILITY,India,2,1780000000\n"
        )
    );
}

/// A writer that appends to a shared buffer, for capturing logs.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's logs as Lambda writes them: JSON, INFO and above, every crate (the
/// AWS SDK's own logs included).
pub(crate) fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn logs_contain_no_phone_number_message_text_token_or_secret() {
    let stack = ingest_stack().await;
    let (captured, _guard) = capture_logs();

    let text = "my card is 4111 and my number is +447700900009";
    let mut broken = stack.resources.clone();
    broken.messages_table = "no-such-table".into();
    let good = webhook(&stack);
    let failing = Webhook {
        ports: AwsIngestPorts::new(&stack.aws, &broken),
        ..webhook(&stack)
    };
    let bodies = [
        envelope(inbound("wamid.pii1", now(), text)),
        envelope(status_change("wamid.pii2", "failed", now())),
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/meta/user-preferences.json"
        ))
        .unwrap(),
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/meta/malformed-known-field.json"
        ))
        .unwrap(),
    ];
    for body in &bodies {
        let sig = sign(APP_SECRET.as_bytes(), body);
        good.receive(Some(&sig), body, now() * 1000).await;
        failing.receive(Some(&sig), body, now() * 1000).await;
        good.receive(Some("sha256=00"), body, now() * 1000).await;
    }
    let q: HashMap<String, String> = [
        ("hub.mode", "subscribe"),
        ("hub.verify_token", "wrong-token-guess"),
        ("hub.challenge", "1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    good.handle(
        webhook::Request {
            method: "GET",
            query: &q,
            signature: None,
            body: b"",
        },
        now() * 1000,
    )
    .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("webhook processed") && logs.contains("signature refused"),
        "logs were captured: {logs}"
    );
    for secret in [
        "447700900009",
        "447700900003",
        "447700900002",
        "16505551234",
        " 4111 ", // with spaces: a timestamp may hold the digits
        "my card",
        "GB.777",
        APP_SECRET,
        VERIFY_TOKEN,
        "wrong-token-guess",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn http_edge_cases_against_the_real_adapters() {
    let stack = ingest_stack().await;
    let url = front(Arc::new(webhook(&stack))).await;
    let http = reqwest::Client::new();
    let get = |q: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(format!("{url}?{q}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let wrong_last_byte = format!("{}X", &VERIFY_TOKEN[..VERIFY_TOKEN.len() - 1]);
    assert_eq!(
        get(format!(
            "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=9"
        ))
        .await,
        200
    );
    assert_eq!(
        get(format!(
            "hub.mode=subscribe&hub.verify_token={wrong_last_byte}&hub.challenge=9"
        ))
        .await,
        403
    );
    assert_eq!(get("hub.mode=subscribe&hub.challenge=9".into()).await, 403);
    assert_eq!(
        get(format!(
            "hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=9"
        ))
        .await,
        403
    );

    let post = |body: Vec<u8>, sig: Option<String>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut r = http.post(&url).body(body);
            if let Some(s) = sig {
                r = r.header("x-hub-signature-256", s);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/meta/batched-2-entries-2-changes.json"
    ))
    .unwrap();
    let good = sign(APP_SECRET.as_bytes(), &body);
    for bad in [
        None,
        Some(good.replace("sha256=", "sha1=")),
        Some(good[..40].to_owned()),
        Some(format!("sha256={}", "x".repeat(64))),
        Some(sign(b"wrong", &body)),
    ] {
        assert_eq!(post(body.clone(), bad.clone()).await, 401, "{bad:?}");
    }
    assert!(
        drain(&stack.aws, &stack.resources.inbound_queue_url)
            .await
            .is_empty(),
        "nothing enqueued for a bad signature"
    );
    assert_eq!(
        post(vec![b' '; 3 * 1024 * 1024 + 64 * 1024 + 1], None).await,
        413
    );
    assert_eq!(post(body, Some(good)).await, 200);
    assert_eq!(
        drain(&stack.aws, &stack.resources.inbound_queue_url)
            .await
            .len(),
        2,
        "2 entries x 2 messages: the texts reach the bots"
    );
    assert_eq!(
        drain(&stack.aws, &stack.resources.media_queue_url)
            .await
            .len(),
        2,
        "and the images go through the media fetcher first"
    );
}

/// Subscribes a fresh queue to the stack's Meta events topic, filtered on `field`.
async fn subscriber(stack: &IngestStack, field: &str) -> String {
    let url = crate::support::queue(&aws_sdk_sqs::Client::new(&stack.aws), field).await;
    let policy = json!({ "field": [field] }).to_string();
    crate::support::subscribe(
        &stack.aws,
        &stack.resources.meta_events_topic_arn,
        &url,
        Some(&policy),
    )
    .await;
    url
}

fn attribute(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

#[tokio::test]
async fn events_we_do_not_own_reach_subscribers_by_field_on_sns() {
    let stack = ingest_stack().await;
    let handler = webhook(&stack);
    let flows_queue = subscriber(&stack, "flows").await;
    let calls_queue = subscriber(&stack, "calls").await;
    let calls = json!({"calls": [{"id": "wacid.1", "event": "connect", "from": "447700900001"}]});
    let body = envelope(json!([
        {"field": "calls", "value": calls},
        {"field": "flows", "value": {"event": "FLOW_STATUS_CHANGE", "flow_id": "9", "new_status": "BLOCKED"}},
        {"field": "message_template_status_update", "value": {"unexpected": true}},
    ]));
    let (resp, tally) = deliver(&handler, &body).await;
    assert_eq!((resp.status, tally.published), (200, 3));

    let got = drain(&stack.aws, &calls_queue).await;
    assert_eq!(got.len(), 1, "the calls subscriber gets only calls");
    let event: Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(event["value"], calls, "verbatim");
    assert_eq!(event["waba_id"], WABA);
    assert_eq!(attribute(&got[0], "kind").as_deref(), Some("unhandled"));
    assert_eq!(
        attribute(&got[0], "event_id").as_deref(),
        event["event_id"].as_str()
    );
    let got = drain(&stack.aws, &flows_queue).await;
    assert_eq!(got.len(), 1, "the flows subscriber gets only flows");
    assert_eq!(attribute(&got[0], "field").as_deref(), Some("flows"));

    // The unfiltered subscriber sees all three; the malformed one names its S3 copy.
    let all = drain(&stack.aws, &stack.meta_events_sink_url).await;
    assert_eq!(all.len(), 3);
    let malformed = all
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
        .find(|e| e["kind"] == "malformed")
        .expect("the malformed value is published");
    let location = malformed["quarantined"].as_str().unwrap();
    let key = location
        .strip_prefix(&format!("s3://{}/", stack.bucket))
        .expect("in the stack's quarantine bucket");
    let object = s3_client(&stack.aws, true)
        .get_object()
        .bucket(&stack.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let kept = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&kept).unwrap(),
        json!({"unexpected": true})
    );
}
