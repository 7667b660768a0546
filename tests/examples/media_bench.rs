//! Measures inbound media on the local emulator, with the Cloud API simulator in its own process
//! (so its copy of a file is not counted in ours). Needs `AWS_ENDPOINT_URL` (run under
//! scripts/test's ministack, or `scripts/local-up --keep`).
//!
//! - `rss [MB]` (default 100): the media fetcher keeps one document of that size; prints this
//!   process's peak RSS (`VmHWM`) before and after, and the transfer rate.
//! - `latency [n]` (default 50): n users each send a 100 KB image; the time from the user's
//!   send (the simulator signs and posts the webhook) through the webhook handler, the media
//!   queue, the fetcher (Meta's URL, S3) and the inbound queue, to the bots' event; p50/p99.
//!
//! `cargo run --profile perf -p integration-tests --example media-bench -- rss 100`

#[path = "common/stack.rs"]
mod stack;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsMessage;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use media_fetcher::{FetchConfig, Fetcher};
use serde_json::{Value, json};
use webhook::{Settings, Webhook};
use whatsapp_aws::{
    AwsIngestPorts, DynamoDedupeStore, GraphHttpClient, GraphHttpConfig, IngestResources,
    S3Objects, SqsQueue, aws_sdk_config, s3_client,
};
use whatsapp_fakes::{MemoryQueue, StaticSecrets};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const SECRET: &str = "bench-app-secret-0123456789";
const TOKEN: &str = "bench-token";

/// This process's peak resident set, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Sim {
    child: std::process::Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator binary built beside this example, on a free port.
