//! SQS adapter.

use whatsapp_aws::SqsQueue;
use whatsapp_core::ports::MessageQueue;

use crate::support::{aws, queue};

#[tokio::test]
async fn sent_messages_arrive_verbatim() {
    let client = aws_sdk_sqs::Client::new(&aws().await);
    let url = queue(&client, "q").await;
    let q = SqsQueue::new(client.clone(), &url);
    let body = r#"{"caf\u00e9":"é 👍"}"#;
    let id = q.send(body, None).await.unwrap();
    assert!(!id.is_empty());
    let got = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let msgs = got.messages.unwrap_or_default();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body.as_deref(), Some(body));
}

#[tokio::test]
async fn a_delayed_message_is_not_visible_at_once() {
    let client = aws_sdk_sqs::Client::new(&aws().await);
    let url = queue(&client, "qd").await;
    SqsQueue::new(client.clone(), &url)
        .send("later", Some(30))
        .await
        .unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert!(got.messages.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn sending_to_a_missing_queue_is_an_error() {
    let client = aws_sdk_sqs::Client::new(&aws().await);
    let q = SqsQueue::new(
        client,
        format!(
            "{}/000000000000/no-such-queue",
            std::env::var("AWS_ENDPOINT_URL").unwrap()
        ),
    );
    assert!(q.send("x", None).await.is_err());
}
