//! Load benchmark of the sender (not a test): drives N send jobs for one number through the real
//! sender against the Cloud API simulator (100 ms latency, cap enforced as a token bucket), and
//! reports the achieved rate as a share of the cap, the count of 130429 answers, and the AWS
//! calls per message.
//!
//! Two backends:
//! - `ministack` (default): the real AWS SDK clients against ministack, through a counting proxy
//!   (every AWS call is counted by operation); several pollers play Lambda's event source
//!   mapping (receive 10, invoke, delete the successes), each with its own sender instance.
//! - `memory`: the same sender on in-memory ports with the real HTTP Graph client to the
//!   simulator: what the sender itself sustains when the emulator is not the limit.
//!
//! Needs `AWS_ENDPOINT_URL` for the ministack backend (run under `scripts/test`'s ministack or
//! `scripts/local-up --keep`):
//!
//! `cargo run --release -p integration-tests --example send-load -- [ministack|memory] [jobs] [mps] [pollers] [batch] [--scenario reply|campaign|trickle] [--latency-ms N]`
//!
//! `batch` (1 to 10, default 10) is the most records a poller hands the sender at once: 10 is the
//! template's `BatchSize` under steady load, 1 what a trickle of jobs gets. The scenarios are
//! in `common/load_scenario.rs` (default `reply`); `--latency-ms` is the simulator's Graph
//! latency (default 100). The ministack backend ends with a `cost-json` line: the sender's
//! measured figures per message, which `scripts/cost` prices.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsMessage;
use sender::aws::{AwsSenderPorts, SenderResources};
use sender::memory::{MemorySenderPorts, MemoryStores};
use sender::{Sender, SenderConfig};
use serde_json::json;
use whatsapp_aws::{CachedSecrets, GraphHttpClient, GraphHttpConfig, SecretsManagerFetcher};
use whatsapp_core::ports::NumberLimits;

#[path = "common/counting_proxy.rs"]
mod counting_proxy;
#[path = "common/load_report.rs"]
mod load_report;
#[path = "common/load_scenario.rs"]
mod load_scenario;
#[path = "common/load_webhook.rs"]
mod load_webhook;
#[path = "common/stack.rs"]
mod stack;

type Error = Box<dyn std::error::Error + Send + Sync>;

use load_report::{cpu_seconds, hot_keys, ministack_pid, per_message, print_invocations, report};
use load_scenario::{PHONE, Scenario, WABA, seed_records, start_sim, tier};

fn config() -> SenderConfig {
    SenderConfig {
        numbers: sender::config::parse_numbers(&format!("{PHONE}:{WABA}")).unwrap(),
        limits_cache: Duration::from_secs(60),
        ..SenderConfig::default()
    }
}

