//! The sender on ministack against the Cloud API simulator: every gate, every error class, a
//! sender killed between its Graph call and its commit, token rotation, and mixed batches.
//! Status webhooks flow from the simulator through the real webhook handler into the messages
//! table, as in production, which is what reconciliation reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use sender::aws::{AwsSenderPorts, SenderResources};
use sender::{Outcome, Sender, SenderConfig, Verdict};
use serde_json::{Value, json};
use simulator::{Fault, FaultRoute, InboundSpec, SimConfig, Simulator, Tier};
use whatsapp_aws::{CachedSecrets, GraphHttpClient, GraphHttpConfig, SecretsManagerFetcher};
use whatsapp_core::graph::{
    MarkReadRequest, PhoneNumberInfo, SendMessageRequest, SendMessageResponse,
};
use whatsapp_core::ports::{
    ConsentEvent, ContactStore, GraphApi, GraphCallError, SessionStore, TemplateDefinition,
    TemplateStore, UserKey,
};

use crate::support::{IngestStack, drain, ingest_stack, now, queue, raw_item, table};
use crate::webhook::{PHONE, WABA, eventually, front, webhook};

pub(crate) struct Rig {
    pub(crate) stack: IngestStack,
    pub(crate) resources: SenderResources,
    pub(crate) sim: simulator::RunningSimulator,
}

pub(crate) async fn rig(configure: impl FnOnce(&mut SimConfig)) -> Rig {
    let stack = ingest_stack().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let resources = SenderResources {
        sessions_table: stack.resources.sessions_table.clone(),
        contacts_table: stack.resources.contacts_table.clone(),
        templates_table: stack.resources.templates_table.clone(),
        messages_table: stack.resources.messages_table.clone(),
        dedupe_table: stack.resources.dedupe_table.clone(),
        control_table: table(&ddb, "control").await,
        send_queue_url: queue(&sqs, "send").await,
        send_dlq_url: queue(&sqs, "send-dlq").await,
        outcomes_queue_url: queue(&sqs, "outcomes").await,
        media_ids_table: table(&ddb, "media-ids").await,
        s3_path_style: true,
    };
    // Statuses come back through the real webhook handler.
    let url = front(Arc::new(webhook(&stack))).await;
    let mut cfg = SimConfig {
        app_secret: crate::support::APP_SECRET.into(),
        callback_url: Some(url),
        status_delay_ms: 5,
        ..SimConfig::default()
    };
    configure(&mut cfg);
    let sim = Simulator::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    sim.sim.create_waba(WABA, Tier::T2K);
    sim.sim.create_phone_number(PHONE, WABA, "15550783881");
    sim.sim.add_token("tok", None);
    Rig {
        stack,
        resources,
        sim,
    }
}

pub(crate) fn config() -> SenderConfig {
    SenderConfig {
        numbers: sender::config::parse_numbers(&format!("{PHONE}:{WABA}")).unwrap(),
        ..SenderConfig::default()
    }
}

pub(crate) fn graph(rig: &Rig) -> GraphHttpClient {
    GraphHttpClient::new(&GraphHttpConfig {
        base_url: rig.sim.base_url(),
        timeout: Duration::from_millis(1_500),
        ..GraphHttpConfig::default()
    })
    .unwrap()
}

/// The media uploads' Graph client: a longer deadline than sends (files take a while).
pub(crate) fn media_graph(rig: &Rig) -> GraphHttpClient {
    GraphHttpClient::new(&GraphHttpConfig {
        base_url: rig.sim.base_url(),
        ..GraphHttpConfig::default()
    })
    .unwrap()
}

pub(crate) fn sender_with<G: GraphApi>(
    rig: &Rig,
    graph: G,
    config: SenderConfig,
) -> Sender<AwsSenderPorts<G>> {
    let secrets = CachedSecrets::new(
        SecretsManagerFetcher::new(
            aws_sdk_secretsmanager::Client::new(&rig.stack.aws),
            &rig.stack.secret_id,
        ),
        Duration::from_secs(300),
    );
    Sender::new(
        AwsSenderPorts::new(
            &rig.stack.aws,
            &rig.resources,
            graph,
            media_graph(rig),
            secrets,
        ),
        config,
    )
}

/// Puts `bodies` on the send queue and receives them as Lambda's event source mapping would.
pub(crate) async fn enqueue_and_receive(rig: &Rig, bodies: &[String]) -> Vec<SqsMessage> {
    let sqs = aws_sdk_sqs::Client::new(&rig.stack.aws);
    for b in bodies {
        sqs.send_message()
            .queue_url(&rig.resources.send_queue_url)
            .message_body(b)
            .send()
            .await
            .unwrap();
    }
    let mut out = Vec::new();
    while out.len() < bodies.len() {
        let got = sqs
            .receive_message()
            .queue_url(&rig.resources.send_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id().map(str::to_owned);
            r.receipt_handle = m.receipt_handle().map(str::to_owned);
            r.body = m.body().map(str::to_owned);
            out.push(r);
        }
    }
    out
}

