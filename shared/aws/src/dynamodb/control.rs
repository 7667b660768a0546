//! The send-control table (`pk`; TTL `expires_at`): the counters that hold the sender's limits
//! across every concurrent instance.
//!
//! | item | attributes | meaning |
//! |---|---|---|
//! | `TP#<phone number id>#<slot>[#<shard>]` | `sends` N | sends admitted in one shard of one 100 ms throughput slot (shards 1.. only above 250 msg/s) |
//! | `PAIR#<phone number id>#<user>` | `next_at` N (ms) | when the next free turn to that user starts (each reservation pushes it one step) |
//! | `REACH#<portfolio>#<user>` | `reached_at` N (s) | when the user last took a messaging-limit slot |
//! | `BUDGET#<portfolio>[#<shard>]` | `h<hour>` N, `d<day>` N, `used` N, `oldest` N | one shard of the messaging-limit budget: users reached per hour of the moving 24 h and per day (shards 1–7; see `budget.rs`) |
//! | `NUM#<phone number id>` | `mps` N, `tier` S, `marketing_paused` BOOL, health fields | the number's limits and health, as the quality poller stores them |
//! | `HISTORY#<phone number id>` | `changes` L | every health change, appended, never expired |

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{Item, n, num, s, text, update_conditionally};
use whatsapp_core::policy::{HealthChange, NumberHealth};
use whatsapp_core::policy::{MessagingTier, PairTurn, pair_turn};
use whatsapp_core::ports::{
    NumberLimits, NumberState, NumberStateStore, Reach, SendControl, StoreError, Turn, UserKey,
};

#[derive(Debug, Clone)]
pub struct DynamoSendControl {
    pub(super) client: Client,
    pub(super) table: String,
    /// Messaging-limit reservations asked for at once, taken together (`budget_batch.rs`).
    pub(super) groups: super::budget_batch::Groups,
}

impl DynamoSendControl {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoSendControl {
            client,
            table: table.into(),
            groups: Default::default(),
        }
    }

    pub(super) async fn get(
        &self,
        pk: String,
        operation: &'static str,
    ) -> Result<Option<Item>, StoreError> {
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
}

impl SendControl for DynamoSendControl {
    async fn add_to_slot(
        &self,
        phone_number_id: &str,
        slot: i64,
        shard: u32,
        wanted: u32,
    ) -> Result<u64, StoreError> {
        // Shard 0 keeps the unsharded key: numbers up to 250 msg/s use only it.
        let pk = match shard {
            0 => format!("TP#{phone_number_id}#{slot}"),
            k => format!("TP#{phone_number_id}#{slot}#{k}"),
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
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
    ) -> Result<Turn, StoreError> {
        // pair_turn as conditional writes: take the turn if it is free at `now_ms`; otherwise
        // reserve the next one by adding the reservation step to `next_at` (an atomic add: a
        // burst of waiters gets one turn each, with no optimistic retries). The answer of the
        // add is the new `next_at`; our turn starts one step before it.
        let pk = s(format!("PAIR#{}#{}", key.phone_number_id, key.user));
        let step = match pair_turn(Some(now_ms + 1), now_ms, gap_ms) {
            PairTurn::Reserve { at_ms, next_at_ms } => next_at_ms.saturating_sub(at_ms),
            PairTurn::Take { .. } => gap_ms,
        };
        // A turn freed between the two writes: take it (bounded; each round is two writes).
        for _ in 0..3 {
            let next = match pair_turn(None, now_ms, gap_ms) {
                PairTurn::Take { next_at_ms } | PairTurn::Reserve { next_at_ms, .. } => next_at_ms,
            };
            let taken = update_conditionally(
                &self.client,
                &self.table,
                pk.clone(),
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
            if taken.applied {
                return Ok(Turn::Now);
            }
            let seen = taken
                .item
                .as_ref()
                .and_then(|i| num(i, "next_at"))
                .unwrap_or(now_ms);
            let reserved = update_conditionally(
                &self.client,
                &self.table,
                pk.clone(),
                "control.take_pair_turn",
                "SET next_at = next_at + :step, expires_at = :exp",
                "next_at > :now",
                vec![
                    (":step", n(step)),
                    (":now", n(now_ms)),
                    // An hour past the latest turn this writer knows of: later reservations
                    // push it further.
                    (":exp", n((seen + step) / 1000 + 3600)),
                ],
            )
            .await?;
            if reserved.applied {
                let new_next = reserved
                    .item
                    .as_ref()
                    .and_then(|i| num(i, "next_at"))
                    .ok_or_else(|| {
                        StoreError::new("control.take_pair_turn", "no next_at in the answer")
                    })?;
                return Ok(Turn::Reserved {
                    at_ms: new_next - step,
                });
            }
        }
        Err(StoreError::new(
            "control.take_pair_turn",
            "the pair's turn kept changing hands",
        ))
    }

    async fn reach(
        &self,
        portfolio_id: &str,
        user: &str,
        now: i64,
        limit: Option<u32>,
    ) -> Result<Reach, StoreError> {
        match limit {
            // Unlimited: nothing to count.
            None => Ok(Reach::AlreadyCounted),
            Some(limit) => self.reserve_reach(portfolio_id, user, now, limit).await,
        }
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
            marketing_paused: i
                .get("marketing_paused")
                .and_then(|b| b.as_bool().ok())
                .copied()
                .unwrap_or(false),
        }))
    }
}

