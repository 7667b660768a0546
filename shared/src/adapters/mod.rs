//! Implementations of the ports on AWS (DynamoDB, SQS, Secrets Manager) and on the Graph API
//! over HTTPS (reqwest with rustls).
//!
//! The AWS clients are built from [`aws_sdk_config`], which honours the standard environment
//! (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL` for a local emulator).

mod dynamodb;
mod graph_http;
mod secrets;
mod sqs;

pub use dynamodb::{DynamoDedupeStore, DynamoSessionStore, SESSION_TTL_SLACK_SECONDS};
pub use graph_http::{GraphHttpClient, GraphHttpConfig};
pub use secrets::{CachedSecrets, SecretFetcher, SecretsManagerFetcher};
pub use sqs::SqsQueue;

/// Loads the AWS SDK configuration from the environment, once per cold start.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