fn graph(sim: &simulator::RunningSimulator) -> GraphHttpClient {
    GraphHttpClient::new(&GraphHttpConfig {
        base_url: sim.base_url(),
        ..GraphHttpConfig::default()
    })
    .expect("graph client")
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut scenario = Scenario::Reply;
    let mut latency_ms: u64 = 100;
    let mut args: Vec<String> = Vec::new();
    let mut given = std::env::args().skip(1);
    while let Some(a) = given.next() {
        match a.as_str() {
            "--scenario" => scenario = Scenario::parse(&given.next().unwrap_or_default())?,
            "--latency-ms" => {
                latency_ms = given
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--latency-ms takes a number of milliseconds")?
            }
            _ => args.push(a),
        }
    }
    let backend = args.first().cloned().unwrap_or_else(|| "ministack".into());
    let jobs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let mps: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(80);
    let pollers: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let batch_size: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    if !(1..=10).contains(&batch_size) {
        return Err(
            format!("batch must be 1 to 10 (SQS receives at most 10), not {batch_size}").into(),
        );
    }
    let batch_size = scenario.batch_size(batch_size);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let sim = start_sim(mps, latency_ms, scenario, jobs, now).await?;
    let run = Run {
        scenario,
        jobs,
        mps,
        pollers,
        batch_size,
        now,
    };
    println!(
        "send-load: backend={backend} scenario={} jobs={jobs} cap={mps} msg/s pollers={pollers} batch={batch_size} simulator latency={latency_ms} ms",
        scenario.name()
    );
    let started = Instant::now();
    let (calls, cpu) = match backend.as_str() {
        "memory" => {
            let cpu0 = cpu_seconds(std::process::id());
            let run_started = Instant::now();
            let calls = run_memory(&sim, &run).await?;
            let run = run_started.elapsed().as_secs_f64();
            if let (Some(a), Some(a0)) = (cpu_seconds(std::process::id()), cpu0) {
                println!(
                    "CPU over the {run:.1} s run: this process (sender, simulator, driver) {:.1} s = {:.2} ms per message, \
                     i.e. one core would carry about {:.0} msg/s of sender and simulator together",
                    a - a0,
                    (a - a0) * 1000.0 / jobs as f64,
                    jobs as f64 / (a - a0).max(0.001)
                );
            }
            (calls, None)
        }
        _ => run_ministack(&sim, &run).await?,
    };
    let wall = started.elapsed();
    let r = report(&sim.sim);
    // From the start of the first throughput slot to the end of the last one.
    let span = (r.last_ms - r.first_ms) as f64 / 1000.0 + 0.1;
    let rate = r.accepted as f64 / span;
    println!("accepted         : {} of {jobs}", r.accepted);
    println!(
        "achieved rate    : {rate:.1} msg/s = {:.1} % of the {mps} msg/s cap (first to last accepted send plus one 100 ms slot, {span:.1} s)",
        rate / f64::from(mps) * 100.0
    );
    println!("130429 answers   : {}", r.throttled);
    println!("other errors     : {}", r.other_errors);
    println!("wall time        : {:.1} s", wall.as_secs_f64());
    print_invocations(INVOCATIONS.lock().unwrap().clone(), r.accepted, latency_ms);
    let calls_total: usize = calls.as_ref().map_or(0, |c| c.values().sum());
    if let Some(calls) = calls {
        let total = calls_total;
        let esm: usize = calls
            .iter()
            .filter(|(k, _)| k.contains("ReceiveMessage") || k.contains("DeleteMessage"))
            .map(|(_, v)| v)
            .sum();
        println!(
            "AWS calls/message: {:.2} by the sender and the webhook, {:.2} with the event source mapping's receive/delete",
            (total - esm) as f64 / jobs as f64,
            total as f64 / jobs as f64
        );
        for (op, n) in &calls {
            println!("    {op:<45} {n:>7}  ({:.2}/msg)", *n as f64 / jobs as f64);
        }
    }
    if let Some((ministack, me, run)) = cpu {
        println!(
            "CPU over the {run:.1} s run (2 cores): ministack {ministack:.1} s ({:.0} % of one core; it serves on one), \
             this process (sender, simulator, proxy, driver) {me:.1} s ({:.0} %)",
            ministack / run * 100.0,
            me / run * 100.0
        );
        println!(
            "ministack CPU per AWS call: {:.2} ms",
            ministack * 1000.0 / calls_total.max(1) as f64
        );
    }
    Ok(())
}

/// One run's shape.
struct Run {
    scenario: Scenario,
    jobs: usize,
    mps: u32,
    pollers: usize,
    batch_size: usize,
    now: i64,
}

/// Each sender invocation's handler time (ms) and batch size: what Lambda would bill.
static INVOCATIONS: Mutex<Vec<(f64, usize)>> = Mutex::new(Vec::new());

async fn timed_handle<P: sender::SenderPorts>(
    sender: &Sender<P>,
    records: &[SqsMessage],
    now_ms: i64,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let started = Instant::now();
    let response = sender.handle(records, now_ms, now_ms + 30_000).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    INVOCATIONS.lock().unwrap().push((ms, records.len()));
    response
}

