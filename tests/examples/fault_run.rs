//! The fault run (#16; a load driver, not a timed test): drives N send jobs through the real
//! sender on ministack (real SQS receives, visibility and redrive to a DLQ, every DynamoDB
//! write) against the Cloud API simulator with a seeded mix of faults, kills sender instances
//! and the webhook mid-flight, and checks the product's promise at the end:
//!
//! - every job has exactly one verdict (all copies of it agree), none only in a DLQ, no
//!   idempotency record left in progress, and every DLQ message carries a reason;
//! - the simulator accepted each job at most once, exactly once for every job whose verdict is
//!   `accepted`;
//! - no 131056 (pair rate) and no 130429 beyond the injected ones (our own pacing);
//! - every customer message reached the bots' queue, and every status Meta sent for an accepted
//!   message is in the messages table (the final one: `read`, or `failed` for an async failure).
//!
//! The mix: 10 % 503, 5 % 429/130429, 1 % hang after the message is accepted (the caller times
//! out), 1 % synchronous 131049, 0.5 % accepted then a `failed` status with 131047; 5 % of jobs
//! enqueued twice; bursts of 30 jobs to one recipient; sender instances killed before the
//! Graph call, after Meta's 200 (before the commit), after the commit (before the verdict is
//! published), after the verdicts are published (before the batch is acknowledged), and at
//! random points (their task aborted, so that it writes nothing more; its batch comes back
//! after the queue's visibility); the
//! webhook aborted mid-request a few times (the simulator retries as Meta does); customers
//! writing meanwhile. Time is compressed: the queue's visibility is 20 s, the reconcile window
//! 20 s and every back-off capped at 20 s (131049 asks 24 h).
//!
//! `cargo run -p integration-tests --example fault-run -- [jobs] [seed] [kills] [burst]` with
//! `AWS_ENDPOINT_URL` at ministack (`scripts/test` runs a small one: 300 jobs, 5 kills, bursts
//! of 10). Exits 1 when any check fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_dynamodb::types::AttributeValue;
use sender::aws::{AwsSenderPorts, SenderResources};
use sender::{Outcome, Sender, SenderConfig, Verdict};
use serde_json::{Value, json};
use simulator::{FaultMix, InboundSpec, SimConfig, Simulator, Tier, WebhookConfig};
use webhook::{Settings, Webhook};
use whatsapp_aws::{
    AwsIngestPorts, CachedSecrets, GraphHttpClient, GraphHttpConfig, IngestResources,
    SecretsManagerFetcher, SqsQueue,
};
use whatsapp_core::graph::{
    MarkReadRequest, PhoneNumberInfo, SendMessageRequest, SendMessageResponse,
};
use whatsapp_core::job::SendJob;
use whatsapp_core::ports::{GraphApi, GraphCallError, MessageStore};
use whatsapp_fakes::StaticSecrets;

#[path = "common/counting_proxy.rs"]
#[allow(dead_code)] // only its relay
mod counting_proxy;
#[path = "common/stack.rs"]
mod stack;

type Error = Box<dyn std::error::Error + Send + Sync>;

const WABA: &str = "102290129340398";
const PHONE: &str = "106540352242922";
const APP_SECRET: &str = "fault-run-app-secret-0123456789";
const VISIBILITY_S: i32 = 20;
const MAX_RECEIVES: u32 = 20;

/// SplitMix64: the run's own seeded choices (which jobs are doubled, who writes, when to kill).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Where a sender instance dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KillPoint {
    /// Its next Graph call never starts.
    BeforeCall,
    /// Meta accepted its next message; the instance dies before it commits anything.
    AfterAccept,
    /// Its next verdict is committed to the idempotency record; the instance dies before it
    /// hears so (and before it publishes the verdict).
    AfterCommit,
    /// Its next verdicts are on the outcomes queue; the instance dies before it acknowledges
    /// the batch.
    WhileFinishing,
    /// Its task is aborted 0–3 s into a batch, wherever it is.
    Random,
}

/// Where one poller's instance is told to die, and how the poller learns it did.
#[derive(Default)]
struct Tripwire {
    armed: Mutex<Option<KillPoint>>,
    died: tokio::sync::Notify,
}

impl Tripwire {
    async fn die(&self) -> ! {
        self.died.notify_one();
        std::future::pending::<()>().await;
        unreachable!()
    }
    fn take(&self, point: KillPoint) -> bool {
        let mut armed = self.armed.lock().unwrap();
        if *armed == Some(point) {
            *armed = None;
            true
        } else {
            false
        }
    }
}

