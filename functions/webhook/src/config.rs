//! The webhook's configuration, from the environment (names match `infra/template.yaml`).

use whatsapp_aws::IngestResources;
use whatsapp_core::config::{ConfigError, Env, SecretConfig};
use whatsapp_core::ingest::IngestConfig;

use crate::Settings;

#[derive(Debug, Clone)]
pub struct Config {
    pub secret: SecretConfig,
    pub resources: IngestResources,
    /// `EVENTS_QUEUE_URL`: where items go when they cannot be processed inline.
    pub events_queue_url: String,
    pub settings: Settings,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        Ok(Config {
            secret: SecretConfig::from_env(env)?,
            resources: IngestResources::from_env(env)?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            settings: Settings {
                max_body_bytes: env.parsed_or("MAX_BODY_BYTES", defaults.max_body_bytes)?,
                concurrency: env.parsed_or("ITEM_CONCURRENCY", defaults.concurrency)?,
                ingest: IngestConfig::from_env(env),
            },
        })
    }
}
