//! One SQS batch of a Lambda event source, record by record, answering with a partial batch
//! response: exactly the records that failed come back.

use std::fmt::Debug;
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use futures_util::future::join_all;
use tracing::{Instrument, info, info_span, warn};

/// Runs `f` over `records`, `concurrency` at a time, each in a span naming its SQS message id;
/// the records whose `f` failed are the batch item failures.
pub async fn each_record<'a, F, Fut, E>(
    records: &'a [SqsMessage],
    concurrency: usize,
    f: F,
) -> SqsBatchResponse
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Debug,
{
    let mut failures = Vec::new();
    for chunk in records.chunks(concurrency.max(1)) {
        let results = join_all(chunk.iter().map(|r| {
            let span = info_span!("record", message_id = r.message_id.as_deref().unwrap_or(""));
            f(r).instrument(span)
        }))
        .await;
        for (record, result) in chunk.iter().zip(results) {
            if let Err(kind) = result {
                warn!(
                    message_id = record.message_id.as_deref().unwrap_or(""),
                    ?kind,
                    "record failed"
                );
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                failures.push(failure);
            }
        }
    }
    info!(
        records = records.len(),
        failed = failures.len(),
        "batch processed"
    );
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}
