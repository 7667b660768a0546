//! Lambda entry point of the `template-submitter` function (a function URL with IAM auth):
//! wiring only.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use template_submitter::Submitter;
use whatsapp_aws::SystemClock;
use whatsapp_aws::{
    CachedSecrets, DynamoTemplateStore, GraphHttpClient, SecretsManagerFetcher, aws_sdk_config,
    graph_from_env,
};
use whatsapp_core::config::{Env, ProcessEnv, SecretConfig};
use whatsapp_core::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let env = ProcessEnv;
    let secret = SecretConfig::from_env(&env).expect("secret configuration");
    let graph = GraphHttpClient::new(&graph_from_env(&env).expect("Graph API configuration"))
        .expect("Graph API client");
    let wabas = env
        .required("WABA_IDS")
        .expect("WABA_IDS")
        .split(',')
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    let table = env.required("TEMPLATES_TABLE").expect("TEMPLATES_TABLE");
    let aws = aws_sdk_config().await;
    let handler = Submitter {
        api: graph,
        store: DynamoTemplateStore::new(aws_sdk_dynamodb::Client::new(&aws), table),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                &secret.secret_id,
            ),
            secret.cache_ttl,
        ),
        wabas,
    };
    let handler = &handler;
    run(service_fn(move |req: Request| async move {
        let now = SystemClock.now_ms().div_euclid(1000);
        let out = handler
            .handle(
                req.method().as_str(),
                req.uri().path(),
                req.body().as_ref(),
                now,
            )
            .await;
        Ok::<_, Error>(
            Response::builder()
                .status(out.status)
                .header("content-type", "application/json")
                .body(Body::from(out.body.to_string()))?,
        )
    }))
    .await
}
