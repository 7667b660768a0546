//! SQS adapter for [`MessageQueue`].

use aws_sdk_sqs::Client;

use crate::ports::{MessageQueue, QueueError};

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
}
