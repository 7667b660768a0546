//! Finding a send by its callback data, as the sender reconciles a send whose answer it never
//! saw, through the real SDK on ministack: a priced message is found in the usage index (its
//! only index entry), a message whose statuses carried no pricing in the callback index.

use serde_json::json;
use whatsapp_core::ports::{MessageStore, StatusUpdate};
use whatsapp_core::webhook::{Pricing, StatusKind};

use crate::support::{ingest_stack, now, raw_item};
use crate::webhook::{PHONE, WABA};

#[tokio::test]
async fn a_send_is_found_by_its_callback_data_priced_or_not() {
    let stack = ingest_stack().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = &stack.resources.messages_table;
    let messages = whatsapp_aws::DynamoMessageStore::new(ddb.clone(), table);
    let today = (now() / 86_400) * 86_400;
    let pricing: Pricing = serde_json::from_value(
        json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}),
    )
    .unwrap();
    let status =
        |wamid: &'static str, kind: &'static StatusKind, at, cb, priced: bool| StatusUpdate {
            wamid,
            waba_id: WABA,
            phone_number_id: PHONE,
            status: kind,
            at,
            recipient: Some("447700900001"),
            callback_data: Some(cb),
            pricing: priced.then_some(&pricing),
            conversation: None,
            error: None,
        };
    // Sent (priced) just before midnight, delivered after it; asked today.
    for s in [
        status(
            "wamid.PRICED",
            &StatusKind::Sent,
            today - 30,
            "cb-priced",
            true,
        ),
        status(
            "wamid.PRICED",
            &StatusKind::Delivered,
            today + 10,
            "cb-priced",
            true,
        ),
        // A message Meta took and then failed: no pricing on any status.
        status(
            "wamid.FAILED",
            &StatusKind::Failed,
            today + 20,
            "cb-failed",
            false,
        ),
    ] {
        messages.merge_status(s).await.unwrap();
    }
    let find = |phone: &'static str, cb: &'static str| {
        let m = messages.clone();
        async move { m.find_by_callback(phone, cb, 0, today + 60).await.unwrap() }
    };
    assert_eq!(
        find(PHONE, "cb-priced").await.as_deref(),
        Some("wamid.PRICED")
    );
    assert_eq!(
        find(PHONE, "cb-failed").await.as_deref(),
        Some("wamid.FAILED")
    );
    assert_eq!(find(PHONE, "cb-other").await, None);
    // Another number's partitions do not hold our priced send.
    assert_eq!(find("100000000000001", "cb-priced").await, None);
    // One index entry for the priced message: filed under its callback data, not in the callback
    // index; the failed one only there.
    let priced = raw_item(&ddb, table, "wamid.PRICED").await.unwrap();
    assert_eq!(
        priced
            .get("usage_sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("cb-priced")
    );
    assert!(!priced.contains_key("callback_unpriced"), "{priced:?}");
    let failed = raw_item(&ddb, table, "wamid.FAILED").await.unwrap();
    assert!(failed.contains_key("callback_unpriced"));
    assert!(!failed.contains_key("usage_pk"));
}
