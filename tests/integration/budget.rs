//! The messaging-limit budget through the real SDK on ministack: sharded, it admits exactly the
//! portfolio's limit under concurrency, counts a user once, frees hours as they leave the
//! moving 24 h, and feeds the tier projection from the same items.

use futures_util::future::join_all;
use whatsapp_aws::{DynamoSendControl, budget_shard};
use whatsapp_core::policy::{
    REACH_HOURS, REACH_SHARDS, Reach, budget_key, hour_attr, reach_shard, reach_shard_limit,
};
use whatsapp_core::ports::{NumberStateStore, SendControl};

use crate::support::{aws, raw_item, table, unique};

const T0: i64 = 1_790_812_800 + 10 * 3600; // 10:00 on a UTC day

async fn control() -> (DynamoSendControl, aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&aws().await);
    let name = table(&client, "budget").await;
    (DynamoSendControl::new(client.clone(), &name), client, name)
}

/// Every shard as stored, by shard number.
async fn shards(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    portfolio: &str,
) -> Vec<Option<whatsapp_core::policy::BudgetShard>> {
    let mut out = Vec::new();
    for k in 0..REACH_SHARDS {
        out.push(
            raw_item(client, table, &budget_key(portfolio, k))
                .await
                .map(|i| budget_shard(&i)),
        );
    }
    out
}

#[tokio::test]
async fn concurrent_new_users_take_exactly_the_limit_over_the_shards() {
    let (control, client, name) = control().await;
    let portfolio = unique("pf");
    // 48 new users at once against a limit of 20: the shards they hash to fill unevenly, and
    // the users of full shards fall over to the others until every shard is full.
    let users: Vec<String> = (0..48).map(|i| format!("4477{i:08}")).collect();
    let results = join_all(
        users
            .iter()
            .map(|u| control.reach(&portfolio, u, T0, Some(20))),
    )
    .await;
    let results: Vec<Reach> = results.into_iter().map(Result::unwrap).collect();
    let reserved = results.iter().filter(|r| **r == Reach::Reserved).count();
    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Reach::Refused(x) => Some(*x),
            _ => None,
        })
        .collect();
    assert_eq!((reserved, refused.len()), (20, 28), "{results:?}");
    // A slot frees a day after the end of the hour it was taken in.
    let frees = (T0 / 3600 + 1 + REACH_HOURS) * 3600;
    assert!(refused.iter().all(|r| r.retry_at == frees && r.limit == 20));
    // Every shard holds exactly its part, its `used` the sum of its hours.
    for (k, shard) in shards(&client, &name, &portfolio).await.iter().enumerate() {
        let shard = shard.as_ref().expect("every shard was used");
        let hours: u64 = shard.hours.values().map(|&c| u64::from(c)).sum();
        assert_eq!(shard.used, hours, "shard {k}");
        assert_eq!(
            shard.used,
            u64::from(reach_shard_limit(20, k as u32)),
            "shard {k}"
        );
    }
    // A user reached already costs nothing, even with the budget full.
    let first = users
        .iter()
        .zip(&results)
        .find(|(_, r)| **r == Reach::Reserved)
        .unwrap()
        .0;
    assert_eq!(
        control
            .reach(&portfolio, first, T0 + 60, Some(20))
            .await
            .unwrap(),
        Reach::AlreadyCounted
    );
    assert_eq!(control.reached_7d(&portfolio, T0).await.unwrap(), 20);
}

#[tokio::test]
async fn one_user_reached_by_many_senders_at_once_takes_one_slot() {
    let (control, client, name) = control().await;
    let portfolio = unique("pf");
    let results =
        join_all((0..10).map(|_| control.reach(&portfolio, "447700900111", T0, Some(250)))).await;
    let reserved = results
        .iter()
        .filter(|r| matches!(r, Ok(Reach::Reserved)))
        .count();
    let counted = results
        .iter()
        .filter(|r| matches!(r, Ok(Reach::AlreadyCounted)))
        .count();
    assert_eq!((reserved, counted), (1, 9), "{results:?}");
    // The losers gave their slots back.
    let used: u64 = shards(&client, &name, &portfolio)
        .await
        .iter()
        .flatten()
        .map(|s| s.used)
        .sum();
    assert_eq!(used, 1);
}

