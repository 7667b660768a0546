//! Queues: publishing, redelivery of a received message, dead letters.

use std::future::Future;

/// A failure to enqueue.
#[derive(Debug, thiserror::Error)]
#[error("enqueue failed")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A queue we publish to (inbound events, outcomes, retries).
pub trait MessageQueue: Send + Sync {
    /// Enqueues one message, optionally delayed (≤ 900 s), and returns its id.
    fn send(
        &self,
        body: &str,
        delay_seconds: Option<u32>,
    ) -> impl Future<Output = Result<String, QueueError>> + Send;

    /// Enqueues up to ten messages in one call; one result per body, in order.
    fn send_batch(
        &self,
        bodies: &[String],
    ) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send {
        async move {
            let mut out = Vec::with_capacity(bodies.len());
            for b in bodies {
                out.push(self.send(b, None).await.map(|_| ()));
            }
            out
        }
    }
}

/// Puts a received queue message back for later: the sender's deferrals and back-offs.
pub trait Redelivery: Send + Sync {
    /// Makes the message with `receipt_handle` visible again in `seconds` (≤ 12 h from the
    /// receive: SQS refuses more).
    fn redeliver_in(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Puts a fresh copy of `body` on the queue, visible in `delay_seconds` (≤ 900): a new
    /// retention period and a receive count of zero, for a job that would otherwise outlive the
    /// queue's retention or reach its redrive count while it waits.
    fn requeue(
        &self,
        body: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Where jobs that cannot be sent go, with a machine-readable reason, for an operator.
pub trait DeadLetters: Send + Sync {
    /// Keeps `body` unchanged, with `reason` (a code) and `detail` beside it.
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
        detail: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Where the Meta events the middleware does not own are published for others (a topic whose
/// subscribers filter on the attributes).
pub trait EventPublisher: Send + Sync {
    /// Publishes one message with string attributes.
    fn publish(
        &self,
        body: &str,
        attributes: &[(&str, &str)],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
