//! Dedupe claims and idempotency records (partition key `pk`; TTL `expires_at`).
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `record_state` | S | `INPROGRESS` or `COMPLETED` (absent on plain claims) |
//! | `payload_hash` | S | hash of the payload the record was taken for |
//! | `in_progress_until` | N | epoch **ms**: the holder's deadline |
//! | `expires_at` | N | epoch **s**: when the record stops counting (and TTL) |
//! | `result` | S | what `complete` stored |
//! | `checkpoint` | S | what an in-progress holder left for the next one (opaque to the store) |
//! | `owner` | S | the holder's fencing token: only writes carrying it change the record |
//! | `generation` | S | the owner token of the holder that created the record: names this use of the key (absent on records from before it was stored) |

use aws_sdk_dynamodb::Client;

use super::{condition_failed, n, num, s, text};
use whatsapp_core::ports::{Begin, Claim, DedupeStore, PreviousHold, StoreError};

#[derive(Debug, Clone)]
pub struct DynamoDedupeStore {
    client: Client,
    table: String,
}

impl DynamoDedupeStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDedupeStore {
            client,
            table: table.into(),
        }
    }
}

impl DynamoDedupeStore {
    /// Sets (or, with `None`, removes) the generation of a record we hold.
    async fn set_generation(
        &self,
        key: &str,
        owner: &str,
        generation: Option<&str>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner));
        let req = match generation {
            Some(g) => req
                .update_expression("SET generation = :g")
                .expression_attribute_values(":g", s(g)),
            None => req.update_expression("REMOVE generation"),
        };
        req.send()
            .await
            .map_err(|e| StoreError::new("dedupe.begin", e))?;
        Ok(())
    }
}

impl DedupeStore for DynamoDedupeStore {
    async fn claim(&self, key: &str, now: i64, expires_at: i64) -> Result<Claim, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("expires_at", n(expires_at))
            .item("claimed_at", n(now))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::First),
            Err(e) if condition_failed(&e).is_some() => Ok(Claim::Duplicate),
            Err(e) => Err(StoreError::new("dedupe.claim", e)),
        }
    }

    async fn begin(
        &self,
        key: &str,
        payload_hash: &str,
        owner: &str,
        now_ms: i64,
        in_progress_until_ms: i64,
        expires_at: i64,
    ) -> Result<Begin, StoreError> {
        // One conditional UpdateItem (not PutItem): on success ALL_OLD hands back the record we
        // replaced, so a takeover learns what the previous holder left without another read.
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression(
                "SET record_state = :in_progress, payload_hash = :h, in_progress_until = :until, \
                 expires_at = :exp, #o = :o, generation = if_not_exists(generation, :o) \
                 REMOVE checkpoint, #r",
            )
            .expression_attribute_names("#r", "result")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            // Powertools' three escape clauses: absent; expired (s); in progress past its
            // holder's deadline (ms) — for the same payload only.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s \
                 OR (record_state = :in_progress AND in_progress_until < :now_ms \
                     AND payload_hash = :h)",
            )
            .expression_attribute_values(":h", s(payload_hash))
            .expression_attribute_values(":until", n(in_progress_until_ms))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now_s", n(now_ms.div_euclid(1000)))
            .expression_attribute_values(":now_ms", n(now_ms))
            .expression_attribute_values(":in_progress", s("INPROGRESS"))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match res {
            Ok(out) => {
                let old = out.attributes.as_ref();
                let expired = old.is_some_and(|old| {
                    num(old, "expires_at").is_some_and(|e| e < now_ms.div_euclid(1000))
                });
                let previous = old.filter(|_| !expired).and_then(|old| {
                    (text(old, "record_state").as_deref() == Some("INPROGRESS")).then(|| {
                        PreviousHold {
                            held_until_ms: num(old, "in_progress_until").unwrap_or(0),
                            checkpoint: text(old, "checkpoint"),
                        }
                    })
                });
                // `if_not_exists` kept what the table had. Right for a takeover; a record
                // that had expired (TTL deletes lag) starts a new generation, and one from
                // before generations stays without (its attempts' callback data had none).
                let generation = match old {
                    None => Some(owner.to_owned()),
                    Some(_) if expired => {
                        self.set_generation(key, owner, Some(owner)).await?;
                        Some(owner.to_owned())
                    }
                    Some(old) => match text(old, "generation") {
                        Some(g) => Some(g),
                        None => {
                            self.set_generation(key, owner, None).await?;
                            None
                        }
                    },
                };
                Ok(Begin::Started {
                    previous,
                    generation,
                })
            }
            Err(e) => match condition_failed(&e) {
                // The fast path returned the existing record: validate its payload hash too.
                Some(Some(old)) => Ok(
                    if text(&old, "payload_hash").as_deref() != Some(payload_hash) {
                        Begin::PayloadMismatch
                    } else if text(&old, "record_state").as_deref() == Some("COMPLETED") {
                        Begin::Completed {
                            result: text(&old, "result"),
                        }
                    } else if num(&old, "in_progress_until").is_some() {
                        Begin::InProgress {
                            until_ms: num(&old, "in_progress_until").unwrap_or(0),
                        }
                    } else {
                        // A plain claim under the same key: treat as done.
                        Begin::Completed { result: None }
                    },
                ),
                Some(None) => Ok(Begin::InProgress { until_ms: now_ms }),
                None => Err(StoreError::new("idempotency.begin", e)),
            },
        }
    }

    async fn checkpoint(
        &self,
        key: &str,
        owner: &str,
        in_progress_until_ms: i64,
        checkpoint: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET in_progress_until = :until, checkpoint = :c")
            .condition_expression(format!("record_state = :in_progress AND {FENCE}"))
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":until", n(in_progress_until_ms))
            .expression_attribute_values(":c", s(checkpoint))
            .expression_attribute_values(":in_progress", s("INPROGRESS"))
            .send()
            .await
            .map_err(|e| StoreError::new("idempotency.checkpoint", e))?;
        Ok(())
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression(format!("attribute_exists(pk) AND {FENCE}"))
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":done", s("COMPLETED"))
            .expression_attribute_values(":exp", n(expires_at));
        req = match result {
            Some(r) => req
                .update_expression("SET record_state = :done, expires_at = :exp, #r = :r")
                .expression_attribute_names("#r", "result")
                .expression_attribute_values(":r", s(r)),
            None => req.update_expression("SET record_state = :done, expires_at = :exp"),
        };
        req.send()
            .await
            .map_err(|e| StoreError::new("idempotency.complete", e))?;
        Ok(())
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression(format!("attribute_not_exists(pk) OR {FENCE}"))
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            .send()
            .await
            .map_err(|e| StoreError::new("idempotency.release", e))?;
        Ok(())
    }
}

/// Only the holder that took the record writes it (records written before owners existed
/// carry none and stay writable).
const FENCE: &str = "(attribute_not_exists(#o) OR #o = :o)";
