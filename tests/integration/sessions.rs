//! The sessions table on DynamoDB: windows are monotonic, computed from timestamps, and the FEP
//! rule holds atomically.

use aws_sdk_dynamodb::types::AttributeValue;
use whatsapp_aws::DynamoSessionStore;
use whatsapp_core::policy::{CSW_SECONDS, FEP_SECONDS};
use whatsapp_core::ports::{SessionStore, UserKey};

use crate::support::{aws, now, table};

async fn store() -> (DynamoSessionStore, aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&aws().await);
    let name = table(&client, "sessions").await;
    (DynamoSessionStore::new(client.clone(), &name), client, name)
}

fn key(user: &str) -> UserKey {
    UserKey {
        phone_number_id: "106540352242922".into(),
        user: user.into(),
    }
}

#[tokio::test]
async fn a_user_who_never_wrote_has_a_closed_window() {
    let (s, ..) = store().await;
    let w = s.window(&key("US.1")).await.unwrap();
    assert!(!w.csw_open(now()));
    assert_eq!(w.last_inbound_at, None);
}

#[tokio::test]
async fn inbound_opens_the_window_and_a_late_older_message_does_not_shorten_it() {
    let (s, ..) = store().await;
    let k = key("US.2");
    let t = now();
    s.record_inbound(&k, t, false).await.unwrap();
    let after_late = s.record_inbound(&k, t - 3600, false).await.unwrap();
    assert_eq!(
        after_late.last_inbound_at,
        Some(t),
        "the older message changed nothing"
    );
    let w = s.window(&k).await.unwrap();
    assert_eq!(w.csw_expires_at(), Some(t + CSW_SECONDS));
    assert!(w.csw_open(t + CSW_SECONDS - 1));
}

#[tokio::test]
async fn concurrent_deliveries_keep_the_newest_timestamp() {
    let (s, ..) = store().await;
    let k = key("US.3");
    let base = now();
    let writes = (0..20).map(|i| {
        let (s, k) = (s.clone(), k.clone());
        // Out of order: the newest is written somewhere in the middle.
        tokio::spawn(async move { s.record_inbound(&k, base + (i * 7) % 20, false).await })
    });
    for w in writes {
        w.await.unwrap().unwrap();
    }
    assert_eq!(s.window(&k).await.unwrap().last_inbound_at, Some(base + 19));
}

#[tokio::test]
async fn an_expired_item_still_present_counts_as_closed() {
    let (s, client, name) = store().await;
    // An item whose window and TTL are long past, as DynamoDB may keep it for days.
    let old = now() - 3 * 24 * 3600;
    client
        .put_item()
        .table_name(&name)
        .item("pk", AttributeValue::S("PN#106540352242922#U#US.4".into()))
        .item("last_inbound_at", AttributeValue::N(old.to_string()))
        .item("expires_at", AttributeValue::N((old + 60).to_string()))
        .send()
        .await
        .unwrap();
    let w = s.window(&key("US.4")).await.unwrap();
    assert_eq!(w.last_inbound_at, Some(old), "the item is still there");
    assert!(!w.csw_open(now()), "but its window is closed");
}

#[tokio::test]
async fn reply_within_24h_of_a_referral_opens_the_free_entry_point_once() {
    let (s, ..) = store().await;
    let k = key("US.5");
    let t = now();
    s.record_inbound(&k, t, true).await.unwrap();
    let w = s.record_business_reply(&k, t + 60).await.unwrap();
    assert_eq!(w.fep_opened_at, Some(t + 60));
    assert_eq!(w.fep_expires_at(), Some(t + 60 + FEP_SECONDS));
    let again = s.record_business_reply(&k, t + 120).await.unwrap();
    assert_eq!(
        again.fep_opened_at,
        Some(t + 60),
        "a second reply does not move it"
    );

    let plain = key("US.6");
    s.record_inbound(&plain, t, false).await.unwrap();
    assert_eq!(
        s.record_business_reply(&plain, t + 60)
            .await
            .unwrap()
            .fep_opened_at,
        None
    );
}