impl NumberStateStore for DynamoSendControl {
    async fn number_state(&self, phone_number_id: &str) -> Result<Option<NumberState>, StoreError> {
        let item = self
            .get(format!("NUM#{phone_number_id}"), "control.number_state")
            .await?;
        // An item with only a back-off (the first poll was rate limited) has `polled_at` 0.
        Ok(item.map(|i| {
            let t = |k: &str| text(&i, k).unwrap_or_default();
            NumberState {
                health: NumberHealth {
                    quality: t("quality"),
                    status: t("number_status"),
                    name_status: t("name_status"),
                    throughput_level: t("throughput_level"),
                    tier: t("tier"),
                },
                marketing_paused: i
                    .get("marketing_paused")
                    .and_then(|b| b.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                polled_at: num(&i, "polled_at").unwrap_or(0),
                backoff_until: num(&i, "backoff_until"),
            }
        }))
    }

    async fn put_number_state(
        &self,
        phone_number_id: &str,
        st: &NumberState,
    ) -> Result<(), StoreError> {
        let h = &st.health;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("NUM#{phone_number_id}")))
            .update_expression(
                "SET mps = :mps, tier = :tier, marketing_paused = :mp, quality = :q, \
                 number_status = :st, name_status = :ns, throughput_level = :tl, polled_at = :at \
                 REMOVE backoff_until",
            )
            .expression_attribute_values(":mps", n(i64::from(h.mps())))
            .expression_attribute_values(":tier", s(h.tier.as_str()))
            .expression_attribute_values(":mp", AttributeValue::Bool(st.marketing_paused))
            .expression_attribute_values(":q", s(h.quality.as_str()))
            .expression_attribute_values(":st", s(h.status.as_str()))
            .expression_attribute_values(":ns", s(h.name_status.as_str()))
            .expression_attribute_values(":tl", s(h.throughput_level.as_str()))
            .expression_attribute_values(":at", n(st.polled_at))
            .send()
            .await
            .map_err(|e| StoreError::new("control.put_number_state", e))?;
        Ok(())
    }

    async fn set_backoff(&self, phone_number_id: &str, until: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("NUM#{phone_number_id}")))
            .update_expression("SET backoff_until = :u")
            .expression_attribute_values(":u", n(until))
            .send()
            .await
            .map_err(|e| StoreError::new("control.set_backoff", e))?;
        Ok(())
    }

    async fn append_history(
        &self,
        phone_number_id: &str,
        at_ms: i64,
        changes: &[HealthChange],
    ) -> Result<(), StoreError> {
        let entries: Vec<AttributeValue> = changes
            .iter()
            .map(|c| {
                let mut m = std::collections::HashMap::from([
                    ("at_ms".to_owned(), n(at_ms)),
                    ("field".to_owned(), s(c.field.as_str())),
                    ("to".to_owned(), s(c.to.as_str())),
                ]);
                if let Some(f) = &c.from {
                    m.insert("from".to_owned(), s(f.as_str()));
                }
                AttributeValue::M(m)
            })
            .collect();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("HISTORY#{phone_number_id}")))
            .update_expression("SET changes = list_append(if_not_exists(changes, :none), :c)")
            .expression_attribute_values(":none", AttributeValue::L(vec![]))
            .expression_attribute_values(":c", AttributeValue::L(entries))
            .send()
            .await
            .map_err(|e| StoreError::new("control.append_history", e))?;
        Ok(())
    }

    async fn history(
        &self,
        phone_number_id: &str,
    ) -> Result<whatsapp_core::ports::HealthHistory, StoreError> {
        let item = self
            .get(format!("HISTORY#{phone_number_id}"), "control.history")
            .await?;
        let mut out: whatsapp_core::ports::HealthHistory = Vec::new();
        for e in item
            .as_ref()
            .and_then(|i| i.get("changes"))
            .and_then(|c| c.as_l().ok())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let Ok(m) = e.as_m() else { continue };
            let at = num(m, "at_ms").unwrap_or(0);
            let change = HealthChange {
                field: text(m, "field").unwrap_or_default(),
                from: text(m, "from"),
                to: text(m, "to").unwrap_or_default(),
            };
            match out.last_mut() {
                Some((t, v)) if *t == at => v.push(change),
                _ => out.push((at, vec![change])),
            }
        }
        Ok(out)
    }

    async fn reached_7d(&self, portfolio_id: &str, now: i64) -> Result<u64, StoreError> {
        // The day counts live in the budget's shards, written with each reservation.
        Ok(self
            .read_shards(portfolio_id, false)
            .await?
            .iter()
            .map(|shard| shard.reached_7d(now))
            .sum())
    }
}