/// One invocation: the records that succeeded are deleted, as the event source mapping does.
pub(crate) async fn invoke<G: GraphApi>(
    rig: &Rig,
    sender: &Sender<AwsSenderPorts<G>>,
    records: &[SqsMessage],
    now_ms: i64,
) -> SqsBatchResponse {
    let response = sender.handle(records, now_ms, now_ms + 30_000).await;
    let sqs = aws_sdk_sqs::Client::new(&rig.stack.aws);
    for r in records {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| Some(&f.item_identifier) == r.message_id.as_ref());
        if !failed {
            sqs.delete_message()
                .queue_url(&rig.resources.send_queue_url)
                .receipt_handle(r.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    response
}

/// The callback data the sender puts on a job's messages: its record key and the record's
/// generation, read from the dedupe table.
async fn job_callback(rig: &Rig, key: &str) -> String {
    let record_key = format!("send#{PHONE}#{key}");
    let item = aws_sdk_dynamodb::Client::new(&rig.stack.aws)
        .get_item()
        .table_name(&rig.resources.dedupe_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(record_key.clone()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    let generation = item.get("generation").and_then(|v| v.as_s().ok());
    sender::callback_data(&record_key, generation.map(String::as_str))
}

fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

pub(crate) async fn outcomes(rig: &Rig) -> Vec<Outcome> {
    drain(&rig.stack.aws, &rig.resources.outcomes_queue_url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

fn by_key<'a>(outcomes: &'a [Outcome], key: &str) -> &'a Outcome {
    outcomes
        .iter()
        .find(|o| o.idempotency_key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("no outcome for {key}: {outcomes:#?}"))
}

pub(crate) fn job(key: &str, to: &str, message: Value) -> String {
    json!({"version": 1, "idempotency_key": key, "phone_number_id": PHONE, "to": {"wa_id": to},
           "message": message, "correlation": {"order": key}})
    .to_string()
}

pub(crate) fn text(body: &str) -> Value {
    json!({"type": "text", "text": {"body": body}})
}

pub(crate) fn template(name: &str, body_params: &[&str]) -> Value {
    let params: Vec<Value> = body_params
        .iter()
        .map(|p| json!({"type": "text", "text": p}))
        .collect();
    json!({"type": "template", "template": {"name": name, "language": {"code": "en_US"},
           "components": [{"type": "body", "parameters": params}]}})
}

/// Seeds a template in the simulator and, once its approval webhook has landed in our table,
/// stores its definition (as the template sync does); other statuses go through the simulator's
/// status webhooks too.
pub(crate) async fn seed_template(rig: &Rig, name: &str, category: &str, status: &str) {
    let components = json!([{"type": "BODY", "text": "Hello {{1}}, your code is {{2}}.",
                             "example": {"body_text": [["Ann", "42"]]}}]);
    let id = rig
        .sim
        .sim
        .seed_template(
            WABA,
            json!({"name": name, "language": "en_US", "category": category, "components": components}),
        )
        .unwrap();
    let templates = whatsapp_aws::DynamoTemplateStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.templates_table,
    );
    let has_status = |want: &'static str| {
        let t = templates.clone();
        let n = name.to_owned();
        move || {
            let t = t.clone();
            let n = n.clone();
            async move {
                t.template(WABA, &n, "en_US")
                    .await
                    .unwrap()
                    .and_then(|r| r.status)
                    .as_ref()
                    .map(|s| s.as_str())
                    == Some(want)
            }
        }
    };
    eventually("the approval webhook", has_status("APPROVED")).await;
    templates
        .put_definition(
            WABA,
            &TemplateDefinition {
                name: name.into(),
                language: "en_US".into(),
                template_id: Some(id.clone()),
                status: "APPROVED".into(),
                category: category.into(),
                parameter_format: Some("POSITIONAL".into()),
                components,
                rejected_reason: None,
            },
            now(),
        )
        .await
        .unwrap();
    if status == "PAUSED" {
        rig.sim.sim.set_template_status(&id, status, None);
        eventually("the status webhook", has_status("PAUSED")).await;
    }
}

/// A user who writes to us now (window open) or never.
pub(crate) async fn user(rig: &Rig, wa_id: &str, writes: bool) -> String {
    user_on(rig, PHONE, wa_id, writes).await
}

/// A user who writes to the business number `phone` now (window open) or never.
pub(crate) async fn user_on(rig: &Rig, phone: &str, wa_id: &str, writes: bool) -> String {
    let uid = rig.sim.sim.add_user(Some(wa_id), None, true);
    if writes {
        user_writes_on(rig, phone, &uid, "hi");
        let sessions = whatsapp_aws::DynamoSessionStore::new(
            aws_sdk_dynamodb::Client::new(&rig.stack.aws),
            &rig.stack.resources.sessions_table,
        );
        let key = UserKey {
            phone_number_id: phone.into(),
            user: uid.clone(),
        };
        eventually("the inbound message to open the window", || {
            let s = sessions.clone();
            let k = key.clone();
            async move { s.window(&k).await.unwrap().csw_open(now()) }
        })
        .await;
    }
    uid
}

/// The simulated user `uid` writes `body` to our number (a signed webhook follows).
pub(crate) fn user_writes(rig: &Rig, uid: &str, body: &str) {
    user_writes_on(rig, PHONE, uid, body);
}

/// The simulated user `uid` writes `body` to the business number `phone`.
pub(crate) fn user_writes_on(rig: &Rig, phone: &str, uid: &str, body: &str) {
    rig.sim
        .sim
        .user_sends(
            uid,
            InboundSpec {
                phone_number_id: phone.into(),
                message: text(body),
                referral: None,
                context: None,
                hide_phone_number: false,
                media: None,
            },
        )
        .unwrap();
}

pub(crate) async fn consent(rig: &Rig, user: &str, event: ConsentEvent) {
    whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    )
    .record_consent(
        &UserKey {
            phone_number_id: PHONE.into(),
            user: user.into(),
        },
        event,
        now() - 10,
    )
    .await
    .unwrap();
}

pub(crate) async fn dead_letters(rig: &Rig) -> Vec<(String, String)> {
    let sqs = aws_sdk_sqs::Client::new(&rig.stack.aws);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&rig.resources.send_dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned();
            out.push((reason, m.body().unwrap_or_default().to_owned()));
            sqs.delete_message()
                .queue_url(&rig.resources.send_dlq_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Every gate in order, each refusing with its reason and no Graph call, beside jobs that pass:
/// one batch of ten, and the batch response lists nothing (every record has its verdict).
#[tokio::test]
async fn each_gate_refuses_with_its_reason_and_no_graph_call() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    seed_template(&rig, "paused_one", "UTILITY", "PAUSED").await;
    user(&rig, "447700900101", true).await;
    let _stranger = user(&rig, "447700900102", false).await;
    // Producers record opt-ins of users who never wrote under their phone number.
    user(&rig, "447700900103", false).await;
    consent(&rig, "447700900103", ConsentEvent::OptIn).await;
    user(&rig, "447700900104", false).await;
    consent(&rig, "447700900104", ConsentEvent::OptIn).await;
    // The user later wrote STOP-for-marketing: recorded under their business-scoped id.
    let no_marketing = rig.sim.sim.add_user(Some("447700900104"), None, true);
    consent(&rig, &no_marketing, ConsentEvent::MarketingStop).await;
    whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    )
    .record_alias(PHONE, "447700900104", &no_marketing, now())
    .await
    .unwrap();

    let jobs = vec![
        "{not json".to_owned(),
        json!({"version": 1, "idempotency_key": "g-invalid", "phone_number_id": PHONE,
               "to": {"wa_id": "0123"}, "message": text("")})
        .to_string(),
        job(
            "g-no-opt-in",
            "447700900102",
            template("order_ready", &["Ann", "1"]),
        ),
        job(
            "g-marketing-stop",
            "447700900104",
            template("spring_sale", &["Ann", "1"]),
        ),
        job(
            "g-window",
            "447700900103",
            text("free-form outside the window"),
        ),
        job(
            "g-unknown-template",
            "447700900103",
            template("nope", &["Ann", "1"]),
        ),
        job(
            "g-paused",
            "447700900103",
            template("paused_one", &["Ann", "1"]),
        ),
        job(
            "g-params",
            "447700900103",
            template("order_ready", &["only one"]),
        ),
        job("g-ok-text", "447700900101", text("reply in the window")),
        job(
            "g-ok-template",
            "447700900103",
            template("order_ready", &["Ann", "7"]),
        ),
    ];
    let sender = sender_with(&rig, graph(&rig), config());
    let records = enqueue_and_receive(&rig, &jobs).await;
    let response = invoke(&rig, &sender, &records, now() * 1000).await;
    assert_eq!(
        failed_ids(&response),
        Vec::<String>::new(),
        "{:#?}",
        outcomes(&rig).await
    );

    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 10, "exactly one outcome per job: {out:#?}");
    let reason = |k: &str| by_key(&out, k).reason.clone().unwrap_or_default();
    assert_eq!(reason("g-invalid"), "invalid");
    assert!(!by_key(&out, "g-invalid").violations.is_empty());
    assert_eq!(reason("g-no-opt-in"), "no_opt_in");
    assert_eq!(reason("g-marketing-stop"), "marketing_opt_out");
    assert_eq!(reason("g-window"), "window_closed");
    assert_eq!(reason("g-unknown-template"), "template_unknown");
    assert_eq!(reason("g-paused"), "template_paused");
    assert_eq!(reason("g-params"), "template_parameters");
    assert_eq!(
        by_key(&out, "g-params").violations[0]["code"],
        "parameter_count"
    );
    assert_eq!(by_key(&out, "g-params").correlation["order"], "g-params");
    assert!(out.iter().any(|o| o.reason.as_deref() == Some("malformed")));
    for k in ["g-ok-text", "g-ok-template"] {
        let o = by_key(&out, k);
        assert_eq!(o.outcome, Verdict::Accepted, "{o:?}");
        assert!(o.wamid.as_deref().is_some_and(|w| w.starts_with("wamid.")));
    }
    // Only the two that passed reached the Graph API.
    assert_eq!(rig.sim.sim.messages().len(), 2);
    // Contract breaches are dead-lettered with their reason; policy verdicts are not.
    let mut dl: Vec<String> = dead_letters(&rig)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    dl.sort();
    assert_eq!(dl, ["invalid", "malformed"]);

    // The template outside the window took one slot of the portfolio's budget; the reply in
    // the window took none.
    let mut used = 0;
    for shard in 0..whatsapp_core::policy::REACH_SHARDS {
        if let Some(item) = raw_item(
            &aws_sdk_dynamodb::Client::new(&rig.stack.aws),
            &rig.resources.control_table,
            &whatsapp_core::policy::budget_key(WABA, shard),
        )
        .await
        {
            used += whatsapp_aws::budget_shard(&item).live(now());
        }
    }
    assert_eq!(used, 1);

    // A redelivered job is answered from its record: same verdict, no second send.
    let again = enqueue_and_receive(&rig, &[jobs[9].clone()]).await;
    let response = invoke(&rig, &sender, &again, now() * 1000).await;
    assert!(response.batch_item_failures.is_empty());
    let out2 = outcomes(&rig).await;
    assert_eq!(out2.len(), 1);
    assert_eq!(out2[0].wamid, by_key(&out, "g-ok-template").wamid);
    assert_eq!(rig.sim.sim.messages().len(), 2);
    // The same key with another payload is refused, never replayed.
    let reused = job(
        "g-ok-template",
        "447700900103",
        template("order_ready", &["Bob", "8"]),
    );
    let records = enqueue_and_receive(&rig, &[reused]).await;
    invoke(&rig, &sender, &records, now() * 1000).await;
    assert_eq!(
        outcomes(&rig).await[0].reason.as_deref(),
        Some("idempotency_key_reused")
    );
}

