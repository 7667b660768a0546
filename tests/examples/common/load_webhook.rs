//! The webhook's side of a `send-load` run on ministack: the simulator delivers Meta's signed
//! webhooks (the customers' messages of a reply run, every status of every send) to the real
//! webhook handler, on the same counted AWS configuration as the sender, so that the run's
//! requests, capacity units and log documents are a whole message's, not only the sender's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use webhook::{Settings, Webhook};
use whatsapp_aws::{
    AwsIngestPorts, CachedSecrets, IngestResources, SecretsManagerFetcher, SqsQueue,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

type AwsWebhook = Webhook<AwsIngestPorts, CachedSecrets<SecretsManagerFetcher>, SqsQueue>;

/// The app secret the webhook checks signatures with (the run's secret holds it).
pub const APP_SECRET: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";

/// Each webhook invocation's handler time (ms).
pub type Invocations = Arc<Mutex<Vec<f64>>>;

/// Creates the webhook's queues, topic and bucket on ministack (`direct`, not counted), and
/// serves the handler, its AWS calls made through `counted`; returns its URL and the
/// invocations' handler times.
pub async fn start(
    direct: &aws_config::SdkConfig,
    counted: &aws_config::SdkConfig,
    tables: &BTreeMap<&'static str, String>,
    suffix: &str,
    secret_id: &str,
) -> Result<(String, Invocations), Error> {
    let sqs = aws_sdk_sqs::Client::new(direct);
    let bucket = format!("load-quarantine-{suffix}").to_lowercase();
    whatsapp_aws::s3_client(direct, true)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    let topic = aws_sdk_sns::Client::new(direct)
        .create_topic()
        .name(format!("load-meta-events-{suffix}"))
        .send()
        .await?
        .topic_arn
        .unwrap_or_default();
    let queue = |name: &str| {
        let name = format!("load-{name}-{suffix}");
        let sqs = sqs.clone();
        async move { super::stack::queue(&sqs, &name, &[]).await }
    };
    let resources = IngestResources {
        sessions_table: tables["sessions"].clone(),
        contacts_table: tables["contacts"].clone(),
        messages_table: tables["messages"].clone(),
        templates_table: tables["templates"].clone(),
        phone_state_table: tables["phones"].clone(),
        dedupe_table: tables["dedupe"].clone(),
        inbound_queue_url: queue("inbound").await?,
        media_queue_url: queue("media").await?,
        meta_events_topic_arn: topic,
        quarantine_bucket: bucket,
        s3_path_style: true,
    };
    let handler = Arc::new(Webhook {
        ports: AwsIngestPorts::new(counted, &resources),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(aws_sdk_secretsmanager::Client::new(counted), secret_id),
            Duration::from_secs(300),
        ),
        events: SqsQueue::new(aws_sdk_sqs::Client::new(counted), &queue("events").await?),
        settings: Settings::default(),
    });
    let invocations: Invocations = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhook", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(serve)
        .with_state((handler, Arc::clone(&invocations)));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, invocations))
}

/// Plays the function URL: one invocation per request, timed as Lambda bills it.
async fn serve(
    State((h, invocations)): State<(Arc<AwsWebhook>, Invocations)>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let started = Instant::now();
    let out = h
        .handle(
            webhook::Request {
                method: method.as_str(),
                query: &query,
                signature,
                body: &body,
            },
            now_ms,
        )
        .await;
    invocations
        .lock()
        .unwrap()
        .push(started.elapsed().as_secs_f64() * 1000.0);
    (
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        out.body,
    )
}

/// Waits until the simulator has delivered `expected` webhooks with a 2xx, or nothing more was
/// delivered for 10 s; returns how many were.
pub async fn drained(sim: &simulator::Simulator, expected: usize) -> usize {
    let delivered = || {
        sim.deliveries()
            .iter()
            .filter(|d| d.status.is_some_and(|s| (200..300).contains(&s)))
            .count()
    };
    let (mut last, mut since) = (delivered(), Instant::now());
    while last < expected && since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = delivered();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}