#[tokio::test]
async fn an_hour_that_left_the_window_is_pruned_and_frees_its_slots() {
    let (control, client, name) = control().await;
    let portfolio = unique("pf");
    let user = "447700900222";
    let shard = reach_shard(user);
    // Limit 8: one slot per shard. The user's shard is full with a reach of 25 hours ago
    // (hour h counts until 24 h after its end), every other shard with one of this hour.
    let stale = T0 / 3600 - REACH_HOURS - 1;
    for k in 0..REACH_SHARDS {
        let hour = if k == shard { stale } else { T0 / 3600 };
        let mut put = client.put_item().table_name(&name).item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(budget_key(&portfolio, k)),
        );
        for (a, v) in whatsapp_aws::budget_shard_item(hour, 1) {
            put = put.item(a, v);
        }
        put.send().await.unwrap();
    }
    assert_eq!(
        control.reach(&portfolio, user, T0, Some(8)).await.unwrap(),
        Reach::Reserved
    );
    let item = raw_item(&client, &name, &budget_key(&portfolio, shard))
        .await
        .unwrap();
    assert!(!item.contains_key(&hour_attr(stale)), "{item:?}");
    let pruned = budget_shard(&item);
    assert_eq!((pruned.used, pruned.oldest), (1, Some(T0 / 3600)));
    // Now every shard is full with this hour's reaches: the next new user is refused.
    assert!(matches!(
        control
            .reach(&portfolio, "447700900223", T0, Some(8))
            .await
            .unwrap(),
        Reach::Refused(_)
    ));
}

#[tokio::test]
async fn the_tier_projection_sums_the_days_of_every_shard() {
    let (control, _client, _name) = control().await;
    let portfolio = unique("pf");
    let day = 86_400;
    for (i, at) in [(0, T0 - 8 * day), (1, T0 - 3 * day), (2, T0), (3, T0)] {
        control
            .reach(&portfolio, &format!("44770090030{i}"), at, Some(1_000))
            .await
            .unwrap();
    }
    // The reach 8 days ago is outside the 7 days ending today; 4 days on, only today's two count.
    assert_eq!(control.reached_7d(&portfolio, T0).await.unwrap(), 3);
    assert_eq!(
        control.reached_7d(&portfolio, T0 + 4 * day).await.unwrap(),
        2
    );
}

#[tokio::test]
async fn new_users_reserved_at_once_share_a_shard_write() {
    let (control, client, name) = control().await;
    let portfolio = unique("pf");
    // New users whose own shards are all different: reserved one by one, each shard would
    // hold exactly one of them.
    let mut users: Vec<String> = Vec::new();
    let mut own = std::collections::BTreeSet::new();
    for i in 0.. {
        let u = format!("4477009004{i:02}");
        if own.insert(reach_shard(&u)) {
            users.push(u);
        }
        if own.len() == REACH_SHARDS as usize {
            break;
        }
    }
    let results = join_all(
        users
            .iter()
            .map(|u| control.reach(&portfolio, u, T0, Some(1_000))),
    )
    .await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Reach::Reserved))),
        "{results:?}"
    );
    // Taken in groups (the first caller's reservation, then one for everyone who came while it
    // was written, and so on): a group's slots land on one shard, so some shard holds more
    // than one; every slot is counted once. How many groups form depends on timing (ministack
    // answers one request at a time), so this asserts only that some did.
    let used: Vec<u64> = shards(&client, &name, &portfolio)
        .await
        .iter()
        .map(|s| s.as_ref().map_or(0, |s| s.used))
        .collect();
    assert_eq!(used.iter().sum::<u64>(), users.len() as u64, "{used:?}");
    assert!(
        used.iter().any(|&u| u >= 2),
        "no reservation was grouped: {used:?}"
    );
    assert_eq!(
        control.reached_7d(&portfolio, T0).await.unwrap(),
        users.len() as u64
    );
}
