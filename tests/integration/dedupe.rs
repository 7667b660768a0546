//! Dedupe claims on DynamoDB: one conditional write, first writer wins.

use whatsapp_aws::DynamoDedupeStore;
use whatsapp_core::ports::{Claim, DedupeStore};

use crate::support::{aws, now, table};

async fn store() -> DynamoDedupeStore {
    let client = aws_sdk_dynamodb::Client::new(&aws().await);
    let name = table(&client, "dedupe").await;
    DynamoDedupeStore::new(client, name)
}

#[tokio::test]
async fn twenty_concurrent_claims_of_one_key_have_exactly_one_winner() {
    let s = store().await;
    let t = now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.claim("msg#wamid.X", t, t + 8 * 86_400).await })
        })
        .collect();
    let mut first = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() == Claim::First {
            first += 1;
        }
    }
    assert_eq!(first, 1);
}

#[tokio::test]
async fn an_expired_claim_still_in_the_table_can_be_claimed_again() {
    let s = store().await;
    let t = now();
    assert_eq!(s.claim("k", t - 100, t - 10).await.unwrap(), Claim::First);
    assert_eq!(s.claim("k", t, t + 60).await.unwrap(), Claim::First);
    assert_eq!(s.claim("k", t + 1, t + 61).await.unwrap(), Claim::Duplicate);
}