/// The real Graph client, which can be told to make the instance die around its next call.
struct KillableGraph {
    inner: GraphHttpClient,
    trip: Arc<Tripwire>,
}

/// One poller's way to AWS: forwards to ministack, and makes the instance die right after a
/// write the kill point names has taken effect (the answer never comes back).
async fn trip_proxy(upstream: String, trip: Arc<Tripwire>, outcomes_queue: String) -> String {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    type St = (String, reqwest::Client, Arc<Tripwire>, String);
    async fn forward(
        State((upstream, http, trip, outcomes)): State<St>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = String::from_utf8_lossy(&body);
        let point = if target.ends_with("UpdateItem") && text.contains("COMPLETED") {
            Some(KillPoint::AfterCommit)
        } else if target.starts_with("AmazonSQS.SendMessage") && text.contains(&outcomes) {
            Some(KillPoint::WhileFinishing)
        } else {
            None
        };
        let answer = counting_proxy::relay(&http, &upstream, method, &uri, &headers, body).await;
        if answer.0.is_success() && point.is_some_and(|p| trip.take(p)) {
            trip.die().await;
        }
        answer
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state((
        upstream,
        reqwest::Client::new(),
        trip,
        outcomes_queue,
    ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

impl GraphApi for KillableGraph {
    async fn send_message_within(
        &self,
        pn: &str,
        request: &SendMessageRequest<'_>,
        token: &str,
        timeout: Duration,
    ) -> Result<SendMessageResponse, GraphCallError> {
        if self.trip.take(KillPoint::BeforeCall) {
            self.trip.die().await;
        }
        let out = self
            .inner
            .send_message_within(pn, request, token, timeout)
            .await;
        if out.is_ok() && self.trip.take(KillPoint::AfterAccept) {
            self.trip.die().await;
        }
        out
    }
    async fn send_message(
        &self,
        pn: &str,
        request: &SendMessageRequest<'_>,
        token: &str,
    ) -> Result<SendMessageResponse, GraphCallError> {
        self.inner.send_message(pn, request, token).await
    }
    async fn mark_read(
        &self,
        pn: &str,
        request: &MarkReadRequest,
        token: &str,
    ) -> Result<(), GraphCallError> {
        self.inner.mark_read(pn, request, token).await
    }
    async fn phone_number(&self, pn: &str, token: &str) -> Result<PhoneNumberInfo, GraphCallError> {
        self.inner.phone_number(pn, token).await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn config() -> SenderConfig {
    SenderConfig {
        numbers: sender::config::parse_numbers(&format!("{PHONE}:{WABA}")).unwrap(),
        reconcile_after_ms: 20_000,
        backoff_cap_ms: Some(20_000),
        queue_visibility_s: VISIBILITY_S as u32,
        queue_max_receives: MAX_RECEIVES,
        ..SenderConfig::default()
    }
}

/// When the webhook first acknowledged a status carrying each callback data (epoch ms).
type StatusSeen = Arc<Mutex<HashMap<String, i64>>>;

type Hook = Arc<Webhook<AwsIngestPorts, StaticSecrets, SqsQueue>>;
type KillSwitch = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// The webhook as Meta reaches it, aborted mid-request on the requests `kill` picks; records
/// when each callback data's first status was acknowledged.
async fn front(handler: Hook, kill: KillSwitch, seen: StatusSeen) -> String {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    async fn serve(
        State((h, kill, seen)): State<(Hook, KillSwitch, StatusSeen)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let sig = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = body.clone();
        let task =
            tokio::spawn(async move { h.receive(sig.as_deref(), &bytes, now_ms()).await.0.status });
        if let Some(after_ms) = kill() {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            task.abort();
        }
        match task.await {
            Ok(status) => {
                if status == 200 {
                    let at = now_ms();
                    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let mut seen = seen.lock().unwrap();
                    for entry in v["entry"].as_array().into_iter().flatten() {
                        for change in entry["changes"].as_array().into_iter().flatten() {
                            for st in change["value"]["statuses"].as_array().into_iter().flatten() {
                                if let Some(cb) = st["biz_opaque_callback_data"].as_str() {
                                    seen.entry(cb.to_owned()).or_insert(at);
                                }
                            }
                        }
                    }
                }
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            // Killed mid-forward: Meta sees a failed delivery and retries.
            Err(_) => StatusCode::BAD_GATEWAY,
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/webhook", axum::routing::post(serve))
        .with_state((handler, kill, seen));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/webhook")
}

fn record(m: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = m.message_id().map(str::to_owned);
    r.receipt_handle = m.receipt_handle().map(str::to_owned);
    r.body = m.body().map(str::to_owned);
    if let Some(attrs) = m.attributes() {
        for (k, v) in attrs {
            r.attributes.insert(k.as_str().to_owned(), v.clone());
        }
    }
    r
}

#[derive(Default)]
struct Kills {
    by_point: Mutex<BTreeMap<String, usize>>,
    webhook: AtomicUsize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let jobs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let kills: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(25);
    // Jobs per burst to one recipient: 30 in the documented run; the pair rate makes a burst
    // of n take n turns of 8 s, so CI's small run uses 10.
    let burst: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(30);
    let pollers = 6;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let suffix = format!("{}-{}", std::process::id(), now_ms());
    let t = stack::tables(&ddb, &format!("fault-{suffix}")).await?;
    let q = |name: &str| format!("fault-{name}-{suffix}");
    let dlq_url = stack::queue(&sqs, &q("dlq"), &[]).await?;
    let dlq_arn = stack::queue_arn(&sqs, &dlq_url).await?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}).to_string();
    let send_url = stack::queue(
        &sqs,
        &q("send"),
        &[
            ("VisibilityTimeout", VISIBILITY_S.to_string()),
            ("RedrivePolicy", redrive),
        ],
    )
    .await?;
    let outcomes_url = stack::queue(&sqs, &q("outcomes"), &[]).await?;
    let inbound_url = stack::queue(&sqs, &q("inbound"), &[]).await?;
    let events_url = stack::queue(&sqs, &q("events"), &[]).await?;
    let bucket = q("quarantine").to_lowercase();
    whatsapp_aws::s3_client(&aws, true)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    let topic_arn = aws_sdk_sns::Client::new(&aws)
        .create_topic()
        .name(q("meta-events"))
        .send()
        .await?
        .topic_arn
        .unwrap_or_default();
    let secret_id = q("secret");
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(&secret_id)
        .secret_string(format!(r#"{{"app_secret":"{APP_SECRET}","verify_token":"verify-token-0123456789","access_token":"tok"}}"#))
        .send()
        .await?;
    let resources = SenderResources {
        sessions_table: t["sessions"].clone(),
        contacts_table: t["contacts"].clone(),
        templates_table: t["templates"].clone(),
        messages_table: t["messages"].clone(),
        dedupe_table: t["dedupe"].clone(),
        control_table: t["control"].clone(),
        send_queue_url: send_url.clone(),
        send_dlq_url: dlq_url.clone(),
        outcomes_queue_url: outcomes_url.clone(),
        media_ids_table: t["media-ids"].clone(),
        s3_path_style: true,
    };
    let ingest = IngestResources {
        sessions_table: t["sessions"].clone(),
        contacts_table: t["contacts"].clone(),
        messages_table: t["messages"].clone(),
        templates_table: t["templates"].clone(),
        phone_state_table: t["phones"].clone(),
        dedupe_table: t["dedupe"].clone(),
        inbound_queue_url: inbound_url.clone(),
        // The fault run's users write text: no file to fetch.
        media_queue_url: inbound_url.clone(),
        meta_events_topic_arn: topic_arn,
        quarantine_bucket: bucket,
        s3_path_style: true,
    };

    // The webhook, behind a front that kills a few requests mid-flight.
    let hook = Arc::new(Webhook {
        ports: AwsIngestPorts::new(&aws, &ingest),
        secrets: StaticSecrets::new(APP_SECRET, "verify-token-0123456789", "tok"),
        events: SqsQueue::new(sqs.clone(), &events_url),
        settings: Settings::default(),
    });
    let kill_log = Arc::new(Kills::default());
    let webhook_kills = (kills / 4).max(2);
    let posts = Arc::new(AtomicUsize::new(0));
    let status_seen: StatusSeen = Arc::default();
    let kill_webhook: KillSwitch = {
        let (posts, log) = (Arc::clone(&posts), Arc::clone(&kill_log));
        Arc::new(move || {
            let n = posts.fetch_add(1, Ordering::SeqCst);
            // Every 37th POST, until the count is reached: aborted 0–7 ms in.
            (n % 37 == 5 && log.webhook.fetch_add(1, Ordering::SeqCst) < webhook_kills)
                .then_some((n % 8) as u64)
        })
    };
    let url = front(Arc::clone(&hook), kill_webhook, Arc::clone(&status_seen)).await;

    let sim = Simulator::start(
        SimConfig {
            app_secret: APP_SECRET.into(),
            callback_url: Some(url),
            status_delay_ms: 20,
            seed,
            webhooks: WebhookConfig {
                retry_base_ms: 500,
                retry_max_attempts: 12,
                ..WebhookConfig::default()
            },
            fault_mix: Some(FaultMix {
                server_error: 0.10,
                throttled: 0.05,
                hang_after: 0.01,
                hang_ms: 12_000,
                per_user_limit: 0.01,
                failed_status: 0.005,
            }),
            ..SimConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    sim.sim.create_waba(WABA, Tier::Unlimited);
    sim.sim.create_phone_number(PHONE, WABA, "15550783881");
    sim.sim.add_token("tok", None);

    // Recipients: one per 5 jobs, plus the burst targets. Each writes first (the window the
    // replies go in), through the webhook.
    let users: Vec<String> = (0..(jobs / 5).max(10))
        .map(|i| format!("4477{i:08}"))
        .collect();
    let mut customer_messages = Vec::new();
    let write = |sim: &Simulator, user: &str, text: &str| {
        sim.user_sends(
            user,
            InboundSpec {
                phone_number_id: PHONE.into(),
                message: json!({"type": "text", "text": {"body": text}}),
                referral: None,
                context: None,
                hide_phone_number: false,
                media: None,
            },
        )
    };
    for u in &users {
        sim.sim.add_user(Some(u), None, true);
        customer_messages.push(write(&sim.sim, u, "hello")?);
    }
    // Let the windows land before replies are sent into them: every first message on the bots'
    // queue (the webhook opened the window before forwarding it).
    // (A message the webhook handed to the events queue opened its window too: count it.)
    let setup = Instant::now();
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            let name = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(name.clone())
                .send()
                .await
                .ok()
                .and_then(|a| {
                    a.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse::<usize>().ok())
                })
                .unwrap_or(0)
        }
    };
    while depth(inbound_url.clone()).await + depth(events_url.clone()).await < users.len()
        && setup.elapsed() < Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The jobs: replies spread over the users, bursts of 30 to a few, 5 % enqueued twice.
    let bursts = (jobs / 1_000).clamp(1, 10);
    let mut bodies: Vec<String> = Vec::new();
    for i in 0..jobs {
        let to = if i < bursts * burst {
            &users[i / burst]
        } else {
            &users[rng.below(users.len() as u64) as usize]
        };
        bodies.push(
            json!({"version": 1, "idempotency_key": format!("fault-{i}"), "phone_number_id": PHONE,
                   "to": {"wa_id": to}, "message": {"type": "text", "text": {"body": "Your order has shipped."}}})
            .to_string(),
        );
    }
    let mut enqueue: Vec<String> = bodies.clone();
    let doubled = (0..jobs).filter(|_| rng.unit() < 0.05).count();
    for _ in 0..doubled {
        enqueue.push(bodies[rng.below(jobs as u64) as usize].clone());
    }
    for chunk in enqueue.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(&send_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    println!(
        "fault-run: seed={seed} jobs={jobs} enqueued={} (doubled {doubled}) bursts={bursts}x{burst} users={} pollers={pollers} kills={kills}",
        enqueue.len(),
        users.len()
    );

    // Kill plan: `kills` sender deaths spread over the first part of the run.
    let kill_plan: Arc<Mutex<Vec<KillPoint>>> = Arc::new(Mutex::new(
        (0..kills)
            .map(|k| match k % 5 {
                0 => KillPoint::BeforeCall,
                1 => KillPoint::AfterAccept,
                2 => KillPoint::AfterCommit,
                3 => KillPoint::WhileFinishing,
                _ => KillPoint::Random,
            })
            .collect(),
    ));
    let kill_every = (enqueue.len() / (kills + 1) / 10).max(1);

    // Outcomes, consumed as a producer would, by (phone, key).
    let verdicts: Arc<Mutex<HashMap<String, Vec<Outcome>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (sqs, verdicts, stop, url) = (
            sqs.clone(),
            Arc::clone(&verdicts),
            Arc::clone(&stop),
            outcomes_url.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(got) = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    continue;
                };
                for m in got.messages() {
                    if let Ok(o) = serde_json::from_str::<Outcome>(m.body().unwrap_or_default())
                        && !o.foreign
                    {
                        verdicts
                            .lock()
                            .unwrap()
                            .entry(o.idempotency_key.clone().unwrap_or_default())
                            .or_default()
                            .push(o);
                    }
                    let _ = sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        })
    };

    // The event processor on the events queue, as its event source mapping runs it: the webhook
    // puts there what it could not finish inline (an inbound message another, killed, delivery
    // still holds the forward lease of).
    let processor = event_processor::Processor {
        ports: AwsIngestPorts::new(&aws, &ingest),
        ingest: Default::default(),
        concurrency: 10,
    };
    let processor_loop = {
        let (sqs, stop, url) = (sqs.clone(), Arc::clone(&stop), events_url.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(got) = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    continue;
                };
                if got.messages().is_empty() {
                    continue;
                }
                let records: Vec<SqsMessage> = got.messages().iter().map(record).collect();
                let response = processor.handle(&records, now_ms()).await;
                let failed: HashSet<&str> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                for r in &records {
                    if !failed.contains(r.message_id.as_deref().unwrap_or_default()) {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&url)
                            .receipt_handle(r.receipt_handle.clone().unwrap_or_default())
                            .send()
                            .await;
                    }
                }
            }
        }
    };

    // Customers keep writing while the jobs go.
    let writer = {
        let (stop, sim_handle) = (Arc::clone(&stop), sim.sim.clone());
        let users = users.clone();
        let mut wrng = Rng(seed ^ 0x5eed);
        tokio::spawn(async move {
            let mut sent = Vec::new();
            while !stop.load(Ordering::SeqCst) && sent.len() < jobs / 10 {
                let u = &users[wrng.below(users.len() as u64) as usize];
                if let Ok(w) = write(&sim_handle, u, "thanks") {
                    sent.push(w);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent
        })
    };

    // The pollers: Lambda's event source mapping, one sender instance each, recreated after a
    // death (a new execution environment).
    let batches = Arc::new(AtomicUsize::new(0));
    // Not spawned: the sender's batch future is not `Send` for every lifetime; the pollers run
    // concurrently on this task, as send-load's do.
    let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = Vec::new();
    for p in 0..pollers {
        let (resources, sim_url, secret_id) =
            (resources.clone(), sim.base_url(), secret_id.clone());
        let (sqs, send_url, stop, plan, log, batches) = (
            sqs.clone(),
            send_url.clone(),
            Arc::clone(&stop),
            Arc::clone(&kill_plan),
            Arc::clone(&kill_log),
            Arc::clone(&batches),
        );
        let mut prng = Rng(seed.wrapping_add(p as u64 + 1));
        tasks.push(Box::pin(async move {
            let trip = Arc::new(Tripwire::default());
            let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
            let proxy = trip_proxy(upstream, Arc::clone(&trip), resources.outcomes_queue_url.clone()).await;
            let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(proxy).load().await;
            let instance = || {
                *trip.armed.lock().unwrap() = None;
                let graph = Arc::new(KillableGraph {
                    inner: GraphHttpClient::new(&GraphHttpConfig { base_url: sim_url.clone(), timeout: Duration::from_secs(5), ..GraphHttpConfig::default() }).expect("graph client"),
                    trip: Arc::clone(&trip),
                });
                let secrets = CachedSecrets::new(SecretsManagerFetcher::new(aws_sdk_secretsmanager::Client::new(&aws), &secret_id), Duration::from_secs(300));
                let media = GraphHttpClient::new(&GraphHttpConfig { base_url: sim_url.clone(), ..GraphHttpConfig::default() }).expect("graph client");
                Arc::new(Sender::new(AwsSenderPorts::new(&aws, &resources, ArcGraph(graph), media, secrets), config()))
            };
            let mut sender = instance();
            while !stop.load(Ordering::SeqCst) {
                let Ok(got) = sqs.receive_message().queue_url(&send_url).max_number_of_messages(10).wait_time_seconds(1)
                    .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                    .send().await else { continue };
                if got.messages().is_empty() {
                    continue;
                }
                let records: Vec<SqsMessage> = got.messages().iter().map(record).collect();
                let n = batches.fetch_add(1, Ordering::SeqCst);
                let point = (n % kill_every == kill_every - 1).then(|| plan.lock().unwrap().pop()).flatten();
                if let Some(pt) = point.filter(|p| *p != KillPoint::Random) {
                    *trip.armed.lock().unwrap() = Some(pt);
                }
                let t0 = now_ms();
                let random_ms = prng.below(3_000);
                // A kill drops the batch's future mid-flight: nothing more is written by it.
                let outcome = tokio::select! {
                    r = sender.handle(&records, t0, t0 + 30_000) => Some(r),
                    _ = trip.died.notified() => None,
                    _ = tokio::time::sleep(Duration::from_millis(random_ms)), if point == Some(KillPoint::Random) => None,
                };
                let Some(response) = outcome else {
                    // Dead: its batch comes back after the queue's visibility timeout, to a new
                    // instance.
                    let label = format!("{:?}", point.unwrap_or(KillPoint::Random));
                    *log.by_point.lock().unwrap().entry(label).or_default() += 1;
                    sender = instance();
                    continue;
                };
                // Disarm a kill that found no call to die at (every record deferred).
                if let Some(pt) = point.filter(|p| *p != KillPoint::Random)
                    && trip.take(pt)
                {
                    plan.lock().unwrap().push(pt);
                }
                let failed: HashSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
                for r in &records {
                    if !failed.contains(r.message_id.as_deref().unwrap_or_default()) {
                        let _ = sqs.delete_message().queue_url(&send_url).receipt_handle(r.receipt_handle.clone().unwrap_or_default()).send().await;
                    }
                }
            }
        }));
    }

    // Run until every job has a verdict (or the time is up).
    // The pair rate sets the floor: a burst of 30 to one user takes 30 turns of 8 s.
    let limit = Duration::from_secs(600 + jobs as u64 / 8);
    let monitor = async {
        let mut last_print = Instant::now();
        loop {
            let done = verdicts.lock().unwrap().len();
            if done >= jobs || started.elapsed() > limit {
                break;
            }
            if last_print.elapsed() > Duration::from_secs(15) {
                println!(
                    "  {:>5.0} s: {done}/{jobs} verdicts",
                    started.elapsed().as_secs_f64()
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let run_s = started.elapsed().as_secs_f64();
        // Let the last statuses and outcomes land, then stop everything.
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.store(true, Ordering::SeqCst);
        run_s
    };
    let ((), (), run_s) = tokio::join!(
        async {
            futures_util::future::join_all(tasks).await;
        },
        processor_loop,
        monitor
    );
    let written = writer.await.unwrap_or_default();
    customer_messages.extend(written);
    let _ = consumer.await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ---- checks
    let mut problems: Vec<String> = Vec::new();
    let verdicts = verdicts.lock().unwrap().clone();
    let keys: Vec<String> = bodies
        .iter()
        .map(|b| {
            SendJob::parse(b)
                .map(|j| sender::record_key(&j))
                .unwrap_or_default()
        })
        .collect();
    let mut by_verdict: BTreeMap<String, usize> = BTreeMap::new();
    let mut republished = 0;
    for (i, record_key) in keys.iter().enumerate() {
        let key = format!("fault-{i}");
        match verdicts.get(&key) {
            None => {
                let record = ddb
                    .get_item()
                    .table_name(&resources.dedupe_table)
                    .key("pk", AttributeValue::S(record_key.clone()))
                    .send()
                    .await?;
                let show = |a: &str| {
                    record
                        .item()
                        .and_then(|r| r.get(a))
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default()
                };
                problems.push(format!(
                    "{key}: no verdict (record {} until {} now {}, checkpoint {})",
                    show("record_state"),
                    show("in_progress_until"),
                    now_ms(),
                    show("checkpoint")
                ));
            }
            Some(all) => {
                republished += all.len() - 1;
                let first = &all[0];
                if all
                    .iter()
                    .any(|o| o.outcome != first.outcome || o.wamid != first.wamid)
                {
                    problems.push(format!("{key}: verdicts disagree: {all:?}"));
                }
                let label = match first.outcome {
                    Verdict::Accepted => "accepted".to_owned(),
                    _ => format!(
                        "{:?}/{}",
                        first.outcome,
                        first.reason.clone().unwrap_or_default()
                    )
                    .to_lowercase(),
                };
                *by_verdict.entry(label).or_default() += 1;
            }
        }
    }
    // Sends per job, by the simulator's own count.
    let sent = sim.sim.messages();
    let mut per_callback: HashMap<String, usize> = HashMap::new();
    for m in &sent {
        *per_callback
            .entry(m.callback_data.clone().unwrap_or_default())
            .or_default() += 1;
    }
    // When the simulator accepted each message carrying a callback data (epoch ms), in order.
    let mut accepted_at: HashMap<String, Vec<i64>> = HashMap::new();
    for r in sim.sim.requests() {
        if r.method == "POST"
            && r.path.ends_with("/messages")
            && r.status == 200
            && let Some(cb) = r.body["biz_opaque_callback_data"].as_str()
        {
            accepted_at.entry(cb.to_owned()).or_default().push(r.at_ms);
        }
    }
    let seen = status_seen.lock().unwrap().clone();
    let mut lags: Vec<i64> = accepted_at
        .iter()
        .filter_map(|(cb, at)| Some(seen.get(cb)? - at.first()?))
        .collect();
    lags.sort_unstable();
    let pct = |p: f64| {
        lags.get(((lags.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let (mut explained, mut unexplained, mut accepted_once) = (0, 0, 0);
    let mut explained_lags: Vec<i64> = Vec::new();
    // Each job's callback data: its key and its record's generation.
    let mut generations: HashMap<String, String> = HashMap::new();
    let mut start_key = None;
    loop {
        let page = ddb
            .scan()
            .table_name(&resources.dedupe_table)
            .set_exclusive_start_key(start_key)
            .send()
            .await?;
        for i in page.items() {
            if let (Some(pk), Some(g)) = (
                i.get("pk").and_then(|v| v.as_s().ok()),
                i.get("generation").and_then(|v| v.as_s().ok()),
            ) {
                generations.insert(pk.clone(), g.clone());
            }
        }
        start_key = page.last_evaluated_key().cloned();
        if start_key.is_none() {
            break;
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let callback = sender::callback_data(key, generations.get(key).map(String::as_str));
        let n = per_callback.get(&callback).copied().unwrap_or(0);
        if n > 1 {
            // The documented trade-off: the resend was decided because no status of the first
            // message had arrived within the reconcile window. It is explained when the first
            // status was acknowledged by the webhook only after the resend went out.
            let times = accepted_at.get(&callback).cloned().unwrap_or_default();
            let first_status = seen.get(&callback).copied().unwrap_or(i64::MAX);
            match times.get(1) {
                Some(&resent) if first_status > resent => {
                    explained += 1;
                    explained_lags.push(first_status.saturating_sub(times[0]));
                }
                _ => {
                    unexplained += 1;
                    problems.push(format!(
                        "fault-{i}: sent {n} times, the first status acknowledged {} ms after the first send, before the resend",
                        first_status.saturating_sub(times.first().copied().unwrap_or(0))
                    ));
                }
            }
        }
        let accepted = verdicts
            .get(&format!("fault-{i}"))
            .is_some_and(|v| v[0].outcome == Verdict::Accepted);
        if accepted && n == 1 {
            accepted_once += 1;
        } else if accepted && n == 0 {
            problems.push(format!("fault-{i}: accepted but never sent"));
        }
    }
    // Pacing: the simulator refuses what breaks its rules.
    let requests = sim.sim.requests();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .collect();
    let pair_refusals = posts
        .iter()
        .filter(|r| r.error_code == Some(131_056))
        .count();
    let throttled = posts
        .iter()
        .filter(|r| r.error_code == Some(130_429))
        .count();
    let injected_429 = posts
        .iter()
        .filter(|r| r.error_code == Some(130_429) && r.injected)
        .count();
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    for r in posts.iter().filter(|r| r.injected) {
        let kind = r.error_code.map_or("hang after accept".to_owned(), |c| {
            format!("{} {c}", r.status)
        });
        *injected.entry(kind).or_default() += 1;
    }
    let async_failed = sent.iter().filter(|m| m.outcome == Err(131_047)).count();
    *injected.entry("failed status 131047".into()).or_default() += async_failed;
    if pair_refusals > 0 {
        problems.push(format!(
            "{pair_refusals} pair-rate refusals (131056): our pacing"
        ));
    }
    if throttled > injected_429 {
        problems.push(format!(
            "{} throttled (130429) beyond the injected: our pacing",
            throttled - injected_429
        ));
    }
    // The DLQ: every message has a reason.
    let mut dlq: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await?;
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|v| v.string_value())
                .map(str::to_owned);
            match reason {
                Some(r) => *dlq.entry(r).or_default() += 1,
                None => problems
                    .push("a DLQ message without a reason (redriven by SQS: no verdict)".into()),
            }
            sqs.delete_message()
                .queue_url(&dlq_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
    // No record left in progress.
    let mut in_progress = 0;
    let mut start_key = None;
    loop {
        let page = ddb
            .scan()
            .table_name(&resources.dedupe_table)
            .set_exclusive_start_key(start_key)
            .send()
            .await?;
        in_progress += page
            .items()
            .iter()
            .filter(|i| {
                i.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|k| k.starts_with("send#"))
                    && i.get("record_state") == Some(&AttributeValue::S("INPROGRESS".into()))
            })
            .count();
        start_key = page.last_evaluated_key().cloned();
        if start_key.is_none() {
            break;
        }
    }
    if in_progress > 0 {
        problems.push(format!(
            "{in_progress} idempotency records left in progress"
        ));
    }
    // Every customer message reached the bots' queue.
    let mut inbound: HashSet<String> = HashSet::new();
    let mut inbound_copies = 0;
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&inbound_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let v: Value = serde_json::from_str(m.body().unwrap_or_default())?;
            inbound_copies += 1;
            inbound.insert(v["message"]["id"].as_str().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(&inbound_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
    let lost_inbound = customer_messages
        .iter()
        .filter(|w| !inbound.contains(*w))
        .count();
    if lost_inbound > 0 {
        problems.push(format!(
            "{lost_inbound} customer messages never reached the bots"
        ));
    }
    // Every status Meta sent is recorded: the final one of each accepted message.
    let store = whatsapp_aws::DynamoMessageStore::new(ddb.clone(), &resources.messages_table);
    let mut statuses_missing = 0;
    for m in &sent {
        let want = if m.outcome.is_ok() { "read" } else { "failed" };
        let got = store
            .message(&m.wamid)
            .await?
            .and_then(|r| r.status)
            .map(|s| format!("{s:?}").to_lowercase());
        if got.as_deref() != Some(want) {
            statuses_missing += 1;
        }
    }
    if statuses_missing > 0 {
        problems.push(format!(
            "{statuses_missing} messages whose final status never reached the table"
        ));
    }
    let deliveries = sim.sim.deliveries();
    let kills_by = kill_log.by_point.lock().unwrap().clone();

    println!("fault-run report (seed {seed}, {jobs} jobs, {run_s:.0} s to the last verdict)");
    println!(
        "  verdicts: {} of {jobs} jobs, by outcome {by_verdict:?}; {republished} republished copies (all agreeing)",
        verdicts.len()
    );
    explained_lags.sort_unstable();
    println!(
        "  sends counted by the simulator: {} accepted messages; {accepted_once} accepted jobs sent exactly once; sent twice: {unexplained} unexplained, {explained} inside the reconcile trade-off (the first send's status reached the webhook {:?} ms after it, later than the {} s window)",
        sent.len(),
        explained_lags,
        config().reconcile_after_ms / 1000
    );
    println!(
        "  status lag (first status acknowledged by the webhook after Meta accepted): p50 {} ms, p99 {} ms, max {} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  Graph POSTs {}: faults injected {injected:?}; 130429 beyond the injected {}, 131056 {pair_refusals}",
        posts.len(),
        throttled - injected_429
    );
    println!("  DLQ by reason: {dlq:?}; idempotency records in progress: {in_progress}");
    println!(
        "  sender kills: {kills_by:?}; webhook requests aborted: {}",
        kill_log.webhook.load(Ordering::SeqCst).min(webhook_kills)
    );
    println!(
        "  customer messages: {} written, {} reached the bots ({inbound_copies} copies); lost {lost_inbound}",
        customer_messages.len(),
        inbound.len()
    );
    println!(
        "  webhook POSTs by the simulator: {} (retries included); statuses missing from the table: {statuses_missing}",
        deliveries.len()
    );
    if problems.is_empty() {
        println!("fault-run: PASS");
        Ok(())
    } else {
        for p in problems.iter().take(30) {
            println!("  problem: {p}");
        }
        println!("fault-run: FAIL ({} problems)", problems.len());
        std::process::exit(1);
    }
}

/// A shared [`KillableGraph`] as the sender's Graph port.
struct ArcGraph(Arc<KillableGraph>);

impl GraphApi for ArcGraph {
    async fn send_message_within(
        &self,
        pn: &str,
        request: &SendMessageRequest<'_>,
        token: &str,
        timeout: Duration,
    ) -> Result<SendMessageResponse, GraphCallError> {
        self.0
            .send_message_within(pn, request, token, timeout)
            .await
    }
    async fn send_message(
        &self,
        pn: &str,
        request: &SendMessageRequest<'_>,
        token: &str,
    ) -> Result<SendMessageResponse, GraphCallError> {
        self.0.send_message(pn, request, token).await
    }
    async fn mark_read(
        &self,
        pn: &str,
        request: &MarkReadRequest,
        token: &str,
    ) -> Result<(), GraphCallError> {
        self.0.mark_read(pn, request, token).await
    }
    async fn phone_number(&self, pn: &str, token: &str) -> Result<PhoneNumberInfo, GraphCallError> {
        self.0.phone_number(pn, token).await
    }
}