/// The messaging limit: a portfolio whose 24 h budget is used up refuses the next new user,
/// and still lets users already reached (and replies in a window) through.
#[tokio::test]
async fn the_messaging_limit_is_reserved_atomically() {
    // The simulator's pair rate runs on real time; this test moves the sender's clock instead.
    let rig = rig(|c| c.pair_rate_gap_ms = 0).await;
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    let users = ["447700900201", "447700900202", "447700900203"];
    for w in users {
        user(&rig, w, false).await;
        consent(&rig, w, ConsentEvent::OptIn).await;
    }
    // 249 of TIER_250's 250 are used this hour: every shard full but one, which has one slot.
    let hour = now() / 3600;
    let ddb = aws_sdk_dynamodb::Client::new(&rig.stack.aws);
    for shard in 0..whatsapp_core::policy::REACH_SHARDS {
        let limit = whatsapp_core::policy::reach_shard_limit(250, shard);
        let used = if shard == 5 { limit - 1 } else { limit };
        let mut put = ddb
            .put_item()
            .table_name(&rig.resources.control_table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(whatsapp_core::policy::budget_key(
                    WABA, shard,
                )),
            );
        for (k, v) in whatsapp_aws::budget_shard_item(hour, used) {
            put = put.item(k, v);
        }
        put.send().await.unwrap();
    }
    let sender = sender_with(&rig, graph(&rig), config());
    // Two new users at once: exactly one gets the last slot.
    let jobs: Vec<String> = users[..2]
        .iter()
        .enumerate()
        .map(|(i, w)| {
            job(
                &format!("lim-{i}"),
                w,
                template("order_ready", &["Ann", "1"]),
            )
        })
        .collect();
    let records = enqueue_and_receive(&rig, &jobs).await;
    invoke(&rig, &sender, &records, now() * 1000).await;
    let out = outcomes(&rig).await;
    let accepted: Vec<_> = out
        .iter()
        .filter(|o| o.outcome == Verdict::Accepted)
        .collect();
    let refused: Vec<_> = out
        .iter()
        .filter(|o| o.reason.as_deref() == Some("messaging_limit"))
        .collect();
    assert_eq!((accepted.len(), refused.len()), (1, 1), "{out:#?}");
    // The user reached already costs nothing more (after the pair-rate gap).
    let reached = if accepted[0].idempotency_key.as_deref() == Some("lim-0") {
        users[0]
    } else {
        users[1]
    };
    let again = enqueue_and_receive(
        &rig,
        &[job(
            "lim-again",
            reached,
            template("order_ready", &["Ann", "2"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &again, now() * 1000 + 7_000).await;
    assert_eq!(outcomes(&rig).await[0].outcome, Verdict::Accepted);
}

/// Pair rate: a second message to the same user goes back to the queue until its turn, and
/// other recipients keep flowing; throughput slots spread a batch under a small cap.
#[tokio::test]
async fn pacing_defers_through_the_queue_never_in_process() {
    let rig = rig(|c| c.pair_rate_gap_ms = 6_000).await;
    user(&rig, "447700900301", true).await;
    let others: Vec<String> = (0..8).map(|i| format!("4477009003{:02}", 10 + i)).collect();
    for w in &others {
        user(&rig, w, true).await;
    }
    // 10 msg/s: one send per 100 ms slot.
    aws_sdk_dynamodb::Client::new(&rig.stack.aws)
        .put_item()
        .table_name(&rig.resources.control_table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("NUM#{PHONE}")),
        )
        .item(
            "mps",
            aws_sdk_dynamodb::types::AttributeValue::N("10".into()),
        )
        .send()
        .await
        .unwrap();
    let mut jobs = vec![
        job("p-1", "447700900301", text("first")),
        job("p-2", "447700900301", text("second")),
    ];
    jobs.extend(
        others
            .iter()
            .enumerate()
            .map(|(i, w)| job(&format!("p-o{i}"), w, text("hello"))),
    );
    let sender = sender_with(&rig, graph(&rig), config());
    let records = enqueue_and_receive(&rig, &jobs).await;
    let started = std::time::Instant::now();
    let response = invoke(&rig, &sender, &records, crate::support::now_ms()).await;
    let elapsed = started.elapsed();
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 9, "{out:#?}");
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "one of the pair waits"
    );
    assert!(out.iter().all(|o| o.outcome == Verdict::Accepted));
    // Nine sends at one per 100 ms slot take at least 0.8 s.
    assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
    assert!(
        rig.sim.sim.requests().iter().all(|r| r.status != 429),
        "no 130429"
    );
    // The deferred one comes back after its turn (the queue's visibility, not a sleep) and goes.
    let sqs = aws_sdk_sqs::Client::new(&rig.stack.aws);
    let mut back = Vec::new();
    for _ in 0..15 {
        let got = sqs
            .receive_message()
            .queue_url(&rig.resources.send_queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages().first() {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id().map(str::to_owned);
            r.receipt_handle = m.receipt_handle().map(str::to_owned);
            r.body = m.body().map(str::to_owned);
            back.push(r);
            break;
        }
    }
    assert_eq!(
        back.len(),
        1,
        "the deferred job is redelivered within its turn"
    );
    invoke(&rig, &sender, &back, crate::support::now_ms()).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].outcome, Verdict::Accepted, "{out:?}");
    assert!(
        rig.sim.sim.requests().iter().all(|r| r.status != 400),
        "no 131056"
    );
}

