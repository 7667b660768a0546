//! Lambda entry point of the `sender` function: wiring only.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sender::Sender;
use sender::aws::{AwsSenderPorts, SenderResources};
use whatsapp_aws::SystemClock;
use whatsapp_aws::{
    CachedSecrets, GraphHttpClient, SecretsManagerFetcher, aws_sdk_config, graph_from_env,
};
use whatsapp_core::config::{ProcessEnv, SecretConfig};
use whatsapp_core::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = ProcessEnv;
    let resources = SenderResources::from_env(&env).expect("sender resources");
    let config = sender::SenderConfig::from_env(&env).expect("sender configuration");
    let secret = SecretConfig::from_env(&env).expect("secret configuration");
    let graph = GraphHttpClient::new(&graph_from_env(&env).expect("Graph API configuration"))
        .expect("Graph API client");
    let aws = aws_sdk_config().await;
    let secrets = CachedSecrets::new(
        SecretsManagerFetcher::new(aws_sdk_secretsmanager::Client::new(&aws), secret.secret_id),
        secret.cache_ttl,
    );
    let sender = Sender::new(
        AwsSenderPorts::new(&aws, &resources, graph.clone(), graph, secrets),
        config,
    );
    let sender = &sender;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now_ms = SystemClock.now_ms();
        let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(now_ms + 30_000);
        Ok::<SqsBatchResponse, Error>(
            sender
                .handle(&event.payload.records, now_ms, deadline_ms)
                .await,
        )
    }))
    .await
}
