//! Lambda entry point of the `quality-poller` function (EventBridge Scheduler): wiring only.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use quality_poller::{PollReport, Poller, PollerConfig};
use whatsapp_aws::SystemClock;
use whatsapp_aws::{
    CachedSecrets, DynamoSendControl, DynamoTemplateStore, GraphHttpClient, SecretsManagerFetcher,
    SnsAlerts, aws_sdk_config, graph_from_env,
};
use whatsapp_core::config::{Env, ProcessEnv, SecretConfig, parse_numbers};
use whatsapp_core::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = ProcessEnv;
    let secret = SecretConfig::from_env(&env).expect("secret configuration");
    let config = PollerConfig {
        numbers: parse_numbers(&env.required("PHONE_NUMBERS").expect("PHONE_NUMBERS"))
            .expect("PHONE_NUMBERS")
            .into_iter()
            .collect(),
        pause_on: env
            .get("PAUSE_MARKETING_ON")
            .unwrap_or_else(|| "RED,FLAGGED".into())
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect(),
        sync_templates: env
            .parsed_or("SYNC_TEMPLATES", true)
            .expect("SYNC_TEMPLATES"),
    };
    let aws = aws_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let poller = Poller {
        graph: GraphHttpClient::new(&graph_from_env(&env).expect("Graph API configuration"))
            .expect("Graph API client"),
        control: DynamoSendControl::new(
            ddb.clone(),
            env.required("SEND_CONTROL_TABLE")
                .expect("SEND_CONTROL_TABLE"),
        ),
        templates: DynamoTemplateStore::new(
            ddb,
            env.required("TEMPLATES_TABLE").expect("TEMPLATES_TABLE"),
        ),
        alerts: SnsAlerts::new(
            aws_sdk_sns::Client::new(&aws),
            env.required("ALERTS_TOPIC_ARN").expect("ALERTS_TOPIC_ARN"),
        ),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                &secret.secret_id,
            ),
            secret.cache_ttl,
        ),
        config,
    };
    let poller = &poller;
    run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            let now_ms = SystemClock.now_ms();
            let report: PollReport = poller.run(now_ms).await;
            whatsapp_core::metrics::emit(&report.metrics(now_ms));
            tracing::info!(numbers = report.numbers.len(), "poll finished");
            Ok::<_, Error>(report)
        },
    ))
    .await
}
