//! Implementations of the ports on AWS (DynamoDB, SQS, Secrets Manager, S3) and on the Graph API
//! over HTTPS (reqwest with rustls).
//!
//! The AWS clients are built from [`aws_sdk_config`], which honours the standard environment
//! (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL` for a local emulator).

mod dynamodb;
mod graph_http;
mod s3;
mod s3_media;
mod secrets;
mod sns;
mod sqs;
pub mod sqs_batch;

pub use dynamodb::{
    CALLBACK_INDEX, DynamoContactStore, DynamoDedupeStore, DynamoIdentityStore, DynamoMediaIds,
    DynamoMessageStore, DynamoPhoneStateStore, DynamoSendControl, DynamoSessionStore,
    DynamoTemplateStore, POINTER_TTL_SECONDS, SESSION_TTL_SLACK_SECONDS, budget_shard,
    budget_shard_item, volume_tier_pk,
};
pub use graph_http::{GraphHttpClient, GraphHttpConfig, HttpDownload, MEDIA_TRANSFER_TIMEOUT};
pub use s3::S3Quarantine;
pub use s3_media::{PART_BYTES, S3Objects, S3Reader};
pub use secrets::{CachedSecrets, SecretFetcher, SecretsManagerFetcher};
pub use sns::{SnsAlerts, SnsEvents};
pub use sqs::SqsQueue;

use std::time::Duration;

use whatsapp_core::config::{ConfigError, Env};
use whatsapp_core::graph::DEFAULT_GRAPH_VERSION;
use whatsapp_core::ports::Clock;

/// Settings of the Graph API client: `GRAPH_API_BASE_URL` (default Meta's),
/// `GRAPH_API_VERSION` (default v25.0), `GRAPH_API_TIMEOUT_MS` (default 10000).
pub fn graph_from_env(env: &impl Env) -> Result<GraphHttpConfig, ConfigError> {
    let version = env.parsed_or("GRAPH_API_VERSION", DEFAULT_GRAPH_VERSION.to_owned())?;
    if !version.starts_with('v') || version[1..].parse::<f32>().is_err() {
        return Err(ConfigError::Invalid {
            name: "GRAPH_API_VERSION",
            reason: format!("{version:?} is not of the form v25.0"),
        });
    }
    let defaults = GraphHttpConfig::default();
    Ok(GraphHttpConfig {
        base_url: env.parsed_or("GRAPH_API_BASE_URL", defaults.base_url)?,
        version,
        timeout: Duration::from_millis(env.parsed_or("GRAPH_API_TIMEOUT_MS", 10_000u64)?),
        connect_timeout: defaults.connect_timeout,
    })
}

/// The system clock, the one production [`Clock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Loads the AWS SDK configuration from the environment, once per cold start.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Every ingest port on AWS: the DynamoDB tables and the bots' inbound queue.
#[derive(Debug, Clone)]
pub struct AwsIngestPorts {
    pub sessions: DynamoSessionStore,
    pub contacts: DynamoContactStore,
    pub messages: DynamoMessageStore,
    pub templates: DynamoTemplateStore,
    pub phones: DynamoPhoneStateStore,
    pub dedupe: DynamoDedupeStore,
    pub inbound: SqsQueue,
    pub media_fetch: SqsQueue,
    pub meta_events: SnsEvents,
    pub quarantine: S3Quarantine,
    pub identities: DynamoIdentityStore,
}

/// Table names and queue URL of the ingest ports (from the functions' configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResources {
    pub sessions_table: String,
    pub contacts_table: String,
    pub messages_table: String,
    pub templates_table: String,
    pub phone_state_table: String,
    pub dedupe_table: String,
    pub inbound_queue_url: String,
    /// The queue of inbound messages whose file the media fetcher keeps before bots get them.
    pub media_queue_url: String,
    /// The topic the Meta events we do not own are published on.
    pub meta_events_topic_arn: String,
    /// Where unparsable bodies, malformed values and values too large to publish are kept.
    pub quarantine_bucket: String,
    /// Path-style S3 URLs, for a local emulator.
    pub s3_path_style: bool,
}

