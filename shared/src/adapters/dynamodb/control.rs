//! The send-control table (`pk`; TTL `expires_at`): the counters that hold the sender's limits
//! across every concurrent instance.
//!
//! | item | attributes | meaning |
//! |---|---|---|
//! | `TP#<phone number id>#<slot>` | `sends` N | sends admitted in one 100 ms throughput slot |
//! | `PAIR#<phone number id>#<user>` | `next_at` N (ms) | when the next message to that user may go |
//! | `REACH#<portfolio>#<user>` | `reached_at` N (s) | when the user last took a messaging-limit slot |
//! | `BUDGET#<portfolio>` | `buckets` M, `version` N | users reached per hour of the moving 24 h |
//! | `NUM#<phone number id>` | `mps` N, `tier` S | the number's limits, as the quality poller stores them |

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};

use super::{Item, n, num, s, text, update_conditionally};
use crate::policy::{MessagingTier, ReachBudget};
use crate::ports::{NumberLimits, Reach, SendControl, StoreError, UserKey};

/// How many times a contended messaging-limit reservation is retried before giving up (the
/// job is then retried through the queue).
const REACH_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct DynamoSendControl {
    client: Client,
    table: String,
}

impl DynamoSendControl {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoSendControl {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String, operation: &'static str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new(operation, e))?
            .item)
    }

    /// One optimistic attempt; `None` when another sender changed the budget or counted the
    /// user first.
    async fn try_reach(
        &self,
        portfolio_id: &str,
        user: &str,
        now: i64,
        limit: Option<u32>,
    ) -> Result<Option<Reach>, StoreError> {
        let reach_pk = format!("REACH#{portfolio_id}#{user}");
        let cut = now - 24 * 3600;
        if let Some(item) = self.get(reach_pk.clone(), "control.reach_get").await?
            && num(&item, "reached_at").is_some_and(|at| at > cut)
        {
            return Ok(Some(Reach::AlreadyCounted));
        }
        let budget_pk = format!("BUDGET#{portfolio_id}");
        let budget_item = self.get(budget_pk.clone(), "control.budget_get").await?;
        let version = budget_item
            .as_ref()
            .and_then(|i| num(i, "version"))
            .unwrap_or(0);
        let budget = ReachBudget {
            buckets: budget_item.as_ref().map(budget_buckets).unwrap_or_default(),
        };
        let budget = match budget.reserve(now, limit) {
            Ok(b) => b,
            Err(refused) => return Ok(Some(Reach::Refused(refused))),
        };
        let buckets: std::collections::HashMap<String, AttributeValue> = budget
            .buckets
            .iter()
            .map(|(h, c)| (h.to_string(), n(i64::from(*c))))
            .collect();
        let expires = now + 2 * 24 * 3600;
        let reach = Put::builder()
            .table_name(&self.table)
            .item("pk", s(reach_pk))
            .item("reached_at", n(now))
            .item("expires_at", n(expires))
            .condition_expression("attribute_not_exists(pk) OR reached_at <= :cut")
            .expression_attribute_values(":cut", n(cut))
            .build()
            .map_err(|e| StoreError::new("control.reach_put", e))?;
        let mut budget_put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(budget_pk))
            .item("buckets", AttributeValue::M(buckets))
            .item("version", n(version + 1))
            .item("expires_at", n(expires));
        budget_put = if version == 0 {
            budget_put.condition_expression("attribute_not_exists(pk)")
        } else {
            budget_put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        let budget_put = budget_put
            .build()
            .map_err(|e| StoreError::new("control.budget_put", e))?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(reach).build())
            .transact_items(TransactWriteItem::builder().put(budget_put).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(Some(Reach::Reserved)),
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    matches!(
                        se,
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(_)
                    )
                }) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::new("control.reach", e)),
        }
    }
}

impl SendControl for DynamoSendControl {
    async fn add_to_slot(
        &self,
        phone_number_id: &str,
        slot: i64,
        wanted: u32,
    ) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("TP#{phone_number_id}#{slot}")))
            .update_expression("ADD sends :w SET expires_at = :exp")
            .expression_attribute_values(":w", n(i64::from(wanted)))
            // Slots are 100 ms; keep them a minute for inspection.
            .expression_attribute_values(":exp", n(slot / 10 + 60))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::new("control.add_to_slot", e))?;
        Ok(out
            .attributes
            .as_ref()
            .and_then(|a| num(a, "sends"))
            .unwrap_or(i64::from(wanted))
            .max(0) as u64)
    }

    async fn take_pair_turn(
        &self,
        key: &UserKey,
        now_ms: i64,
        gap_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let next = now_ms + gap_ms;
        let out = update_conditionally(
            &self.client,
            &self.table,
            s(format!("PAIR#{}#{}", key.phone_number_id, key.user)),
            "control.take_pair_turn",
            "SET next_at = :next, expires_at = :exp",
            "attribute_not_exists(next_at) OR next_at <= :now",
            vec![
                (":next", n(next)),
                (":now", n(now_ms)),
                (":exp", n(next / 1000 + 3600)),
            ],
        )
        .await?;
        Ok(if out.applied {
            None
        } else {
            Some(
                out.item
                    .as_ref()
                    .and_then(|i| num(i, "next_at"))
                    .unwrap_or(next),
            )
        })
    }

    async fn reach(
        &self,
        portfolio_id: &str,
        user: &str,
        now: i64,
        limit: Option<u32>,
    ) -> Result<Reach, StoreError> {
        if limit.is_none() {
            return Ok(Reach::AlreadyCounted);
        }
        for attempt in 0..REACH_ATTEMPTS {
            if let Some(r) = self.try_reach(portfolio_id, user, now, limit).await? {
                return Ok(r);
            }
            tokio::time::sleep(std::time::Duration::from_millis(crate::jitter_ms(
                5 << attempt.min(5),
            )))
            .await;
        }
        Err(StoreError::new(
            "control.reach",
            "messaging-limit budget stayed contended",
        ))
    }

    async fn number_limits(&self, phone_number_id: &str) -> Result<NumberLimits, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("NUM#{phone_number_id}")))
            .send()
            .await
            .map_err(|e| StoreError::new("control.number_limits", e))?
            .item;
        Ok(item.map_or_else(NumberLimits::default, |i| NumberLimits {
            mps: num(&i, "mps").and_then(|m| u32::try_from(m).ok()),
            tier: text(&i, "tier").and_then(|t| t.parse::<MessagingTier>().ok()),
        }))
    }
}

/// The budget as stored, for inspection in tests and tools.
pub fn budget_buckets(item: &Item) -> BTreeMap<i64, u32> {
    item.get("buckets")
        .and_then(|b| b.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(h, v)| Some((h.parse().ok()?, v.as_n().ok()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}