/// Each error class: retryable (back off, then succeed), wait-and-retry (long delay), terminal
/// (recorded, not retried, side effect applied), retries exhausted (failed and dead-lettered).
#[tokio::test]
async fn each_graph_error_class_is_handled_by_the_shared_table() {
    let rig = rig(|_| {}).await;
    for w in [
        "447700900401",
        "447700900402",
        "447700900403",
        "447700900404",
    ] {
        user(&rig, w, true).await;
    }
    let cfg = SenderConfig {
        max_attempts: 2,
        ..config()
    };
    let sender = sender_with(&rig, graph(&rig), cfg);
    let fault = |code: (u16, i64), times| Fault {
        route: FaultRoute::Messages,
        latency_ms: 0,
        error: Some(code),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(times),
    };
    let t0 = now() * 1000;

    // Retryable: 130429 once, then it goes.
    rig.sim.sim.inject_fault(fault((429, 130429), 1));
    let r = enqueue_and_receive(&rig, &[job("e-retry", "447700900401", text("a"))]).await;
    assert_eq!(
        invoke(&rig, &sender, &r, t0)
            .await
            .batch_item_failures
            .len(),
        1
    );
    assert!(outcomes(&rig).await.is_empty(), "no verdict while retrying");
    // Redelivered before the back-off ends: still held.
    assert_eq!(
        invoke(&rig, &sender, &r, t0 + 100)
            .await
            .batch_item_failures
            .len(),
        1
    );
    invoke(&rig, &sender, &r, t0 + 10_000).await;
    let out = outcomes(&rig).await;
    assert_eq!((out[0].outcome, out[0].attempts), (Verdict::Accepted, 1));

    // Terminal: 131050 records the marketing opt-out, no retry.
    rig.sim.sim.inject_fault(fault((400, 131050), 1));
    let r = enqueue_and_receive(&rig, &[job("e-terminal", "447700900402", text("b"))]).await;
    assert!(
        invoke(&rig, &sender, &r, t0)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out[0].outcome, Verdict::Failed);
    assert_eq!(out[0].reason.as_deref(), Some("marketing_opt_out"));
    assert_eq!(out[0].error.as_ref().unwrap().code, 131050);
    let uid = rig.sim.sim.add_user(Some("447700900402"), None, true);
    let consent = whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    )
    .consent(&UserKey {
        phone_number_id: PHONE.into(),
        user: uid,
    })
    .await
    .unwrap();
    assert!(consent.marketing_stopped());

    // Wait-and-retry: 131049 comes back no sooner than the queue allows (12 h).
    rig.sim.sim.inject_fault(fault((400, 131049), 1));
    let r = enqueue_and_receive(&rig, &[job("e-wait", "447700900403", text("c"))]).await;
    assert_eq!(
        invoke(&rig, &sender, &r, t0)
            .await
            .batch_item_failures
            .len(),
        1
    );
    assert_eq!(
        invoke(&rig, &sender, &r, t0 + 3_600_000)
            .await
            .batch_item_failures
            .len(),
        1,
        "still waiting an hour later"
    );
    assert!(outcomes(&rig).await.is_empty());

    // Retries exhausted: two 503s with SEND_MAX_ATTEMPTS=2 → failed and dead-lettered.
    rig.sim.sim.inject_fault(fault((503, 2), 2));
    let r = enqueue_and_receive(&rig, &[job("e-exhausted", "447700900404", text("d"))]).await;
    assert_eq!(
        invoke(&rig, &sender, &r, t0)
            .await
            .batch_item_failures
            .len(),
        1
    );
    assert!(
        invoke(&rig, &sender, &r, t0 + 60_000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out[0].reason.as_deref(), Some("retries_exhausted"));
    assert_eq!(
        (out[0].attempts, out[0].error.as_ref().unwrap().code),
        (2, 2)
    );
    let dl = dead_letters(&rig).await;
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].0, "retries_exhausted");
    assert!(
        dl[0].1.contains("e-exhausted"),
        "the job body is kept unchanged"
    );
}