async fn run_ministack(
    sim: &simulator::RunningSimulator,
    run: &Run,
) -> Result<(Option<BTreeMap<String, usize>>, Option<(f64, f64, f64)>), Error> {
    let &Run {
        scenario,
        jobs,
        mps,
        pollers,
        batch_size,
        now,
    } = run;
    let upstream = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL must point at ministack")?;
    let (counts, proxy_url) =
        counting_proxy::start(upstream.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await?;

    // Resources, created directly on ministack (not counted).
    let direct = whatsapp_aws::aws_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&direct);
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let suffix = format!("{}-{}", std::process::id(), now);
    let tables = stack::tables(&ddb, &format!("load-{suffix}")).await?;
    let mut queues = BTreeMap::new();
    for q in ["send", "dlq", "outcomes"] {
        queues.insert(
            q,
            stack::queue(&sqs, &format!("load-{q}-{suffix}"), &[]).await?,
        );
    }
    let secret_id = format!("load-secret-{suffix}");
    aws_sdk_secretsmanager::Client::new(&direct)
        .create_secret()
        .name(&secret_id)
        .secret_string(
            json!({"app_secret": load_webhook::APP_SECRET, "verify_token": "v", "access_token": "tok"})
                .to_string(),
        )
        .send()
        .await?;
    let resources = SenderResources {
        sessions_table: tables["sessions"].clone(),
        contacts_table: tables["contacts"].clone(),
        templates_table: tables["templates"].clone(),
        messages_table: tables["messages"].clone(),
        dedupe_table: tables["dedupe"].clone(),
        control_table: tables["control"].clone(),
        send_queue_url: queues["send"].clone(),
        send_dlq_url: queues["dlq"].clone(),
        outcomes_queue_url: queues["outcomes"].clone(),
        media_ids_table: tables["media-ids"].clone(),
        s3_path_style: true,
    };
    // Every AWS call of the run goes through the counting proxy: the webhook's too.
    let counted = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&proxy_url)
        .load()
        .await;
    let (hook_url, hook_invocations) =
        load_webhook::start(&direct, &counted, &tables, &suffix, &secret_id).await?;
    sim.sim.configure(|c| {
        c.callback_url = Some(hook_url);
        c.app_secret = load_webhook::APP_SECRET.into();
    });
    // Reply and trickle: each customer writes first, through the webhook (which opens the
    // window the sender reads). A customer's first message ever also files their ids (the
    // alias writes); the run counts a message from a customer we already know, so the first
    // round is a warm-up, not counted.
    let inbound = if scenario.in_window() { jobs } else { 0 };
    for round in 1..=2 {
        for i in 0..inbound {
            sim.sim.user_sends(
                &load_scenario::user(i),
                simulator::InboundSpec {
                    phone_number_id: PHONE.into(),
                    message: json!({"type": "text", "text": {"body": "Where is my order?"}}),
                    referral: None,
                    context: None,
                    hide_phone_number: false,
                    media: None,
                },
            )?;
        }
        let landed = load_webhook::drained(&sim.sim, inbound * round).await;
        if landed < inbound * round {
            return Err(
                format!("only {landed} of {inbound} customer messages were acknowledged").into(),
            );
        }
        if round == 1 {
            counts.reset();
            hook_invocations.lock().unwrap().clear();
        }
    }
    // Templates, opt-ins and the number's cap and tier, as the template sync, the consent flow
    // and the poller would have stored them.
    seed_records(
        scenario,
        false,
        jobs,
        now,
        &whatsapp_aws::DynamoSessionStore::new(ddb.clone(), &resources.sessions_table),
        &whatsapp_aws::DynamoContactStore::new(ddb.clone(), &resources.contacts_table),
        &whatsapp_aws::DynamoTemplateStore::new(ddb.clone(), &resources.templates_table),
    )
    .await?;
    let mut number = ddb
        .put_item()
        .table_name(&resources.control_table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("NUM#{PHONE}")),
        )
        .item(
            "mps",
            aws_sdk_dynamodb::types::AttributeValue::N(mps.to_string()),
        );
    if let Some(t) = tier(scenario) {
        number = number.item(
            "tier",
            aws_sdk_dynamodb::types::AttributeValue::S(t.as_str().to_owned()),
        );
    }
    number.send().await?;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|&i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(scenario.job(i))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(&resources.send_queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }

    // The run.
    let ms_pid = ministack_pid();
    let ms_cpu0 = ms_pid.and_then(cpu_seconds);
    let me_cpu0 = cpu_seconds(std::process::id());
    let run_started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = Vec::new();
    for _ in 0..pollers {
        let secrets = CachedSecrets::new(
            SecretsManagerFetcher::new(aws_sdk_secretsmanager::Client::new(&counted), &secret_id),
            Duration::from_secs(300),
        );
        let sender = Arc::new(Sender::new(
            AwsSenderPorts::new(&counted, &resources, graph(sim), graph(sim), secrets),
            config(),
        ));
        let sqs = aws_sdk_sqs::Client::new(&counted);
        let url = resources.send_queue_url.clone();
        let done = Arc::clone(&done);
        tasks.push(Box::pin(async move {
            let mut idle = 0;
            while done.load(Ordering::SeqCst) < jobs && idle < 30 {
                let got = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(batch_size as i32)
                    .wait_time_seconds(1)
                    .send()
                    .await;
                let Ok(got) = got else { continue };
                if got.messages().is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                let records: Vec<SqsMessage> = got
                    .messages()
                    .iter()
                    .map(|m| {
                        let mut r = SqsMessage::default();
                        r.message_id = m.message_id().map(str::to_owned);
                        r.receipt_handle = m.receipt_handle().map(str::to_owned);
                        r.body = m.body().map(str::to_owned);
                        r
                    })
                    .collect();
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as i64;
                let response = timed_handle(&sender, &records, now_ms).await;
                let ok: Vec<_> = records
                    .iter()
                    .filter(|r| {
                        !response
                            .batch_item_failures
                            .iter()
                            .any(|f| Some(&f.item_identifier) == r.message_id.as_ref())
                    })
                    .filter_map(|r| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(r.message_id.clone().unwrap_or_default())
                            .receipt_handle(r.receipt_handle.clone().unwrap_or_default())
                            .build()
                            .ok()
                    })
                    .collect();
                done.fetch_add(ok.len(), Ordering::SeqCst);
                if !ok.is_empty() {
                    let _ = sqs
                        .delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(ok))
                        .send()
                        .await;
                }
            }
        }));
    }
    futures_util::future::join_all(tasks).await;
    // Every status of every accepted send (sent, delivered, read) reaches the webhook.
    let accepted = report(&sim.sim).accepted;
    let statuses = load_webhook::drained(&sim.sim, 2 * inbound + 3 * accepted).await - 2 * inbound;
    println!(
        "webhook          : {inbound} customer messages and {statuses} statuses ({:.2} per accepted send) through the webhook",
        statuses as f64 / accepted.max(1) as f64
    );
    let run = run_started.elapsed().as_secs_f64();
    let cpu = match (
        ms_pid.and_then(cpu_seconds),
        ms_cpu0,
        cpu_seconds(std::process::id()),
        me_cpu0,
    ) {
        (Some(a), Some(a0), Some(b), Some(b0)) => Some((a - a0, b - b0, run)),
        _ => None,
    };
    let calls = counts.snapshot();
    hot_keys(&counts.key_writes(), jobs);
    let mut extra = load_report::storage(&ddb, &tables, jobs, now).await?;
    // What goes out to the internet per send: the Graph request's body (the answer comes in).
    let sends: Vec<usize> = sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/messages") && r.method == "POST")
        .map(|r| r.body.to_string().len())
        .collect();
    extra.insert(
        "graph_request_bytes".into(),
        json!(sends.iter().sum::<usize>() as f64 / sends.len().max(1) as f64),
    );
    per_message(
        &INVOCATIONS.lock().unwrap(),
        &hook_invocations.lock().unwrap(),
        scenario,
        &counts,
        &calls,
        jobs,
        extra,
    );
    Ok((Some(calls), cpu))
}

