//! DynamoDB adapters. Every table has a string partition key `pk` and, where items expire, the
//! TTL attribute `expires_at` (epoch seconds). Every write is one conditional request; expiry is
//! always decided from stored timestamps, never from an item's absence.

mod account;
mod budget;
mod budget_batch;
mod contacts;
mod control;
mod dedupe;
mod identity;
mod media_ids;
mod messages;
mod sessions;

pub use account::{DynamoPhoneStateStore, DynamoTemplateStore, volume_tier_pk};
pub use budget::{budget_shard, budget_shard_item};
pub use contacts::DynamoContactStore;
pub use control::DynamoSendControl;
pub use dedupe::DynamoDedupeStore;
pub use identity::{DynamoIdentityStore, POINTER_TTL_SECONDS};
pub use media_ids::DynamoMediaIds;
pub use messages::{CALLBACK_INDEX, DynamoMessageStore};
pub use sessions::{DynamoSessionStore, SESSION_TTL_SLACK_SECONDS};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use whatsapp_core::ports::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

pub(crate) fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// What a conditional write did.
pub(crate) struct Updated {
    /// Whether the condition held and the write happened.
    pub applied: bool,
    /// The item after the write, or as it was when the condition failed.
    pub item: Option<Item>,
}

/// One conditional `UpdateItem` that reports whether it applied, returning the new item, or the
/// old one when the condition did not hold (no extra read).
pub(crate) async fn update_conditionally(
    client: &Client,
    table: &str,
    pk: AttributeValue,
    operation: &'static str,
    update: &str,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<Updated, StoreError> {
    let mut req = client
        .update_item()
        .table_name(table)
        .key("pk", pk)
        .update_expression(update)
        .condition_expression(condition)
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (k, v) in values {
        req = req.expression_attribute_values(k, v);
    }
    match req.send().await {
        Ok(out) => Ok(Updated {
            applied: true,
            item: out.attributes,
        }),
        Err(e) => match condition_failed(&e) {
            Some(old) => Ok(Updated {
                applied: false,
                item: old,
            }),
            None => Err(StoreError::new(operation, e)),
        },
    }
}

/// Whether an SDK error is a failed condition, and if so the item as it was.
pub(crate) fn condition_failed<E: ConditionFailure>(err: &SdkError<E>) -> Option<Option<Item>> {
    err.as_service_error().and_then(ConditionFailure::old_item)
}

pub(crate) trait ConditionFailure {
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

/// Whether a `TransactWriteItems` was cancelled only because another writer got there first (a
/// condition failed or an item was busy): the caller reads again and retries. Any other
/// cancellation reason is a real error.
pub(crate) fn cancelled_by_a_concurrent_write(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().all(|r| {
                matches!(
                    r.code(),
                    None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    }
}
