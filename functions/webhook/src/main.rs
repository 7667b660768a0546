//! Lambda entry point of the `webhook` function: wiring only.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use shared::adapters::{
    AwsIngestPorts, CachedSecrets, S3Quarantine, SecretsManagerFetcher, SqsQueue, aws_sdk_config,
    s3_client,
};
use shared::config::ProcessEnv;
use shared::signature::SIGNATURE_HEADER;
use webhook::{Config, Webhook};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
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
        quarantine: S3Quarantine::new(
            s3_client(&aws, config.s3_path_style),
            &config.quarantine_bucket,
            "webhooks/",
        ),
        settings: config.settings,
    };
    let handler = &handler;
    run(service_fn(move |req: Request| async move {
        let query = webhook::query_map(&req);
        let signature = req
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        let body: &[u8] = req.body().as_ref();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let out = handler
            .handle(
                webhook::Request {
                    method: req.method().as_str(),
                    query: &query,
                    signature,
                    body,
                },
                now_ms,
            )
            .await;
        Ok::<_, Error>(
            Response::builder()
                .status(out.status)
                .header("content-type", out.content_type)
                .body(Body::from(out.body))?,
        )
    }))
    .await
}
