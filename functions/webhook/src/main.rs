//! Lambda entry point of the `webhook` function: wiring only.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use webhook::{Config, Incoming, Webhook};
use whatsapp_aws::SystemClock;
use whatsapp_aws::{
    AwsIngestPorts, CachedSecrets, SecretsManagerFetcher, SqsQueue, aws_sdk_config,
};
use whatsapp_core::config::ProcessEnv;
use whatsapp_core::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&ProcessEnv).expect("webhook configuration");
    let aws = aws_sdk_config().await;
    let handler = Webhook {
        ports: AwsIngestPorts::new(&aws, &config.resources),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                &config.secret.secret_id,
            ),
            config.secret.cache_ttl,
        ),
        events: SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &config.events_queue_url),
        settings: config.settings,
    };
    let handler = &handler;
    run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            let now_ms = SystemClock.now_ms();
            let out = match Incoming::from_event(&event.payload) {
                Some(req) => {
                    handler
                        .handle(
                            webhook::Request {
                                method: &req.method,
                                query: &req.query,
                                signature: req.signature.as_deref(),
                                body: &req.body,
                            },
                            now_ms,
                        )
                        .await
                }
                None => webhook::Response::text(400, "body is not valid base64"),
            };
            let mut response = LambdaFunctionUrlResponse::default();
            response.status_code = i64::from(out.status);
            response
                .headers
                .insert("content-type", out.content_type.parse()?);
            response.body = Some(out.body);
            Ok::<_, Error>(response)
        },
    ))
    .await
}
