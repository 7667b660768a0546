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
//! `cargo run --release -p integration-tests --example send-load -- [ministack|memory] [jobs] [mps] [pollers] [batch]`
//!
//! `batch` (1 to 10, default 10) is the most records a poller hands the sender at once: 10 is the
//! template's `BatchSize` under steady load, 1 what a trickle of jobs gets.

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
use simulator::{Fault, FaultRoute, PhoneChange, SimConfig, Simulator, Tier};
use whatsapp_aws::{CachedSecrets, GraphHttpClient, GraphHttpConfig, SecretsManagerFetcher};
use whatsapp_core::ports::{NumberLimits, SessionStore, UserKey};

#[path = "common/counting_proxy.rs"]
mod counting_proxy;
#[path = "common/stack.rs"]
mod stack;

type Error = Box<dyn std::error::Error + Send + Sync>;

const WABA: &str = "102290129340398";
const PHONE: &str = "106540352242922";

fn job(i: usize) -> String {
    json!({"version": 1, "idempotency_key": format!("load-{i}"), "phone_number_id": PHONE,
           "to": {"wa_id": format!("4477{i:08}")},
           "message": {"type": "text", "text": {"body": "Your order has shipped."}}})
    .to_string()
}

fn config() -> SenderConfig {
    SenderConfig {
        numbers: sender::config::parse_numbers(&format!("{PHONE}:{WABA}")).unwrap(),
        limits_cache: Duration::from_secs(60),
        ..SenderConfig::default()
    }
}

struct Report {
    accepted: usize,
    first_ms: i64,
    last_ms: i64,
    throttled: usize,
    other_errors: usize,
}

fn report(sim: &Simulator) -> Report {
    let reqs: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/messages") && r.method == "POST")
        .collect();
    let ok: Vec<i64> = reqs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.at_ms)
        .collect();
    Report {
        accepted: ok.len(),
        first_ms: ok.iter().copied().min().unwrap_or(0),
        last_ms: ok.iter().copied().max().unwrap_or(0),
        throttled: reqs.iter().filter(|r| r.error_code == Some(130429)).count(),
        other_errors: reqs
            .iter()
            .filter(|r| r.status != 200 && r.error_code != Some(130429))
            .count(),
    }
}