#[tokio::test]
async fn ttl_outlives_every_window_the_item_holds() {
    let (s, client, name) = store().await;
    let k = key("US.7");
    let t = now();
    s.record_inbound(&k, t, true).await.unwrap();
    let item = client
        .get_item()
        .table_name(&name)
        .key("pk", AttributeValue::S("PN#106540352242922#U#US.7".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ttl: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(ttl > t + CSW_SECONDS + 24 * 3600 + FEP_SECONDS);
}

/// The phone-number alias of a business-scoped id, on the contacts table.
mod aliases {
    use whatsapp_aws::DynamoContactStore;
    use whatsapp_core::ports::ContactStore;

    use crate::support::{aws, now, raw_item, table};

    const PN: &str = "106540352242922";

    async fn store() -> (DynamoContactStore, aws_sdk_dynamodb::Client, String) {
        let client = aws_sdk_dynamodb::Client::new(&aws().await);
        let name = table(&client, "contacts").await;
        (DynamoContactStore::new(client.clone(), &name), client, name)
    }

    async fn seen_at(client: &aws_sdk_dynamodb::Client, table: &str, wa_id: &str) -> i64 {
        let item = raw_item(client, table, &format!("PN#{PN}#W#{wa_id}"))
            .await
            .unwrap();
        item["seen_at"].as_n().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn the_latest_mapping_wins_and_an_older_message_cannot_take_it_back() {
        let (c, client, name) = store().await;
        let t = now();
        c.record_alias(PN, "447700900201", "GB.1", t).await.unwrap();
        // Every later message repeats the pair: nothing to write, the first sighting stays.
        c.record_alias(PN, "447700900201", "GB.1", t + 60)
            .await
            .unwrap();
        assert_eq!(seen_at(&client, &name, "447700900201").await, t);
        // The number now belongs to another business-scoped id.
        c.record_alias(PN, "447700900201", "GB.2", t + 120)
            .await
            .unwrap();
        // A late message from before the change carries the old id: refused.
        c.record_alias(PN, "447700900201", "GB.1", t + 90)
            .await
            .unwrap();
        assert_eq!(
            c.resolve_alias(PN, "447700900201")
                .await
                .unwrap()
                .as_deref(),
            Some("GB.2")
        );
        assert_eq!(seen_at(&client, &name, "447700900201").await, t + 120);
        assert_eq!(c.resolve_alias(PN, "447700900202").await.unwrap(), None);
    }
}

/// Defect 11 of #16: a burst of senders to one user each get a turn of their own, in order, a
/// reservation step apart, from one atomic add each (no optimistic retries).
#[tokio::test]
async fn concurrent_senders_to_one_user_reserve_one_turn_each() {
    use whatsapp_core::policy::{PAIR_RATE_GAP_MS, PAIR_TURN_MARGIN_MS, PAIR_TURN_WINDOW_MS};
    use whatsapp_core::ports::{SendControl, Turn};
    let aws = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let control = whatsapp_aws::DynamoSendControl::new(ddb.clone(), &table(&ddb, "control").await);
    let user = UserKey {
        phone_number_id: "106540352242922".into(),
        user: "US.burst".into(),
    };
    let t = now() * 1000;
    let turns = futures_util::future::join_all(
        (0..12).map(|_| control.take_pair_turn(&user, t, PAIR_RATE_GAP_MS)),
    )
    .await;
    let mut reserved: Vec<i64> = Vec::new();
    let mut now_turns = 0;
    for turn in turns {
        match turn.unwrap() {
            Turn::Now => now_turns += 1,
            Turn::Reserved { at_ms } => reserved.push(at_ms),
        }
    }
    assert_eq!(now_turns, 1, "one sends at once");
    reserved.sort_unstable();
    let step = PAIR_RATE_GAP_MS + PAIR_TURN_WINDOW_MS + PAIR_TURN_MARGIN_MS;
    let expected: Vec<i64> = (0..11)
        .map(|k| t + PAIR_RATE_GAP_MS + PAIR_TURN_MARGIN_MS + k * step)
        .collect();
    assert_eq!(reserved, expected, "one distinct turn each, in order");
    // Once every turn has passed, the next sender takes one at once.
    let later = t + PAIR_RATE_GAP_MS + PAIR_TURN_MARGIN_MS + 11 * step;
    assert_eq!(
        control
            .take_pair_turn(&user, later, PAIR_RATE_GAP_MS)
            .await
            .unwrap(),
        Turn::Now
    );
}
