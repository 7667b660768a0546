//! The DynamoDB side of finance.
//!
//! **Usage table** (`USAGE_TABLE`), one item per counter, written as absolute values:
//!
//! | attribute | |
//! |---|---|
//! | `pk` | `D#<YYYY-MM-DD>` (a UTC day) or `M#<YYYY-MM>` (its month, the sum of its days) |
//! | `sk` | `<waba_id>#<phone_number_id>#<category>#<pricing_type>#<country>#<pricing_model>` |
//! | `waba_id`, `phone_number_id`, `category`, `pricing_type`, `country`, `pricing_model` | the key, spelled out |
//! | `period` | the day or month |
//! | `messages`, `charged`, `conversations` | the counters ([`crate::Counts`]) |
//! | `refreshed_at` | when the aggregator last wrote it (epoch seconds) |
//!
//! **Rate-card table** (`RATE_CARD_TABLE`): `pk` = `RATE#<market>#<category>`, `sk` =
//! `<effective_from>`, with `market`, `category`, `currency`, `rate` (a decimal string),
//! `effective_from`, and the import that set it: `version` (1, 2, … per change), `imported_at`,
//! `source`, `previous_rate`.
//!
//! **Usage index** of the messages table ([`whatsapp_core::usage::USAGE_INDEX`]): read one number's
//! priced messages of one day.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use chrono::NaiveDate;
use iso_currency::Currency;
use rust_decimal::Decimal;

use crate::counting::{Counts, PricedMessage, UsageKey, UsageRow};
use crate::rates::Rate;

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct StoreError {
    pub operation: &'static str,
    pub detail: String,
}

impl StoreError {
    fn new(operation: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError {
            operation,
            detail: e.to_string(),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn text(i: &Item, k: &str) -> Option<String> {
    i.get(k)?.as_s().ok().cloned()
}

fn num<T: std::str::FromStr>(i: &Item, k: &str) -> Option<T> {
    i.get(k)?.as_n().ok()?.parse().ok()
}

/// Every item of a paginated read; `page(start)` fetches the page that begins at `start` and
/// returns its items and where the next one begins.
async fn all_items<F, Fut>(mut page: F) -> Result<Vec<Item>, StoreError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>>,
{
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let (items, next) = page(start.take()).await?;
        out.extend(items);
        match next {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// The partition of a day's counters.
pub fn day_pk(day: NaiveDate) -> String {
    format!("D#{}", day.format("%Y-%m-%d"))
}

/// The partition of a month's counters (`first` is any day of it).
pub fn month_pk(first: NaiveDate) -> String {
    format!("M#{}", first.format("%Y-%m"))
}

pub fn sort_key(k: &UsageKey) -> String {
    format!(
        "{}#{}#{}#{}#{}#{}",
        k.waba_id, k.phone_number_id, k.category, k.pricing_type, k.country, k.pricing_model
    )
}

/// The messages table's usage index.
#[derive(Debug, Clone)]
pub struct PricedIndex {
    client: Client,
    table: String,
}

impl PricedIndex {
    pub fn new(client: Client, messages_table: impl Into<String>) -> Self {
        PricedIndex {
            client,
            table: messages_table.into(),
        }
    }

    /// Every message of `phone_number_id` whose usage day is `day`: one query per shard of
    /// the day, and one for the unsharded key of messages priced before sharding, at once.
    pub async fn day(
        &self,
        phone_number_id: &str,
        day: NaiveDate,
    ) -> Result<Vec<PricedMessage>, StoreError> {
        let partitions = whatsapp_core::usage::usage_partitions(phone_number_id, day);
        let shards =
            futures_util::future::try_join_all(partitions.iter().map(|p| self.partition(p)))
                .await?;
        Ok(shards.into_iter().flatten().collect())
    }

    /// Every message filed under one index partition.
    async fn partition(&self, partition: &str) -> Result<Vec<PricedMessage>, StoreError> {
        let (client, table) = (&self.client, &self.table);
        let items = all_items(|start| async move {
            let page = client
                .query()
                .table_name(table)
                .index_name(whatsapp_core::usage::USAGE_INDEX)
                .key_condition_expression("usage_pk = :p")
                .expression_attribute_values(":p", s(partition))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::new("usage_index.query", e.into_service_error()))?;
            Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
        })
        .await?;
        Ok(items.iter().filter_map(priced).collect())
    }
}

fn priced(i: &Item) -> Option<PricedMessage> {
    Some(PricedMessage {
        wamid: text(i, "pk")?,
        waba_id: text(i, "waba_id").unwrap_or_default(),
        phone_number_id: text(i, "usage_pk")
            .map(|p| whatsapp_core::usage::partition_number(&p).to_owned())
            .unwrap_or_default(),
        priced_at: num(i, "priced_at")?,
        category: text(i, "pricing_category")?,
        pricing_type: text(i, "pricing_type"),
        pricing_model: text(i, "pricing_model"),
        billable: i
            .get("pricing_billable")
            .and_then(|v| v.as_bool().ok())
            .copied(),
        conversation_id: text(i, "conversation_id"),
        recipient: text(i, "usage_recipient"),
    })
}

/// The usage table.
#[derive(Debug, Clone)]
pub struct UsageTable {
    client: Client,
    table: String,
}

impl UsageTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        UsageTable {
            client,
            table: table.into(),
        }
    }

    /// Every counter of one partition (a day's or a month's), keyed by sort key.
    pub async fn partition(&self, pk: &str) -> Result<Vec<UsageRow>, StoreError> {
        let (client, table) = (&self.client, &self.table);
        let items = all_items(|start| async move {
            let page = client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::new("usage.query", e.into_service_error()))?;
            Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
        })
        .await?;
        Ok(items.iter().filter_map(usage_row).collect())
    }

    /// The day counters of a period.
    pub async fn days(&self, period: &crate::Period) -> Result<Vec<UsageRow>, StoreError> {
        let mut out = Vec::new();
        for day in period.days() {
            out.extend(self.partition(&day_pk(day)).await?);
        }
        Ok(out)
    }

    /// Writes `puts` and deletes `deletes` (sort keys) in `pk`, 25 per request, retrying what
    /// DynamoDB leaves unprocessed.
    pub async fn write(
        &self,
        pk: &str,
        puts: &[UsageRow],
        deletes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut requests: Vec<WriteRequest> = Vec::new();
        for r in puts {
            let mut item = row_item(&r.key, &r.counts);
            item.insert("pk".into(), s(pk));
            item.insert("period".into(), s(&pk[2..]));
            item.insert("refreshed_at".into(), n(now));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::new("usage.put", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for sk in deletes {
            let del = DeleteRequest::builder()
                .key("pk", s(pk))
                .key("sk", s(sk))
                .build()
                .map_err(|e| StoreError::new("usage.delete", e))?;
            requests.push(WriteRequest::builder().delete_request(del).build());
        }
        for chunk in requests.chunks(25) {
            self.batch(chunk.to_vec()).await?;
        }
        Ok(())
    }

    async fn batch(&self, mut pending: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..8u32 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| StoreError::new("usage.batch_write", e.into_service_error()))?;
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(
                50 * 2u64.pow(attempt) + whatsapp_core::jitter_ms(50),
            ))
            .await;
        }
        Err(StoreError::new(
            "usage.batch_write",
            format!(
                "{} writes still unprocessed after 8 attempts",
                pending.len()
            ),
        ))
    }
}