async fn simulator(callback: Option<&str>) -> Result<Sim, Error> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("wa-simulator"))
        .ok_or("no target directory")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new(&bin)
        .env("SIM_PORT", port.to_string())
        .env("SIM_APP_SECRET", SECRET)
        .env("SIM_ACCESS_TOKEN", TOKEN)
        .env("SIM_CALLBACK_URL", callback.unwrap_or(""))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build -p simulator)",
                bin.display()
            )
        })?;
    let sim = Sim {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/_sim/health", sim.url))
            .await
            .is_ok()
        {
            return Ok(sim);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the simulator did not start".into())
}

async fn user(http: &reqwest::Client, sim: &str, wa_id: &str) -> Result<String, Error> {
    let u: Value = http
        .post(format!("{sim}/_sim/users"))
        .json(&json!({"wa_id": wa_id}))
        .send()
        .await?
        .json()
        .await?;
    Ok(u["user_id"].as_str().ok_or("no user id")?.to_owned())
}

async fn sends_file(
    http: &reqwest::Client,
    sim: &str,
    user: &str,
    kind: &str,
    mime: &str,
    size: usize,
) -> Result<String, Error> {
    let r: Value = http
        .post(format!("{sim}/_sim/users/{user}/messages"))
        .json(
            &json!({"phone_number_id": PHONE, "message": {"type": kind, kind: {}},
                      "media": {"mime_type": mime, "size_bytes": size}}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(r["id"].as_str().ok_or("no wamid")?.to_owned())
}

struct Aws {
    aws: aws_config::SdkConfig,
    tables: std::collections::BTreeMap<&'static str, String>,
    media_queue: String,
    inbound_queue: String,
    bucket: String,
}

async fn aws(tag: &str) -> Result<Aws, Error> {
    let aws = aws_sdk_config().await;
    let suffix = format!("{tag}-{}", std::process::id());
    let tables = stack::tables(
        &aws_sdk_dynamodb::Client::new(&aws),
        &format!("mb-{suffix}"),
    )
    .await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let media_queue = stack::queue(&sqs, &format!("mb-media-{suffix}"), &[]).await?;
    let inbound_queue = stack::queue(&sqs, &format!("mb-inbound-{suffix}"), &[]).await?;
    let bucket = format!("mb-media-{suffix}");
    s3_client(&aws, true)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    Ok(Aws {
        aws,
        tables,
        media_queue,
        inbound_queue,
        bucket,
    })
}

type BenchFetcher = Fetcher<GraphHttpClient, S3Objects, DynamoDedupeStore, SqsQueue, StaticSecrets>;

fn fetcher(a: &Aws, sim: &str) -> Result<BenchFetcher, Error> {
    Ok(Fetcher {
        api: GraphHttpClient::new(&GraphHttpConfig {
            base_url: sim.into(),
            ..GraphHttpConfig::default()
        })?,
        objects: S3Objects::new(s3_client(&a.aws, true)),
        dedupe: DynamoDedupeStore::new(aws_sdk_dynamodb::Client::new(&a.aws), &a.tables["dedupe"]),
        inbound: SqsQueue::new(aws_sdk_sqs::Client::new(&a.aws), &a.inbound_queue),
        secrets: StaticSecrets::new(SECRET, "verify-token-0123456789", TOKEN),
        config: FetchConfig {
            concurrency: 1,
            ..FetchConfig::new(&a.bucket)
        },
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn rss(mb: usize) -> Result<(), Error> {
    let a = aws("rss").await?;
    let sim = simulator(None).await?;
    let http = reqwest::Client::new();
    let f = fetcher(&a, &sim.url)?;
    let uid = user(&http, &sim.url, "447700900081").await?;
    let size = mb * 1024 * 1024;
    let wamid = sends_file(&http, &sim.url, &uid, "document", "application/pdf", size).await?;
    let media: Vec<Value> = http
        .get(format!("{}/_sim/media", sim.url))
        .send()
        .await?
        .json()
        .await?;
    let m = media.last().ok_or("no media")?;
    // The event ingest would have put on the media queue for this message.
    let event = json!({"version": 1, "waba_id": WABA, "phone_number_id": PHONE,
        "display_phone_number": "15550783881", "user": {"key": uid},
        "message": {"id": wamid, "from_user_id": uid, "timestamp": (now_ms() / 1000).to_string(),
                    "type": "document", "document": {"id": m["id"], "mime_type": "application/pdf",
                    "sha256": m["sha256"], "filename": "big.pdf"}},
        "window_closes_at": null});
    let mut record = SqsMessage::default();
    record.message_id = Some("rss-1".into());
    record.body = Some(event.to_string());
    // Warm up the clients (TLS-free here, but the SDK's first calls allocate its caches).
    let _ = a.tables.len();
    let before = peak_rss_kib();
    let started = Instant::now();
    let failed = f
        .handle(&[record], now_ms())
        .await
        .batch_item_failures
        .len();
    let took = started.elapsed();
    let after = peak_rss_kib();
    let events: Vec<Value> = {
        let got = aws_sdk_sqs::Client::new(&a.aws)
            .receive_message()
            .queue_url(&a.inbound_queue)
            .wait_time_seconds(2)
            .send()
            .await?;
        got.messages()
            .iter()
            .filter_map(|m| serde_json::from_str(m.body().unwrap_or_default()).ok())
            .collect()
    };
    let kept = events.first().map(|e| e["media"]["size_bytes"].clone());
    println!(
        "rss: {mb} MB document: failed records {failed}, kept size {kept:?}; peak RSS {:.1} MiB before the fetch, {:.1} MiB after ({:.1} MiB for the transfer); {:.1} s, {:.0} MB/s",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0,
        took.as_secs_f64(),
        mb as f64 / took.as_secs_f64()
    );
    if failed != 0 || kept != Some(json!(size)) {
        return Err("the document was not kept".into());
    }
    Ok(())
}

type BenchWebhook = Webhook<AwsIngestPorts, StaticSecrets, MemoryQueue>;

async fn latency(n: usize) -> Result<(), Error> {
    let a = aws("lat").await?;
    let resources = IngestResources {
        sessions_table: a.tables["sessions"].clone(),
        contacts_table: a.tables["contacts"].clone(),
        messages_table: a.tables["messages"].clone(),
        templates_table: a.tables["templates"].clone(),
        phone_state_table: a.tables["phones"].clone(),
        dedupe_table: a.tables["dedupe"].clone(),
        inbound_queue_url: a.inbound_queue.clone(),
        media_queue_url: a.media_queue.clone(),
        meta_events_topic_arn: aws_sdk_sns::Client::new(&a.aws)
            .create_topic()
            .name(format!("mb-events-{}", std::process::id()))
            .send()
            .await?
            .topic_arn
            .unwrap_or_default(),
        quarantine_bucket: a.bucket.clone(),
        s3_path_style: true,
    };
    let hook: Arc<BenchWebhook> = Arc::new(Webhook {
        ports: AwsIngestPorts::new(&a.aws, &resources),
        secrets: StaticSecrets::new(SECRET, "verify-token-0123456789", TOKEN),
        events: MemoryQueue::default(),
        settings: Settings::default(),
    });
    async fn serve(
        State(h): State<Arc<BenchWebhook>>,
        method: Method,
        Query(q): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let sig = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        let out = h
            .handle(
                webhook::Request {
                    method: method.as_str(),
                    query: &q,
                    signature: sig,
                    body: &body,
                },
                now_ms(),
            )
            .await;
        (StatusCode::from_u16(out.status).unwrap(), out.body)
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/webhook", axum::routing::any(serve))
        .with_state(hook);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sim = simulator(Some(&format!("http://{addr}/webhook"))).await?;
    let http = reqwest::Client::new();
    let f = fetcher(&a, &sim.url)?;
    let sqs = aws_sdk_sqs::Client::new(&a.aws);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let uid = user(&http, &sim.url, &format!("4477009{:05}", 10_000 + i)).await?;
        let started = Instant::now();
        let wamid = sends_file(&http, &sim.url, &uid, "image", "image/jpeg", 100 * 1024).await?;
        // What the event source mapping does: receive from the media queue, invoke.
        let records = loop {
            let got = sqs
                .receive_message()
                .queue_url(&a.media_queue)
                .wait_time_seconds(5)
                .send()
                .await?;
            if !got.messages().is_empty() {
                break got
                    .messages()
                    .iter()
                    .map(|m| {
                        let mut r = SqsMessage::default();
                        r.message_id = m.message_id.clone();
                        r.body = m.body.clone();
                        r
                    })
                    .collect::<Vec<_>>();
            }
        };
        f.handle(&records, now_ms()).await;
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&a.inbound_queue)
                .wait_time_seconds(5)
                .send()
                .await?;
            let found = got
                .messages()
                .iter()
                .any(|m| m.body().is_some_and(|b| b.contains(&wamid)));
            if found {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "latency: {n} images of 100 KB, user's send to the bots' event: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "rss".into());
    let n: Option<usize> = args.next().and_then(|a| a.parse().ok());
    match mode.as_str() {
        "rss" => rss(n.unwrap_or(100)).await,
        "latency" => latency(n.unwrap_or(50)).await,
        other => Err(format!("unknown mode {other}: rss [MB] | latency [n]").into()),
    }
}
