//! Lambda entry point of the `media-fetcher` function: wiring only.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use media_fetcher::{FetchConfig, Fetcher};
use whatsapp_aws::{
    CachedSecrets, DynamoDedupeStore, GraphHttpClient, S3Objects, SecretsManagerFetcher, SqsQueue,
    SystemClock, aws_sdk_config, graph_from_env, s3_client,
};
use whatsapp_core::config::{Env, ProcessEnv, SecretConfig};
use whatsapp_core::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = ProcessEnv;
    let config = FetchConfig::from_env(&env).expect("media-fetcher configuration");
    let secret = SecretConfig::from_env(&env).expect("secret configuration");
    let graph = GraphHttpClient::new(&graph_from_env(&env).expect("Graph API configuration"))
        .expect("Graph API client");
    let path_style = env
        .parsed_or("S3_FORCE_PATH_STYLE", false)
        .expect("S3_FORCE_PATH_STYLE");
    let aws = aws_sdk_config().await;
    let fetcher = Fetcher {
        api: graph,
        objects: S3Objects::new(s3_client(&aws, path_style)),
        dedupe: DynamoDedupeStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            env.required("DEDUPE_TABLE").expect("DEDUPE_TABLE"),
        ),
        inbound: SqsQueue::new(
            aws_sdk_sqs::Client::new(&aws),
            env.required("INBOUND_QUEUE_URL")
                .expect("INBOUND_QUEUE_URL"),
        ),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(aws_sdk_secretsmanager::Client::new(&aws), secret.secret_id),
            secret.cache_ttl,
        ),
        config,
    };
    let fetcher = &fetcher;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now_ms = SystemClock.now_ms();
        Ok::<SqsBatchResponse, Error>(fetcher.handle(&event.payload.records, now_ms).await)
    }))
    .await
}
