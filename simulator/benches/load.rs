//! Load driver: how many `/messages` requests per second the simulator answers on loopback.
//!
//! `cargo bench -p simulator --bench load -- [requests] [concurrency] [--webhooks]`
//! (defaults: 20000 requests, 64 concurrent). With `--webhooks` every accepted message also
//! produces its three signed status webhooks, POSTed to a local receiver that answers 200.
//! Driver and simulator share the machine: the figure is a lower bound of the simulator alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use simulator::{SimConfig, Simulator, Tier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, as a short smoke run.
    let bench = args.iter().any(|a| a == "--bench");
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let total = numbers
        .first()
        .copied()
        .unwrap_or(if bench { 20_000 } else { 500 });
    let concurrency = numbers.get(1).copied().unwrap_or(64);
    let webhooks = args.iter().any(|a| a == "--webhooks");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ok = rt.block_on(run(total, concurrency, webhooks));
    assert_eq!(ok, total, "every request should succeed");
}

async fn run(total: usize, concurrency: usize, webhooks: bool) -> usize {
    let callback = if webhooks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
        Some(format!("http://{addr}/hook"))
    } else {
        None
    };
    let cfg = SimConfig {
        callback_url: callback,
        default_mps: u32::MAX,
        pair_rate_gap_ms: 0,
        status_delay_ms: 0,
        webhooks: simulator::WebhookConfig {
            batch_max: 50,
            ..Default::default()
        },
        ..SimConfig::default()
    };
    let running = Simulator::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("start");
    let sim = &running.sim;
    sim.create_waba("W", Tier::Unlimited);
    sim.create_phone_number("P", "W", "15550000000");
    sim.add_token("T", None);
    sim.seed_template("W", json!({"name": "hello", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "Hello there."}]}))
        .expect("template");
    let url = format!("{}/v25.0/P/messages", running.base_url());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next, ok) = (
            http.clone(),
            url.clone(),
            Arc::clone(&next),
            Arc::clone(&ok),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return lat;
                }
                let body = json!({"messaging_product": "whatsapp", "to": format!("4477{:08}", i % 5000), "type": "template",
                    "template": {"name": "hello", "language": {"code": "en_US"}}, "biz_opaque_callback_data": format!("job-{i}")});
                let t = Instant::now();
                let r = http.post(&url).bearer_auth("T").json(&body).timeout(Duration::from_secs(10)).send().await;
                lat.push(t.elapsed());
                if r.is_ok_and(|r| r.status().is_success()) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "simulator load: {total} requests, {concurrency} concurrent, webhooks {}: {:.0} req/s, {} ok, p50 {:?}, p99 {:?} ({} cores)",
        if webhooks { "on" } else { "off" },
        total as f64 / elapsed.as_secs_f64(),
        ok.load(Ordering::Relaxed),
        pct(0.50),
        pct(0.99),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    ok.load(Ordering::Relaxed)
}
