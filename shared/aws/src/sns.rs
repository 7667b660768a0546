//! SNS adapters: [`AlertSink`] (health alerts) and [`EventPublisher`] (the Meta events topic).

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use whatsapp_core::ports::{AlertSink, EventPublisher, QueueError};

/// One SNS topic, by ARN.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsAlerts {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl AlertSink for SnsAlerts {
    async fn publish(&self, subject: &str, event: &serde_json::Value) -> Result<(), QueueError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(event.to_string())
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }
}

/// The Meta events topic: [`EventPublisher`] on SNS, each attribute a `String` message
/// attribute that subscription filter policies can match.
#[derive(Debug, Clone)]
pub struct SnsEvents {
    client: Client,
    topic_arn: String,
}

impl SnsEvents {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsEvents {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl EventPublisher for SnsEvents {
    async fn publish(&self, body: &str, attributes: &[(&str, &str)]) -> Result<(), QueueError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body);
        for (name, value) in attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| QueueError(Box::new(e)))?;
            request = request.message_attributes(*name, attribute);
        }
        request.send().await.map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }
}