async fn run_memory(
    sim: &simulator::RunningSimulator,
    run: &Run,
) -> Result<Option<BTreeMap<String, usize>>, Error> {
    let &Run {
        scenario,
        jobs,
        mps,
        pollers,
        batch_size,
        now,
    } = run;
    let stores = Arc::new(MemoryStores::default());
    seed_records(
        scenario,
        true,
        jobs,
        now,
        &stores.sessions,
        &stores.contacts,
        &stores.templates,
    )
    .await?;
    stores.control.limits.lock().unwrap().insert(
        PHONE.into(),
        NumberLimits {
            mps: Some(mps),
            tier: tier(scenario),
            marketing_paused: false,
        },
    );
    let queue: Arc<Mutex<VecDeque<String>>> =
        Arc::new(Mutex::new((0..jobs).map(|i| scenario.job(i)).collect()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = Vec::new();
    for p in 0..pollers {
        let ports = MemorySenderPorts::new(Arc::clone(&stores), graph(sim));
        let sender = Sender::new(ports, config());
        let queue = Arc::clone(&queue);
        let done = Arc::clone(&done);
        tasks.push(Box::pin(async move {
            let mut n = 0usize;
            while done.load(Ordering::SeqCst) < jobs {
                let batch: Vec<String> = {
                    let mut q = queue.lock().unwrap();
                    (0..batch_size).filter_map(|_| q.pop_front()).collect()
                };
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let records: Vec<SqsMessage> = batch
                    .iter()
                    .map(|b| {
                        n += 1;
                        let mut r = SqsMessage::default();
                        r.message_id = Some(format!("{p}-{n}"));
                        r.receipt_handle = Some(format!("{p}-{n}"));
                        r.body = Some(b.clone());
                        r
                    })
                    .collect();
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as i64;
                let response = timed_handle(&sender, &records, now_ms).await;
                let mut q = queue.lock().unwrap();
                for r in &records {
                    if response
                        .batch_item_failures
                        .iter()
                        .any(|f| Some(&f.item_identifier) == r.message_id.as_ref())
                    {
                        // Back in the queue (a deferral), as visibility would do.
                        q.push_back(r.body.clone().unwrap_or_default());
                    } else {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    futures_util::future::join_all(tasks).await;
    Ok(None)
}
