//! Measures, on the local emulator, what the webhook's choice rests on: answering a status
//! webhook after processing it inline (verify, parse, one conditional DynamoDB write) versus
//! after only enqueueing the body on SQS. Needs `AWS_ENDPOINT_URL` (run under scripts/test's
//! ministack, or `scripts/local-up --keep`).
//!
//! `cargo run --release -p integration-tests --example ingest-latency -- [iterations]`

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use serde_json::json;
use webhook::{Settings, Webhook};
use whatsapp_aws::{AwsIngestPorts, IngestResources, SqsQueue, aws_sdk_config};
use whatsapp_core::ports::MessageQueue;
use whatsapp_core::signature::sign;
use whatsapp_fakes::{MemoryQueue, StaticSecrets};

type Error = Box<dyn std::error::Error>;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let aws = aws_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let suffix = std::process::id();
    let mut tables = Vec::new();
    for t in [
        "sessions",
        "contacts",
        "messages",
        "templates",
        "phones",
        "dedupe",
    ] {
        let name = format!("lat-{t}-{suffix}");
        ddb.create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .send()
            .await?;
        tables.push(name);
    }
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("lat-q-{suffix}"))
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let resources = IngestResources {
        sessions_table: tables[0].clone(),
        contacts_table: tables[1].clone(),
        messages_table: tables[2].clone(),
        templates_table: tables[3].clone(),
        phone_state_table: tables[4].clone(),
        dedupe_table: tables[5].clone(),
        inbound_queue_url: queue_url.clone(),
        media_queue_url: queue_url.clone(),
        // Statuses only: nothing is published or quarantined, but the ports are real.
        meta_events_topic_arn: aws_sdk_sns::Client::new(&aws)
            .create_topic()
            .name(format!("lat-events-{suffix}"))
            .send()
            .await?
            .topic_arn
            .unwrap_or_default(),
        quarantine_bucket: format!("lat-quarantine-{suffix}"),
        s3_path_style: true,
    };
    let hook = Webhook {
        ports: AwsIngestPorts::new(&aws, &resources),
        secrets: StaticSecrets::new("ingest-latency-secret", "ingest-latency-verify", "t"),
        events: MemoryQueue::default(),
        settings: Settings::default(),
    };
    let queue = SqsQueue::new(sqs, &queue_url);
    let body = |i: usize| {
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "time": 1, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "1"},
            "statuses": [{"id": format!("wamid.lat{i}"), "status": "delivered", "timestamp": "1", "recipient_id": "16505551234",
                "pricing": {"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"}}]}}]}]}))
        .unwrap_or_default()
    };
    let (mut inline, mut queued) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let b = body(i);
        let sig = sign(b"ingest-latency-secret", &b);
        let t = Instant::now();
        let (resp, _) = hook.receive(Some(&sig), &b, 1_000).await;
        inline.push(t.elapsed());
        assert_eq!(resp.status, 200);
        let t = Instant::now();
        whatsapp_core::signature::verify(b"ingest-latency-secret", &b, Some(&sig))?;
        queue.send(std::str::from_utf8(&b)?, None).await?;
        queued.push(t.elapsed());
    }
    println!(
        "status webhook, {n} runs on {} cores: inline (verify + parse + 1 conditional write) p50 {:?} p99 {:?}; enqueue only (verify + SQS send) p50 {:?} p99 {:?}",
        std::thread::available_parallelism().map_or(0, |c| c.get()),
        pct(&mut inline, 0.5),
        pct(&mut inline, 0.99),
        pct(&mut queued, 0.5),
        pct(&mut queued, 0.99),
    );
    Ok(())
}
