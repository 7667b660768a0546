//! The messages table through the real SDK on ministack: every status a message had is kept
//! with its time, in whatever order and however often the webhooks bring them, while the
//! current status only moves forward; the in-memory store the unit tests use agrees.

use serde_json::json;
use whatsapp_core::ports::{MessageStore, StatusUpdate};
use whatsapp_core::webhook::{Pricing, StatusKind};

use crate::support::{ingest_stack, now};
use crate::webhook::{PHONE, WABA};

#[tokio::test]
async fn every_status_is_kept_with_its_time_whatever_the_order() {
    let stack = ingest_stack().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let dynamo = whatsapp_aws::DynamoMessageStore::new(ddb, &stack.resources.messages_table);
    let memory = whatsapp_fakes::MemoryMessages::default();
    let pricing: Pricing = serde_json::from_value(
        json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}),
    )
    .unwrap();
    let t = now() - 600;
    let (sent, delivered, read) = (StatusKind::Sent, StatusKind::Delivered, StatusKind::Read);
    // Read first, then sent (priced), delivered, and delivered again (Meta redelivers).
    let arrivals = [
        (&read, t + 30, false),
        (&sent, t + 10, true),
        (&delivered, t + 20, true),
        (&delivered, t + 20, true),
    ];
    for (status, at, priced) in arrivals {
        let update = StatusUpdate {
            wamid: "wamid.TIMES",
            waba_id: WABA,
            phone_number_id: PHONE,
            status,
            at,
            recipient: Some("447700900001"),
            callback_data: Some("cb-times"),
            pricing: priced.then_some(&pricing),
            conversation: None,
            error: None,
        };
        dynamo.merge_status(update).await.unwrap();
        memory.merge_status(update).await.unwrap();
    }
    let stored = dynamo.message("wamid.TIMES").await.unwrap().unwrap();
    assert_eq!(stored.status, Some(StatusKind::Read), "only forward");
    assert_eq!(stored.status_at, Some(t + 30));
    assert_eq!(
        stored.status_times,
        [(sent.clone(), t + 10), (delivered, t + 20), (read, t + 30)]
    );
    assert_eq!(stored.priced_at, Some(t + 10), "the earliest priced status");
    let fake = memory.message("wamid.TIMES").await.unwrap().unwrap();
    assert_eq!(fake.status_times, stored.status_times);
    assert_eq!(fake.status, stored.status);
}