impl IngestResources {
    /// From `SESSIONS_TABLE`, `CONTACTS_TABLE`, `MESSAGES_TABLE`, `TEMPLATES_TABLE`,
    /// `PHONE_STATE_TABLE`, `DEDUPE_TABLE`, `INBOUND_QUEUE_URL`, `MEDIA_QUEUE_URL`, `META_EVENTS_TOPIC_ARN`,
    /// `QUARANTINE_BUCKET` and `S3_FORCE_PATH_STYLE` (default false).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(IngestResources {
            sessions_table: env.required("SESSIONS_TABLE")?,
            contacts_table: env.required("CONTACTS_TABLE")?,
            messages_table: env.required("MESSAGES_TABLE")?,
            templates_table: env.required("TEMPLATES_TABLE")?,
            phone_state_table: env.required("PHONE_STATE_TABLE")?,
            dedupe_table: env.required("DEDUPE_TABLE")?,
            inbound_queue_url: env.required("INBOUND_QUEUE_URL")?,
            media_queue_url: env.required("MEDIA_QUEUE_URL")?,
            meta_events_topic_arn: env.required("META_EVENTS_TOPIC_ARN")?,
            quarantine_bucket: env.required("QUARANTINE_BUCKET")?,
            s3_path_style: env.parsed_or("S3_FORCE_PATH_STYLE", false)?,
        })
    }
}

impl AwsIngestPorts {
    pub fn new(aws: &aws_config::SdkConfig, r: &IngestResources) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        AwsIngestPorts {
            sessions: DynamoSessionStore::new(ddb.clone(), &r.sessions_table),
            contacts: DynamoContactStore::new(ddb.clone(), &r.contacts_table),
            identities: DynamoIdentityStore::new(ddb.clone(), &r.sessions_table, &r.contacts_table),
            messages: DynamoMessageStore::new(ddb.clone(), &r.messages_table),
            templates: DynamoTemplateStore::new(ddb.clone(), &r.templates_table),
            phones: DynamoPhoneStateStore::new(ddb.clone(), &r.phone_state_table),
            dedupe: DynamoDedupeStore::new(ddb, &r.dedupe_table),
            inbound: SqsQueue::new(aws_sdk_sqs::Client::new(aws), &r.inbound_queue_url),
            media_fetch: SqsQueue::new(aws_sdk_sqs::Client::new(aws), &r.media_queue_url),
            meta_events: SnsEvents::new(aws_sdk_sns::Client::new(aws), &r.meta_events_topic_arn),
            quarantine: S3Quarantine::new(
                s3_client(aws, r.s3_path_style),
                &r.quarantine_bucket,
                "webhooks/",
            ),
        }
    }
}

impl whatsapp_core::ingest::IngestPorts for AwsIngestPorts {
    type Sessions = DynamoSessionStore;
    type Contacts = DynamoContactStore;
    type Messages = DynamoMessageStore;
    type Templates = DynamoTemplateStore;
    type Phones = DynamoPhoneStateStore;
    type Dedupe = DynamoDedupeStore;
    type Inbound = SqsQueue;
    type MediaFetch = SqsQueue;
    type MetaEvents = SnsEvents;
    type Quarantine = S3Quarantine;
    type Identities = DynamoIdentityStore;

    fn identities(&self) -> &DynamoIdentityStore {
        &self.identities
    }

    fn sessions(&self) -> &DynamoSessionStore {
        &self.sessions
    }
    fn contacts(&self) -> &DynamoContactStore {
        &self.contacts
    }
    fn messages(&self) -> &DynamoMessageStore {
        &self.messages
    }
    fn templates(&self) -> &DynamoTemplateStore {
        &self.templates
    }
    fn phones(&self) -> &DynamoPhoneStateStore {
        &self.phones
    }
    fn dedupe(&self) -> &DynamoDedupeStore {
        &self.dedupe
    }
    fn inbound(&self) -> &SqsQueue {
        &self.inbound
    }
    fn media_fetch(&self) -> &SqsQueue {
        &self.media_fetch
    }
    fn meta_events(&self) -> &SnsEvents {
        &self.meta_events
    }
    fn quarantine(&self) -> &S3Quarantine {
        &self.quarantine
    }
}

/// An S3 client; `force_path_style` for local emulators (`bucket.127.0.0.1` does not resolve).
pub fn s3_client(aws: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_settings_name_the_bad_variable_and_default_the_version() {
        let g = graph_from_env(&[("GRAPH_API_VERSION", "25")]);
        assert!(matches!(
            g,
            Err(ConfigError::Invalid {
                name: "GRAPH_API_VERSION",
                ..
            })
        ));
        assert_eq!(graph_from_env(&[("A", "b")]).unwrap().version, "v25.0");
    }
}