fn row_item(k: &UsageKey, c: &Counts) -> Item {
    HashMap::from([
        ("sk".into(), s(sort_key(k))),
        ("day".into(), s(k.day.to_string())),
        ("waba_id".into(), s(&k.waba_id)),
        ("phone_number_id".into(), s(&k.phone_number_id)),
        ("category".into(), s(&k.category)),
        ("pricing_type".into(), s(&k.pricing_type)),
        ("country".into(), s(&k.country)),
        ("pricing_model".into(), s(&k.pricing_model)),
        ("messages".into(), n(c.messages)),
        ("charged".into(), n(c.charged)),
        ("conversations".into(), n(c.conversations)),
    ])
}

fn usage_row(i: &Item) -> Option<UsageRow> {
    Some(UsageRow {
        key: UsageKey {
            day: text(i, "day")?.parse().ok()?,
            waba_id: text(i, "waba_id")?,
            phone_number_id: text(i, "phone_number_id")?,
            category: text(i, "category")?,
            pricing_type: text(i, "pricing_type")?,
            country: text(i, "country")?,
            pricing_model: text(i, "pricing_model")?,
        },
        counts: Counts {
            messages: num(i, "messages").unwrap_or(0),
            charged: num(i, "charged").unwrap_or(0),
            conversations: num(i, "conversations").unwrap_or(0),
        },
    })
}

/// What an import did to one rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    New,
    Changed,
    Unchanged,
}

/// The rate-card table.
#[derive(Debug, Clone)]
pub struct RateTable {
    client: Client,
    table: String,
}

