//! DynamoDB adapters: the sessions table and dedupe claims.
//!
//! Sessions table (partition key `pk`, string; TTL attribute `expires_at`):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `PN#<phone_number_id>#U#<user_id or wa_id>` |
//! | `last_inbound_at` | N | epoch s of the user's latest message |
//! | `last_referral_at` | N | epoch s of the user's latest click-to-WhatsApp message |
//! | `fep_opened_at` | N | epoch s of the reply that opened the free entry point |
//! | `expires_at` | N | TTL: when the item may be deleted (after every window it holds) |
//!
//! Every write is one conditional `UpdateItem`, so concurrent deliveries never move a timestamp
//! backwards. Windows are computed from the timestamps, never from an item's presence.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

use crate::policy::{CSW_SECONDS, FEP_REPLY_WITHIN_SECONDS, FEP_SECONDS, WindowState};
use crate::ports::{Claim, DedupeStore, SessionStore, StoreError, UserKey};

/// Kept past the last window the item describes, so late webhooks still find it.
pub const SESSION_TTL_SLACK_SECONDS: i64 = 7 * 24 * 3600;

/// The sessions table.
#[derive(Debug, Clone)]
pub struct DynamoSessionStore {
    client: Client,
    table: String,
}

impl DynamoSessionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoSessionStore {
            client,
            table: table.into(),
        }
    }

    fn pk(key: &UserKey) -> AttributeValue {
        AttributeValue::S(format!("PN#{}#U#{}", key.phone_number_id, key.user))
    }
}

type Item = HashMap<String, AttributeValue>;

fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn state_of(item: &Item) -> WindowState {
    WindowState {
        last_inbound_at: num(item, "last_inbound_at"),
        last_referral_at: num(item, "last_referral_at"),
        fep_opened_at: num(item, "fep_opened_at"),
    }
}

/// Whether an SDK error is a failed condition, and if so the item as it was.
fn condition_failed<E>(err: &SdkError<E>) -> Option<Option<Item>>
where
    E: ConditionFailure,
{
    err.as_service_error().and_then(ConditionFailure::old_item)
}

trait ConditionFailure {
    fn old_item(&self) -> Option<Option<Item>>;
}

impl ConditionFailure for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn old_item(&self) -> Option<Option<Item>> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
            _ => None,
        }
    }
}

impl ConditionFailure for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn old_item(&self) -> Option<Option<Item>> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
            _ => None,
        }
    }
}

impl DynamoSessionStore {
    /// A conditional update that returns the item after it, or the item as it was when the
    /// condition did not hold.
    async fn conditional_update(
        &self,
        operation: &'static str,
        key: &UserKey,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Item>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::pk(key))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(out) => Ok(out.attributes),
            Err(e) => match condition_failed(&e) {
                Some(old) => Ok(old),
                None => Err(StoreError::new(operation, e)),
            },
        }
    }
}

impl SessionStore for DynamoSessionStore {
    async fn window(&self, key: &UserKey) -> Result<WindowState, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", Self::pk(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("sessions.get", e))?;
        Ok(out.item.as_ref().map(state_of).unwrap_or_default())
    }

    async fn record_inbound(
        &self,
        key: &UserKey,
        at: i64,
        has_referral: bool,
    ) -> Result<WindowState, StoreError> {
        // The item must outlive the CSW and any FEP a referral up to `at` can open.
        let ttl =
            at + CSW_SECONDS + FEP_REPLY_WITHIN_SECONDS + FEP_SECONDS + SESSION_TTL_SLACK_SECONDS;
        let mut item = self
            .conditional_update(
                "sessions.record_inbound",
                key,
                "SET last_inbound_at = :t, expires_at = :ttl",
                "attribute_not_exists(last_inbound_at) OR last_inbound_at < :t",
                vec![(":t", n(at)), (":ttl", n(ttl))],
            )
            .await?;
        if has_referral {
            item = self
                .conditional_update(
                    "sessions.record_referral",
                    key,
                    "SET last_referral_at = :t",
                    "attribute_not_exists(last_referral_at) OR last_referral_at < :t",
                    vec![(":t", n(at))],
                )
                .await?;
        }
        Ok(item.as_ref().map(state_of).unwrap_or_default())
    }

    async fn record_business_reply(
        &self,
        key: &UserKey,
        at: i64,
    ) -> Result<WindowState, StoreError> {
        // The FEP rule of `WindowState::with_business_reply`, as one atomic condition.
        let item = self
            .conditional_update(
                "sessions.record_business_reply",
                key,
                "SET fep_opened_at = :t",
                "last_referral_at <= :t AND last_referral_at > :since \
                 AND (attribute_not_exists(fep_opened_at) OR fep_opened_at < last_referral_at)",
                vec![(":t", n(at)), (":since", n(at - FEP_REPLY_WITHIN_SECONDS))],
            )
            .await?;
        Ok(item.as_ref().map(state_of).unwrap_or_default())
    }
}

/// Dedupe claims (partition key `pk`, string; TTL attribute `expires_at`).
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

impl DedupeStore for DynamoDedupeStore {
    async fn claim(&self, key: &str, now: i64, expires_at: i64) -> Result<Claim, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_owned()))
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
}