/// A Graph client that, after its call returns, can be made to hang forever: the process
/// "dies" between the Graph call and the commit.
struct Killable<G> {
    inner: G,
    die_after_send: AtomicBool,
    die_before_send: AtomicBool,
}

impl<G: GraphApi> GraphApi for Killable<G> {
    async fn send_message(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
    ) -> Result<SendMessageResponse, GraphCallError> {
        if self.die_before_send.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let out = self
            .inner
            .send_message(phone_number_id, request, access_token)
            .await;
        if self.die_after_send.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        out
    }

    async fn mark_read(&self, p: &str, r: &MarkReadRequest, t: &str) -> Result<(), GraphCallError> {
        self.inner.mark_read(p, r, t).await
    }

    async fn phone_number(&self, p: &str, t: &str) -> Result<PhoneNumberInfo, GraphCallError> {
        self.inner.phone_number(p, t).await
    }
}

/// Killed after Meta accepted the message, before the commit: the redelivery learns the wamid
/// from the status webhooks and sends nothing. Killed before the call: the redelivery waits out
/// the reconciliation window, finds no status, and sends once.
#[tokio::test]
async fn a_sender_killed_between_graph_call_and_commit_never_sends_twice() {
    let rig = rig(|_| {}).await;
    user(&rig, "447700900501", true).await;
    user(&rig, "447700900502", true).await;
    let graph = Killable {
        inner: graph(&rig),
        die_after_send: AtomicBool::new(true),
        die_before_send: AtomicBool::new(false),
    };
    let sender = sender_with(&rig, graph, config());
    let t0 = now() * 1000;
    let records = enqueue_and_receive(&rig, &[job("k-after", "447700900501", text("once"))]).await;
    let killed = tokio::time::timeout(
        Duration::from_secs(3),
        sender.handle(&records, t0, t0 + 5_000),
    )
    .await;
    assert!(killed.is_err(), "the invocation died mid-flight");
    let callback = job_callback(&rig, "k-after").await;
    assert_eq!(rig.sim.sim.sent_count(&callback), 1);
    // Statuses echo our callback data into the messages table.
    let messages = whatsapp_aws::DynamoMessageStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.messages_table,
    );
    eventually("the status webhook", || {
        let m = messages.clone();
        let c = callback.clone();
        async move {
            whatsapp_core::ports::MessageStore::find_by_callback(&m, PHONE, &c, 0, now())
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    // Redelivered while the dead holder's lease runs: held.
    assert_eq!(
        invoke(&rig, &sender, &records, t0 + 1_000)
            .await
            .batch_item_failures
            .len(),
        1
    );
    // After the lease: reconciled, not resent.
    assert!(
        invoke(&rig, &sender, &records, t0 + 6_000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Verdict::Accepted);
    assert!(out[0].reconciled);
    assert_eq!(
        out[0].wamid.as_deref(),
        rig.sim.sim.messages().first().map(|m| m.wamid.as_str())
    );
    assert_eq!(rig.sim.sim.sent_count(&callback), 1, "never sent twice");

    // Killed before the call: nothing reached Meta, so no status will come.
    sender
        .ports
        .graph
        .die_before_send
        .store(true, Ordering::SeqCst);
    let records = enqueue_and_receive(&rig, &[job("k-before", "447700900502", text("once"))]).await;
    let t1 = now() * 1000;
    assert!(
        tokio::time::timeout(
            Duration::from_secs(2),
            sender.handle(&records, t1, t1 + 3_000)
        )
        .await
        .is_err()
    );
    // After the lease, within the reconciliation window: wait for a status that may come.
    assert_eq!(
        invoke(&rig, &sender, &records, t1 + 4_000)
            .await
            .batch_item_failures
            .len(),
        1
    );
    let callback = job_callback(&rig, "k-before").await;
    assert_eq!(rig.sim.sim.sent_count(&callback), 0);
    // The window passed with no status: sent, once.
    assert!(
        invoke(&rig, &sender, &records, t1 + 3_000 + 300_001)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(rig.sim.sim.sent_count(&callback), 1);
    let out = outcomes(&rig).await;
    assert_eq!(
        (out.len(), out[0].outcome, out[0].reconciled),
        (1, Verdict::Accepted, false)
    );
}

/// A token rotation: Meta now knows only `tok2`, the secret holds it, and a sender that read the
/// secret before still has `tok` cached.
pub(crate) async fn rotate_token(rig: &Rig) {
    rig.sim.sim.add_token("tok2", None);
    rig.sim.sim.add_token("tok", Some(now() - 1));
    aws_sdk_secretsmanager::Client::new(&rig.stack.aws)
        .put_secret_value()
        .secret_id(&rig.stack.secret_id)
        .secret_string(format!(
            r#"{{"app_secret":"{}","verify_token":"v","access_token":"tok2"}}"#,
            crate::support::APP_SECRET
        ))
        .send()
        .await
        .unwrap();
}

/// 190 with a rotated token: one forced re-read of the secret, one retry, success. With a token
/// that is still bad after the re-read: failed, not retried.
#[tokio::test]
async fn a_190_refreshes_the_rotated_token_once() {
    let rig = rig(|_| {}).await;
    user(&rig, "447700900601", true).await;
    user(&rig, "447700900602", true).await;
    let sender = sender_with(&rig, graph(&rig), config());
    // Warm the secret cache with the current token.
    let r = enqueue_and_receive(&rig, &[job("t-warm", "447700900601", text("warm"))]).await;
    invoke(&rig, &sender, &r, now() * 1000).await;
    assert_eq!(outcomes(&rig).await[0].outcome, Verdict::Accepted);
    // Rotation: Meta now only knows tok2; the secret holds tok2; our cache still has tok.
    rotate_token(&rig).await;
    let r = enqueue_and_receive(
        &rig,
        &[job("t-rotated", "447700900602", text("after rotation"))],
    )
    .await;
    assert!(
        invoke(&rig, &sender, &r, now() * 1000 + 7_000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out[0].outcome, Verdict::Accepted, "{out:?}");
    let statuses: Vec<u16> = rig.sim.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "one 190, then success: {statuses:?}"
    );

    // Revoked everywhere: one refresh, one retry, then a terminal failure with an alert.
    rig.sim.sim.add_token("tok2", Some(now() - 1));
    let r = enqueue_and_receive(&rig, &[job("t-revoked", "447700900601", text("x"))]).await;
    assert!(
        invoke(&rig, &sender, &r, now() * 1000 + 14_000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out[0].reason.as_deref(), Some("access_token_invalid"));
    assert_eq!(out[0].error.as_ref().unwrap().code, 190);
}

/// The sender's logs, the AWS SDK's included, never carry a phone number, message text, the
/// token or the app secret: through acceptances, retries, a 190 and a store failure.
#[tokio::test]
async fn sender_logs_contain_no_phone_number_message_text_or_token() {
    let rig = rig(|_| {}).await;
    user(&rig, "447700900701", true).await;
    user(&rig, "447700900702", true).await;
    let (captured, _guard) = crate::webhook::capture_logs();

    let secret_text = "my card is 4111 and my number is +447700900009";
    let sender = sender_with(&rig, graph(&rig), config());
    rig.sim.sim.inject_fault(Fault {
        route: FaultRoute::Messages,
        latency_ms: 0,
        error: Some((503, 131000)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(1),
    });
    let jobs = [
        job("l-1", "447700900701", text(secret_text)),
        job("l-2", "447700900702", text(secret_text)),
        job("l-3", "447700900703", text(secret_text)),
    ];
    let r = enqueue_and_receive(&rig, &jobs).await;
    invoke(&rig, &sender, &r, now() * 1000).await;
    // A store that fails: every record retried, with a warning.
    let mut broken = rig.resources.clone();
    broken.dedupe_table = "no-such-table".into();
    let broken_sender = Sender::new(
        AwsSenderPorts::new(
            &rig.stack.aws,
            &broken,
            graph(&rig),
            media_graph(&rig),
            CachedSecrets::new(
                SecretsManagerFetcher::new(
                    aws_sdk_secretsmanager::Client::new(&rig.stack.aws),
                    &rig.stack.secret_id,
                ),
                Duration::from_secs(300),
            ),
        ),
        config(),
    );
    let r = enqueue_and_receive(&rig, &[job("l-4", "447700900701", text(secret_text))]).await;
    assert_eq!(
        invoke(&rig, &broken_sender, &r, now() * 1000)
            .await
            .batch_item_failures
            .len(),
        1
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retryable Graph API error"),
        "the logs say what happened: {logs}"
    );
    assert!(logs.contains("transient failure"), "{logs}");
    for forbidden in [
        "447700900",
        " 4111 ", // with spaces: a timestamp may hold the digits
        "my card",
        crate::support::APP_SECRET,
        "\"tok\"",
    ] {
        assert!(
            !logs.contains(forbidden),
            "logs contain {forbidden:?}: {logs}"
        );
    }
}

/// A template submitted through the template submitter is refused by the sender while pending,
/// and used once Meta's approval webhook has landed.
#[tokio::test]
async fn a_submitted_template_becomes_usable_by_the_sender_once_approved() {
    let rig = rig(|c| c.template_review_delay_ms = 1_500).await;
    user(&rig, "447700900801", false).await;
    consent(&rig, "447700900801", ConsentEvent::OptIn).await;
    let submitter = template_submitter::Submitter {
        api: graph(&rig),
        store: whatsapp_aws::DynamoTemplateStore::new(
            aws_sdk_dynamodb::Client::new(&rig.stack.aws),
            &rig.stack.resources.templates_table,
        ),
        secrets: whatsapp_fakes::StaticSecrets::new("a", "v", "tok"),
        wabas: std::collections::HashSet::from([WABA.to_owned()]),
    };
    let definition = json!({"name": "delivery_window", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello {{1}}, your code is {{2}}.",
                        "example": {"body_text": [["Ann", "42"]]}}]});
    let r = submitter
        .handle(
            "POST",
            &format!("/templates/{WABA}"),
            definition.to_string().as_bytes(),
            now(),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let sender = sender_with(&rig, graph(&rig), config());
    let send = |key: &str| {
        job(
            key,
            "447700900801",
            template("delivery_window", &["Ann", "7"]),
        )
    };
    let records = enqueue_and_receive(&rig, &[send("tpl-early")]).await;
    invoke(&rig, &sender, &records, now() * 1000).await;
    assert_eq!(
        outcomes(&rig).await[0].reason.as_deref(),
        Some("template_not_approved")
    );
    let templates = submitter.store.clone();
    eventually("the approval webhook", || {
        let t = templates.clone();
        async move {
            t.template(WABA, "delivery_window", "en_US")
                .await
                .unwrap()
                .and_then(|r| r.status)
                .as_ref()
                .map(|s| s.as_str())
                == Some("APPROVED")
        }
    })
    .await;
    let records = enqueue_and_receive(&rig, &[send("tpl-approved")]).await;
    invoke(&rig, &sender, &records, now() * 1000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].outcome, Verdict::Accepted, "{out:?}");
}

/// Defect 6 of #16: the STOP message itself opens the window, and consent was read only for
/// business-initiated or marketing messages, so utility templates kept reaching a user who had
/// just opted out. Through the real webhook, stores and sender on ministack.
#[tokio::test]
async fn after_stop_a_template_is_refused_inside_the_window_but_a_reply_still_goes() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    let wa_id = "447700900901";
    let uid = rig.sim.sim.add_user(Some(wa_id), None, true);
    user_writes(&rig, &uid, "STOP");
    let contacts = whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    );
    let key = UserKey {
        phone_number_id: PHONE.into(),
        user: uid.clone(),
    };
    eventually("the STOP to be recorded as an opt-out", || {
        let (c, k) = (contacts.clone(), key.clone());
        async move { c.consent(&k).await.unwrap().opted_out() }
    })
    .await;
    let jobs = vec![
        job(
            "stop-template",
            wa_id,
            template("order_ready", &["Ann", "7"]),
        ),
        job("stop-reply", wa_id, text("You will get no more messages.")),
    ];
    let sender = sender_with(&rig, graph(&rig), config());
    let records = enqueue_and_receive(&rig, &jobs).await;
    let response = invoke(&rig, &sender, &records, now() * 1000).await;
    assert!(failed_ids(&response).is_empty());
    let out = outcomes(&rig).await;
    let template = by_key(&out, "stop-template");
    assert_eq!(
        (template.outcome, template.reason.as_deref()),
        (Verdict::Rejected, Some("opted_out"))
    );
    assert_eq!(by_key(&out, "stop-reply").outcome, Verdict::Accepted);
    let to_user: Vec<_> = rig
        .sim
        .sim
        .messages()
        .into_iter()
        .filter(|m| m.user_id == uid)
        .map(|m| m.message_type)
        .collect();
    assert_eq!(to_user, ["text"], "only the reply reached Meta");
}

/// Defect 7 of #16: consent kept under the phone number (a producer's record, or a
/// `user_preferences` webhook that carried only `wa_id`) was never read for a job addressed by
/// the business-scoped id. The reverse alias the webhook records finds it.
#[tokio::test]
async fn a_job_by_user_id_sees_a_marketing_stop_kept_under_the_phone_number() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    let wa_id = "447700900902";
    // The user writes: the webhook records the alias both ways and opens the window.
    let uid = user(&rig, wa_id, true).await;
    let contacts = whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    );
    eventually("the reverse alias", || {
        let (c, u) = (contacts.clone(), uid.clone());
        async move { c.phone_of(PHONE, &u).await.unwrap().as_deref() == Some(wa_id) }
    })
    .await;
    consent(&rig, wa_id, ConsentEvent::MarketingStop).await;
    let by_user_id = json!({"version": 1, "idempotency_key": "by-bsuid", "phone_number_id": PHONE,
        "to": {"user_id": uid}, "message": template("spring_sale", &["Ann", "1"])})
    .to_string();
    let sender = sender_with(&rig, graph(&rig), config());
    let records = enqueue_and_receive(&rig, &[by_user_id]).await;
    let response = invoke(&rig, &sender, &records, now() * 1000).await;
    assert!(failed_ids(&response).is_empty());
    let out = outcomes(&rig).await;
    let o = by_key(&out, "by-bsuid");
    assert_eq!(
        (o.outcome, o.reason.as_deref()),
        (Verdict::Rejected, Some("marketing_opt_out")),
        "{o:?}"
    );
}