/// Powertools' idempotency edge cases, on DynamoDB (mixed units pinned: lease in ms, expiry in s).
#[tokio::test]
async fn idempotency_records_follow_powertools_semantics() {
    use whatsapp_core::ports::{Begin, PreviousHold};
    let s = store().await;
    let now_ms = now() * 1000;
    let exp = now() + 3600;
    // First take; a duplicate while the lease runs is in progress.
    assert_eq!(
        s.begin("job-1", "h1", "a", now_ms, now_ms + 30_000, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: None,
            generation: Some("a".into())
        }
    );
    assert_eq!(
        s.begin("job-1", "h1", "b", now_ms + 100, now_ms + 30_100, exp)
            .await
            .unwrap(),
        Begin::InProgress {
            until_ms: now_ms + 30_000
        }
    );
    // The payload hash is checked on the fast path too.
    assert_eq!(
        s.begin("job-1", "other", "b", now_ms + 100, now_ms + 30_100, exp)
            .await
            .unwrap(),
        Begin::PayloadMismatch
    );
    // After the holder's deadline another delivery takes it over, and learns that the holder
    // stopped without a checkpoint (it may have crashed mid-call).
    assert_eq!(
        s.begin("job-1", "other", "b", now_ms + 30_001, now_ms + 60_000, exp)
            .await
            .unwrap(),
        Begin::PayloadMismatch,
        "a lapsed lease is never taken over for another payload"
    );
    assert_eq!(
        s.begin("job-1", "h1", "c", now_ms + 30_001, now_ms + 60_000, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: Some(PreviousHold {
                held_until_ms: now_ms + 30_000,
                checkpoint: None
            }),
            generation: Some("a".into()),
        },
        "a takeover keeps the generation"
    );
    // A holder that defers leaves a checkpoint; the next takeover consumes it.
    s.checkpoint("job-1", "c", now_ms + 65_000, r#"{"unsent":true}"#)
        .await
        .unwrap();
    // Fenced: the holder whose lease lapsed ("a") can no longer write the record it lost.
    assert!(
        s.checkpoint("job-1", "a", now_ms + 90_000, r#"{"unsent":true}"#)
            .await
            .is_err()
    );
    assert!(s.complete("job-1", "a", Some("zombie"), exp).await.is_err());
    assert!(matches!(
        s.begin("job-1", "h1", "d", now_ms + 64_000, now_ms + 70_000, exp).await.unwrap(),
        Begin::InProgress { until_ms } if until_ms == now_ms + 65_000
    ));
    assert_eq!(
        s.begin("job-1", "h1", "e", now_ms + 65_001, now_ms + 70_000, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: Some(PreviousHold {
                held_until_ms: now_ms + 65_000,
                checkpoint: Some(r#"{"unsent":true}"#.into())
            }),
            generation: Some("a".into()),
        }
    );
    assert_eq!(
        s.begin("job-1", "h1", "f", now_ms + 70_001, now_ms + 80_000, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: Some(PreviousHold {
                held_until_ms: now_ms + 70_000,
                checkpoint: None
            }),
            generation: Some("a".into()),
        },
        "taking a record over consumes its checkpoint"
    );
    // Completed: duplicates get the stored result, never a second run.
    s.complete("job-1", "f", Some("wamid.X"), exp)
        .await
        .unwrap();
    assert_eq!(
        s.begin("job-1", "h1", "g", now_ms + 90_000, now_ms + 120_000, exp)
            .await
            .unwrap(),
        Begin::Completed {
            result: Some("wamid.X".into())
        }
    );
    // Released after a failure: the retry takes it at once.
    assert_eq!(
        s.begin("job-2", "h2", "a2", now_ms, now_ms + 30_000, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: None,
            generation: Some("a2".into())
        }
    );
    assert!(s.release("job-2", "b2").await.is_err(), "not its holder");
    s.release("job-2", "a2").await.unwrap();
    assert_eq!(
        s.begin("job-2", "h2", "b2", now_ms + 1, now_ms + 30_001, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: None,
            generation: Some("b2".into())
        }
    );
    // An expired record still in the table (TTL is lazy) counts as absent.
    assert_eq!(
        s.begin("job-3", "h3", "a3", now_ms, now_ms + 1, now() - 10)
            .await
            .unwrap(),
        Begin::Started {
            previous: None,
            generation: Some("a3".into())
        }
    );
    s.complete("job-3", "a3", None, now() - 10).await.unwrap();
    assert_eq!(
        s.begin("job-3", "h3", "b3", now_ms + 2, now_ms + 30_000, exp)
            .await
            .unwrap(),
        Begin::Started {
            previous: None,
            generation: Some("b3".into())
        },
        "#16 defect 14: a key used again after its record expired is a new generation, whose \
         callback data cannot match the old message's statuses"
    );
}

/// A record from before generations were stored, taken over: it stays without one, so that its
/// earlier attempts (whose callback data had none) are still found by the new holder.
#[tokio::test]
async fn a_record_from_before_generations_keeps_none_across_takeovers() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use whatsapp_core::ports::Begin;
    let client = aws_sdk_dynamodb::Client::new(&aws().await);
    let name = table(&client, "dedupe").await;
    let s = DynamoDedupeStore::new(client.clone(), &name);
    let now_ms = now() * 1000;
    client
        .put_item()
        .table_name(&name)
        .item("pk", AttributeValue::S("send#1#legacy".into()))
        .item("record_state", AttributeValue::S("INPROGRESS".into()))
        .item("payload_hash", AttributeValue::S("h".into()))
        .item(
            "in_progress_until",
            AttributeValue::N((now_ms - 1).to_string()),
        )
        .item("expires_at", AttributeValue::N((now() + 3600).to_string()))
        .item("owner", AttributeValue::S("old".into()))
        .send()
        .await
        .unwrap();
    let begun = s
        .begin(
            "send#1#legacy",
            "h",
            "new",
            now_ms,
            now_ms + 30_000,
            now() + 3600,
        )
        .await
        .unwrap();
    assert!(
        matches!(
            begun,
            Begin::Started {
                previous: Some(_),
                generation: None
            }
        ),
        "{begun:?}"
    );
    let item = client
        .get_item()
        .table_name(&name)
        .key("pk", AttributeValue::S("send#1#legacy".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!item.contains_key("generation"), "{item:?}");
    assert_eq!(item.get("owner"), Some(&AttributeValue::S("new".into())));
}