/// The CPU seconds a process has used (utime + stime from /proc), to show who saturates.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn ministack_pid() -> Option<u32> {
    std::fs::read_to_string(".local/ministack.pid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn start_sim(mps: u32) -> Result<simulator::RunningSimulator, Error> {
    let sim = Simulator::start(
        SimConfig {
            default_mps: mps,
            callback_url: None,
            ..SimConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    sim.sim.create_waba(WABA, Tier::Unlimited);
    sim.sim.create_phone_number(PHONE, WABA, "15550783881");
    sim.sim.set_phone_state(
        PHONE,
        PhoneChange {
            mps: Some(mps),
            ..PhoneChange::default()
        },
    )?;
    sim.sim.add_token("tok", None);
    sim.sim.inject_fault(Fault {
        route: FaultRoute::Messages,
        latency_ms: 100,
        error: None,
        hang_before_ms: None,
        hang_after_ms: None,
        times: None,
    });
    Ok(sim)
}

fn graph(sim: &simulator::RunningSimulator) -> GraphHttpClient {
    GraphHttpClient::new(&GraphHttpConfig {
        base_url: sim.base_url(),
        ..GraphHttpConfig::default()
    })
    .expect("graph client")
}

/// Opens the service window of every recipient, as the webhook would have on their messages.
async fn open_windows(sessions: &impl SessionStore, jobs: usize, now: i64) -> Result<(), Error> {
    for i in 0..jobs {
        let key = UserKey {
            phone_number_id: PHONE.into(),
            user: format!("4477{i:08}"),
        };
        sessions.record_inbound(&key, now - 60, false).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).cloned().unwrap_or_else(|| "ministack".into());
    let jobs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let mps: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(80);
    let pollers: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(4);
    let batch_size: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(10);
    if !(1..=10).contains(&batch_size) {
        return Err(
            format!("batch must be 1 to 10 (SQS receives at most 10), not {batch_size}").into(),
        );
    }
    let sim = start_sim(mps).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    // Every recipient wrote a minute ago (in the simulator and in our sessions): replies in the
    // window, the commonest traffic.
    for i in 0..jobs {
        let uid = sim.sim.add_user(Some(&format!("4477{i:08}")), None, true);
        sim.sim.set_last_inbound(&uid, PHONE, now - 60);
    }
    println!(
        "send-load: backend={backend} jobs={jobs} cap={mps} msg/s pollers={pollers} batch={batch_size} simulator latency=100 ms"
    );
    let started = Instant::now();
    let (calls, cpu) = match backend.as_str() {
        "memory" => {
            let cpu0 = cpu_seconds(std::process::id());
            let run_started = Instant::now();
            let calls = run_memory(&sim, jobs, mps, pollers, batch_size, now).await?;
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
        _ => run_ministack(&sim, jobs, mps, pollers, batch_size, now).await?,
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
    print_invocations(r.accepted);
    let calls_total: usize = calls.as_ref().map_or(0, |c| c.values().sum());
    if let Some(calls) = calls {
        let total = calls_total;
        let esm: usize = calls
            .iter()
            .filter(|(k, _)| k.contains("ReceiveMessage") || k.contains("DeleteMessage"))
            .map(|(_, v)| v)
            .sum();
        println!(
            "AWS calls/message: {:.2} by the sender, {:.2} with the event source mapping's receive/delete",
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

/// The sender's handler time per invocation and per accepted message.
fn print_invocations(accepted: usize) {
    let mut inv = INVOCATIONS.lock().unwrap().clone();
    if inv.is_empty() {
        return;
    }
    inv.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = inv.iter().map(|(ms, _)| ms).sum();
    let records: usize = inv.iter().map(|(_, n)| n).sum();
    println!(
        "sender handler   : {} invocations of {:.1} records on average; median {:.0} ms, p90 {:.0} ms; \
         {:.1} ms of handler time per accepted message (Graph latency 100 ms)",
        inv.len(),
        records as f64 / inv.len() as f64,
        inv[inv.len() / 2].0,
        inv[inv.len() * 9 / 10].0,
        total / accepted.max(1) as f64
    );
}

async fn run_ministack(
    sim: &simulator::RunningSimulator,
    jobs: usize,
    mps: u32,
    pollers: usize,
    batch_size: usize,
    now: i64,
) -> Result<(Option<BTreeMap<String, usize>>, Option<(f64, f64, f64)>), Error> {
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
        .secret_string(r#"{"app_secret":"a","verify_token":"v","access_token":"tok"}"#)
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
    // Windows open and the number's cap, as the webhook and the poller would have stored them.
    let sessions = whatsapp_aws::DynamoSessionStore::new(ddb.clone(), &resources.sessions_table);
    open_windows(&sessions, jobs, now).await?;
    ddb.put_item()
        .table_name(&resources.control_table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("NUM#{PHONE}")),
        )
        .item(
            "mps",
            aws_sdk_dynamodb::types::AttributeValue::N(mps.to_string()),
        )
        .send()
        .await?;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|&i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(job(i))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(&resources.send_queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }

    // The run, every AWS call through the counting proxy.
    let counted = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&proxy_url)
        .load()
        .await;
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
    Ok((Some(calls), cpu))
}

/// The hot-key report: the keys the most writes landed on, per message, and what that is at
/// 1,000 msg/s. A throughput-slot key (`TP#…`) lives one 100 ms slot: its rate is its writes
/// within that slot, bounded by its shard's capacity plus the tries that found it full
/// (`policy::slot_shards`: at most 250 admitted writes/s on a key at any cap).
fn hot_keys(writes: &BTreeMap<String, usize>, jobs: usize) {
    let short = |k: &str| -> String {
        // `load-<pid>-<time>-<table> <pk>`: the table's role, and the key.
        let (table, key) = k.split_once(' ').unwrap_or((k, ""));
        let role = table.rsplit('-').next().unwrap_or(table);
        let role = table.find("/index/").map_or(role.to_owned(), |i| {
            format!(
                "{}{}",
                table[..i].rsplit('-').next().unwrap_or(""),
                &table[i..]
            )
        });
        format!("{role} {key}")
    };
    let mut sorted: Vec<(&String, &usize)> = writes.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let (slots, keys): (Vec<_>, Vec<_>) = sorted.iter().partition(|(k, _)| k.contains(" TP#"));
    println!(
        "hot keys         : DynamoDB writes by partition key ({} keys written)",
        writes.len()
    );
    for (k, n) in keys.iter().take(3) {
        let per_message = **n as f64 / jobs as f64;
        println!(
            "    {:<60} {n:>6} writes, {per_message:.3}/msg, at 1,000 msg/s: {:.0} writes/s",
            short(k),
            per_message * 1000.0
        );
    }
    if let Some((k, n)) = slots.first() {
        println!(
            "    {:<60} {n:>6} writes within its 100 ms slot: {} writes/s while it lasts",
            short(k),
            **n * 10
        );
    }
}

async fn run_memory(
    sim: &simulator::RunningSimulator,
    jobs: usize,
    mps: u32,
    pollers: usize,
    batch_size: usize,
    now: i64,
) -> Result<Option<BTreeMap<String, usize>>, Error> {
    let stores = Arc::new(MemoryStores::default());
    open_windows(&stores.sessions, jobs, now).await?;
    stores.control.limits.lock().unwrap().insert(
        PHONE.into(),
        NumberLimits {
            mps: Some(mps),
            tier: None,
            marketing_paused: false,
        },
    );
    let queue: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new((0..jobs).map(job).collect()));
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
