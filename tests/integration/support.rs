//! Helpers: AWS clients on the local emulator and uniquely named resources, so tests run in
//! parallel without sharing state.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

/// The SDK configuration, pointed at the emulator. Fails loudly when it is not configured:
/// these tests never run against real AWS.
pub async fn aws() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local ministack (got {endpoint:?}); run the tests with scripts/test"
    );
    whatsapp_aws::aws_sdk_config().await
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Creates an on-demand table keyed by string `pk`, with TTL on `expires_at`.
pub async fn table(client: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    let name = unique(prefix);
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
    name
}

/// Creates an on-demand table keyed by string `pk` and `sk` (the usage and rate-card tables).
/// The item under string partition key `pk`, read consistently, as the table holds it.
pub async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

pub async fn sorted_table(client: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    let name = unique(prefix);
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create table");
    name
}

/// Creates the messages table: as [`table`], plus the keys-only index on `callback_data` the
/// sender reconciles through and the usage index finance counts from (as in the template).
pub async fn messages_table(client: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
    let name = unique("messages");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let hash = |n: &str| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(KeyType::Hash)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("callback_unpriced"))
        .attribute_definitions(attr("usage_pk"))
        .attribute_definitions(attr(whatsapp_core::usage::USAGE_SORT_KEY))
        .key_schema(hash("pk"))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(whatsapp_aws::CALLBACK_INDEX)
                .key_schema(hash("callback_unpriced"))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(whatsapp_core::usage::USAGE_INDEX)
                .key_schema(hash("usage_pk"))
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(whatsapp_core::usage::USAGE_SORT_KEY)
                        .key_type(KeyType::Range)
                        .build()
                        .unwrap(),
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            whatsapp_core::usage::USAGE_INDEX_ATTRIBUTES
                                .iter()
                                .map(|a| (*a).to_owned())
                                .collect(),
                        ))
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create messages table");
    name
}

/// Creates a standard queue and returns its URL.
pub async fn queue(client: &aws_sdk_sqs::Client, prefix: &str) -> String {
    client
        .create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// The time in milliseconds, as a Lambda entry point reads it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// Every table, queue and bucket the ingest path writes to, freshly named.
pub struct IngestStack {
    pub aws: aws_config::SdkConfig,
    pub resources: whatsapp_aws::IngestResources,
    pub events_queue_url: String,
    pub bucket: String,
    /// A queue subscribed to the Meta events topic with raw delivery: what a consumer sees.
    pub meta_events_sink_url: String,
    pub secret_id: String,
}

pub const APP_SECRET: &str = "integration-app-secret";
pub const VERIFY_TOKEN: &str = "integration-verify-token";

pub async fn ingest_stack() -> IngestStack {
    let aws = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let bucket = unique("quarantine").to_lowercase();
    whatsapp_aws::s3_client(&aws, true)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let topic_arn = topic(&aws, "meta-events").await;
    let meta_events_sink_url = queue(&sqs, "meta-events-sink").await;
    subscribe(&aws, &topic_arn, &meta_events_sink_url, None).await;
    let resources = whatsapp_aws::IngestResources {
        sessions_table: table(&ddb, "sessions").await,
        contacts_table: table(&ddb, "contacts").await,
        messages_table: messages_table(&ddb).await,
        templates_table: table(&ddb, "templates").await,
        phone_state_table: table(&ddb, "phones").await,
        dedupe_table: table(&ddb, "dedupe").await,
        inbound_queue_url: queue(&sqs, "inbound").await,
        media_queue_url: queue(&sqs, "media").await,
        meta_events_topic_arn: topic_arn,
        quarantine_bucket: bucket.clone(),
        s3_path_style: true,
    };
    let secret_id = unique("wa-secret");
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(&secret_id)
        .secret_string(format!(r#"{{"app_secret":"{APP_SECRET}","verify_token":"{VERIFY_TOKEN}","access_token":"tok"}}"#))
        .send()
        .await
        .expect("secret");
    IngestStack {
        events_queue_url: queue(&sqs, "events").await,
        aws,
        resources,
        bucket,
        meta_events_sink_url,
        secret_id,
    }
}

/// A fresh SNS topic; its ARN.
pub async fn topic(aws: &aws_config::SdkConfig, prefix: &str) -> String {
    aws_sdk_sns::Client::new(aws)
        .create_topic()
        .name(unique(prefix))
        .send()
        .await
        .expect("topic")
        .topic_arn
        .unwrap_or_default()
}

/// Subscribes `queue_url` to `topic_arn` with raw delivery (the body as published, the
/// attributes as SQS message attributes), optionally with a filter policy.
pub async fn subscribe(
    aws: &aws_config::SdkConfig,
    topic_arn: &str,
    queue_url: &str,
    filter_policy: Option<&str>,
) {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    let mut request = aws_sdk_sns::Client::new(aws)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true");
    if let Some(policy) = filter_policy {
        request = request.attributes("FilterPolicy", policy);
    }
    request.send().await.expect("subscribe");
}

/// Every message on a queue (deleting them), waiting briefly for stragglers.
pub async fn drain(aws: &aws_config::SdkConfig, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
        }
        for m in msgs {
            if let Some(h) = &m.receipt_handle {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await
                    .expect("delete");
            }
            out.push(m);
        }
    }
    out
}
