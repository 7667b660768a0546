//! SQS adapter for [`MessageQueue`].

use aws_sdk_sqs::Client;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use whatsapp_core::ports::{DeadLetters, MessageQueue, QueueError, Redelivery};

/// One SQS queue, by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl MessageQueue for SqsQueue {
    async fn send(&self, body: &str, delay_seconds: Option<u32>) -> Result<String, QueueError> {
        let delay = delay_seconds.map(|d| d.min(900) as i32);
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_delay_seconds(delay)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn send_batch(&self, bodies: &[String]) -> Vec<Result<(), QueueError>> {
        let mut out: Vec<Result<(), QueueError>> = Vec::with_capacity(bodies.len());
        for chunk in bodies.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(res) => {
                    let failed: Vec<(usize, String)> = res
                        .failed()
                        .iter()
                        .filter_map(|f| Some((f.id().parse().ok()?, f.code().to_owned())))
                        .collect();
                    for i in 0..chunk.len() {
                        out.push(match failed.iter().find(|(j, _)| *j == i) {
                            Some((_, code)) => Err(QueueError(code.clone().into())),
                            None => Ok(()),
                        });
                    }
                }
                Err(e) => {
                    let e = std::sync::Arc::new(e);
                    for _ in chunk {
                        out.push(Err(QueueError(Box::new(ArcError(e.clone())))));
                    }
                }
            }
        }
        out
    }
}

/// One error shared by every entry of a failed batch call.
#[derive(Debug)]
struct ArcError<E>(std::sync::Arc<E>);

impl<E: std::fmt::Display> std::fmt::Display for ArcError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for ArcError<E> {}

impl DeadLetters for SqsQueue {
    /// Sends the body unchanged with `reason` and `detail` as message attributes, so a redrive
    /// back to the source queue replays the original job.
    async fn dead_letter(&self, body: &str, reason: &str, detail: &str) -> Result<(), QueueError> {
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| QueueError(Box::new(e)))
        };
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("reason", attr(reason)?)
            .message_attributes(
                "detail",
                attr(if detail.is_empty() { "-" } else { detail })?,
            )
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }
}

impl Redelivery for SqsQueue {
    async fn redeliver_in(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }

    async fn requeue(&self, body: &str, delay_seconds: u32) -> Result<(), QueueError> {
        MessageQueue::send(self, body, Some(delay_seconds))
            .await
            .map(|_| ())
    }
}
