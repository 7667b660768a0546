//! Lambda entry point of the `event-processor` function: wiring only.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use event_processor::Processor;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use whatsapp_aws::SystemClock;
use whatsapp_aws::{AwsIngestPorts, IngestResources, aws_sdk_config};
use whatsapp_core::config::{Env, ProcessEnv};
use whatsapp_core::ingest::IngestConfig;
use whatsapp_core::ports::Clock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = ProcessEnv;
    let resources = IngestResources::from_env(&env).expect("event-processor configuration");
    let ingest = IngestConfig::from_env(&env);
    let concurrency = env
        .parsed_or("RECORD_CONCURRENCY", 10usize)
        .expect("RECORD_CONCURRENCY");
    let aws = aws_sdk_config().await;
    let processor = Processor {
        ports: AwsIngestPorts::new(&aws, &resources),
        ingest,
        concurrency,
    };
    let processor = &processor;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now_ms = SystemClock.now_ms();
        Ok::<SqsBatchResponse, Error>(processor.handle(&event.payload.records, now_ms).await)
    }))
    .await
}