impl RateTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        RateTable {
            client,
            table: table.into(),
        }
    }

    /// Stores one rate; a rate that is already stored with the same value and currency is left
    /// as it is, a different one gets the next version and keeps the previous value.
    pub async fn import(&self, r: &Rate, source: &str, now: i64) -> Result<Imported, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(rate_pk(r)))
            .key("sk", s(r.effective_from.to_string()))
            .update_expression(
                "SET market = :m, category = :c, currency = :cur, rate = :r, effective_from = :f, \
                 imported_at = :now, #src = :src, version = if_not_exists(version, :zero) + :one, \
                 previous_rate = if_not_exists(rate, :none)",
            )
            .condition_expression("attribute_not_exists(rate) OR rate <> :r OR currency <> :cur")
            .expression_attribute_names("#src", "source")
            .expression_attribute_values(":m", s(&r.market))
            .expression_attribute_values(":c", s(&r.category))
            .expression_attribute_values(":cur", s(r.currency.code()))
            .expression_attribute_values(":r", s(r.rate.normalize().to_string()))
            .expression_attribute_values(":f", s(r.effective_from.to_string()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":src", s(source))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":none", s(""))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        // Rates stored before cards held several currencies are keyed without one: the row
        // now stored in its currency replaces the old item of the same currency (only that).
        let legacy = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{}#{}", r.market, r.category)))
            .key("sk", s(r.effective_from.to_string()))
            .condition_expression("currency = :cur")
            .expression_attribute_values(":cur", s(r.currency.code()))
            .send()
            .await;
        if let Err(e) = legacy {
            match e.into_service_error() {
                aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_) => {}
                other => return Err(StoreError::new("rates.import_legacy", other)),
            }
        }
        match result {
            Ok(out) => Ok(
                if out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("version"))
                    .is_some()
                {
                    Imported::Changed
                } else {
                    Imported::New
                },
            ),
            Err(e) => match e.into_service_error() {
                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_) => {
                    Ok(Imported::Unchanged)
                }
                other => Err(StoreError::new("rates.import", other)),
            },
        }
    }

    /// Sets the currency Meta bills a business account in: its usage is priced at the card's
    /// rates in that currency.
    pub async fn set_currency(
        &self,
        waba_id: &str,
        currency: Currency,
        now: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("{CURRENCY_PREFIX}{waba_id}")))
            .item("sk", s("currency"))
            .item("waba_id", s(waba_id))
            .item("currency", s(currency.code()))
            .item("set_at", n(now))
            .send()
            .await
            .map_err(|e| StoreError::new("rates.set_currency", e.into_service_error()))?;
        Ok(())
    }

    /// Each business account's currency, as set.
    pub async fn currencies(&self) -> Result<BTreeMap<String, Currency>, StoreError> {
        Ok(currencies_of(&self.scan().await?))
    }

    /// The card and the accounts' currencies, from one scan (a report needs both).
    pub async fn load_with_currencies(
        &self,
    ) -> Result<(Vec<Rate>, BTreeMap<String, Currency>), StoreError> {
        let items = self.scan().await?;
        Ok((rates_of(&items)?, currencies_of(&items)))
    }

    async fn scan(&self) -> Result<Vec<Item>, StoreError> {
        let (client, table) = (&self.client, &self.table);
        all_items(|start| async move {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::new("rates.scan", e.into_service_error()))?;
            Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
        })
        .await
    }

    /// The whole card.
    pub async fn load(&self) -> Result<Vec<Rate>, StoreError> {
        rates_of(&self.scan().await?)
    }
}

fn currencies_of(items: &[Item]) -> BTreeMap<String, Currency> {
    items
        .iter()
        .filter(|i| text(i, "pk").is_some_and(|p| p.starts_with(CURRENCY_PREFIX)))
        .filter_map(|i| {
            Some((
                text(i, "waba_id")?,
                Currency::from_code(&text(i, "currency")?)?,
            ))
        })
        .collect()
}

fn rates_of(items: &[Item]) -> Result<Vec<Rate>, StoreError> {
    items
        .iter()
        .filter(|i| text(i, "pk").is_some_and(|p| p.starts_with("RATE#")))
        .map(|i| {
            rate(i).ok_or_else(|| {
                StoreError::new(
                    "rates.scan",
                    format!(
                        "unreadable rate item {:?}",
                        text(i, "pk").unwrap_or_default()
                    ),
                )
            })
        })
        .collect()
}

/// Where a business account's currency is kept in the rate-card table.
const CURRENCY_PREFIX: &str = "CURRENCY#";

/// A rate's key: one item per market, category and currency (and `sk` its effective date).
fn rate_pk(r: &Rate) -> String {
    format!("RATE#{}#{}#{}", r.market, r.category, r.currency.code())
}

fn rate(i: &Item) -> Option<Rate> {
    Some(Rate {
        market: text(i, "market")?,
        category: text(i, "category")?,
        currency: Currency::from_code(&text(i, "currency")?)?,
        rate: text(i, "rate")?.parse::<Decimal>().ok()?,
        effective_from: text(i, "effective_from")?.parse().ok()?,
    })
}
