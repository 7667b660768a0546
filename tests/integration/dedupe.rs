//! Dedupe claims on DynamoDB: one conditional write, first writer wins.

use shared::adapters::DynamoDedupeStore;
use shared::ports::{Claim, DedupeStore};

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
