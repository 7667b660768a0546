//! The messages table (`pk` = wamid; TTL `expires_at`): delivery status merged monotonically,
//! when each status first came (`at_sent`, `at_delivered`, …), the error of a failed message,
//! and the pricing Meta reported (indexed by number and day for
//! finance: [`whatsapp_core::usage`]).

use aws_sdk_dynamodb::Client;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Item, n, num, s, text, update_conditionally};
use whatsapp_core::policy::{rank_advances, status_rank};
use whatsapp_core::ports::{
    MessageRecord, MessageStore, StatusUpdate, StoreError, status_time_attribute, status_times,
};
use whatsapp_core::usage::{USAGE_INDEX, usage_day, usage_partition, usage_shard, usage_sort_key};
use whatsapp_core::webhook::{Pricing, StatusKind};

/// The keys-only global secondary index on `callback_unpriced`: the callback data of a message
/// one of whose statuses carried no pricing (a failed one). Priced messages are found by their
/// callback data in the usage index ([`whatsapp_core::usage::USAGE_SORT_KEY`]), so this one
/// holds only the few that may have no usage entry, and a priced message costs one index entry.
pub const CALLBACK_INDEX: &str = "by_callback";

/// How many UTC days before today a reconciliation looks in the usage index at most: a job
/// lives no longer than the send queue keeps it (4 days by default).
const RECONCILE_DAYS: i64 = 4;

/// Message records are kept this long after their last status.
pub const MESSAGE_TTL_SECONDS: i64 = whatsapp_core::usage::MESSAGE_RETENTION_SECONDS;

#[derive(Debug, Clone)]
pub struct DynamoMessageStore {
    client: Client,
    table: String,
}

impl DynamoMessageStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoMessageStore {
            client,
            table: table.into(),
        }
    }
}

/// Parts of one update expression, with the values it names.
#[derive(Default, Clone)]
struct Clause {
    sets: Vec<String>,
    removes: Vec<&'static str>,
    values: Vec<(&'static str, AttributeValue)>,
}

impl Clause {
    fn set(&mut self, expr: impl Into<String>, name: &'static str, value: AttributeValue) {
        self.sets.push(expr.into());
        self.values.push((name, value));
    }

    fn and(&self, other: &Clause) -> Clause {
        let mut c = self.clone();
        c.sets.extend(other.sets.iter().cloned());
        c.removes.extend(other.removes.iter().copied());
        c.values.extend(other.values.iter().cloned());
        c
    }

    fn expression(&self) -> String {
        let mut e = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            e.push_str(&format!(" REMOVE {}", self.removes.join(", ")));
        }
        e
    }
}

/// When the status came: kept for every status, the first time of each (a redelivery
/// repeats it), in the same write as the rest when there is one.
fn time_clause(u: &StatusUpdate<'_>) -> Clause {
    let mut c = Clause::default();
    if let Some(a) = status_time_attribute(u.status) {
        c.set(format!("{a} = if_not_exists({a}, :t)"), ":t", n(u.at));
    }
    c
}

/// The status part of an update: applies when the status advances.
fn status_clause(u: &StatusUpdate<'_>, rank: i64) -> Clause {
    let mut c = time_clause(u);
    c.set("status_rank = :r", ":r", n(rank));
    c.set("msg_status = :s", ":s", s(u.status.as_str()));
    c.set("status_at = :t", ":t", n(u.at));
    c.set("phone_number_id = :pn", ":pn", s(u.phone_number_id));
    c.set("expires_at = :exp", ":exp", n(u.at + MESSAGE_TTL_SECONDS));
    if let Some(r) = u.recipient {
        c.set("recipient = :rc", ":rc", s(r));
    }
    if let Some(cb) = u.callback_data {
        c.set("callback_data = :cb", ":cb", s(cb));
    }
    if let Some(e) = u.error {
        c.set("error_code = :ec", ":ec", n(e.code));
    }
    c
}

/// The pricing part: applies when this status is the earliest to carry pricing. It writes the
/// whole verdict (removing what this status lacks), the usage day and the index key; it is the
/// only writer of the attributes the usage index projects.
fn pricing_clause(u: &StatusUpdate<'_>, p: &Pricing) -> Clause {
    let mut c = Clause::default();
    c.set("priced_at = :pat", ":pat", n(u.at));
    c.set(
        "usage_pk = :upk",
        ":upk",
        s(usage_partition(
            u.phone_number_id,
            usage_day(u.at),
            usage_shard(usage_sort_key(u.callback_data, u.wamid)),
        )),
    );
    c.set(
        "usage_sk = :usk",
        ":usk",
        s(usage_sort_key(u.callback_data, u.wamid)),
    );
    c.set("waba_id = :waba", ":waba", s(u.waba_id));
    c.set("pricing_category = :pc", ":pc", s(p.category.as_str()));
    match &p.kind {
        Some(k) => c.set("pricing_type = :pty", ":pty", s(k.as_str())),
        None => c.removes.push("pricing_type"),
    }
    match &p.pricing_model {
        Some(m) => c.set("pricing_model = :pm", ":pm", s(m.as_str())),
        None => c.removes.push("pricing_model"),
    }
    match p.billable {
        Some(b) => c.set("pricing_billable = :pb", ":pb", AttributeValue::Bool(b)),
        None => c.removes.push("pricing_billable"),
    }
    if let Some(conv) = u.conversation {
        c.set("conversation_id = :cid", ":cid", s(conv.id.as_str()));
        if let Some(o) = &conv.origin {
            c.set("conversation_origin = :co", ":co", s(o.kind.as_str()));
        }
    }
    // Its own copy of the recipient (for the country), so that only this clause writes what the
    // usage index projects and later statuses never rewrite the index entry.
    if let Some(r) = u.recipient {
        c.set("usage_recipient = :urc", ":urc", s(r));
    }
    c
}

/// Which parts of a priced status still apply, given the item as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The status advances and is the earliest priced one so far.
    Both,
    /// The status advances; an earlier (or as early) status already carried pricing.
    StatusOnly,
    /// As `StatusOnly`, guessed before reading the item: the usual case for `delivered` and
    /// `read` once an earlier status was priced. Its condition says so itself.
    StatusAfterPricing,
    /// The status is stale but the earliest priced one (a `sent` with pricing after `read`).
    PricingOnly,
}

/// [`rank_advances`] as a condition.
const STATUS_ADVANCES: &str = "(attribute_not_exists(status_rank) OR status_rank < :r)";
const PRICING_EARLIER: &str = "(attribute_not_exists(priced_at) OR priced_at > :pat)";
const PRICED_BEFORE: &str = "(attribute_exists(priced_at) AND priced_at <= :pat)";

/// What still applies of a priced status with `rank` at `at`, given the item as it is.
fn plan_for(old: &Item, rank: i64, at: i64) -> Option<Plan> {
    let stored = num(old, "status_rank").map(|r| u8::try_from(r).unwrap_or(u8::MAX));
    let advances = rank_advances(stored, u8::try_from(rank).unwrap_or(0));
    let earlier = num(old, "priced_at").is_none_or(|t| t > at);
    match (advances, earlier) {
        (true, true) => Some(Plan::Both),
        (true, false) => Some(Plan::StatusOnly),
        (false, true) => Some(Plan::PricingOnly),
        (false, false) => None,
    }
}

impl DynamoMessageStore {
    /// A stale status (one the stored status already passed, or a redelivery): only its time,
    /// on the message as it is (never creating one).
    async fn record_time(&self, u: &StatusUpdate<'_>) -> Result<(), StoreError> {
        let c = time_clause(u);
        if c.sets.is_empty() {
            return Ok(());
        }
        update_conditionally(
            &self.client,
            &self.table,
            s(u.wamid),
            "messages.status_time",
            &c.expression(),
            "attribute_exists(pk)",
            c.values,
        )
        .await?;
        Ok(())
    }
}

impl MessageStore for DynamoMessageStore {
    async fn merge_status(&self, u: StatusUpdate<'_>) -> Result<bool, StoreError> {
        let rank = i64::from(status_rank(u.status));
        let status = status_clause(&u, rank);
        let pk = s(u.wamid);
        let Some(pricing) = u.pricing else {
            // An unpriced status (a failed one): the message may never get a usage entry, so
            // its callback data goes in the callback index.
            let mut status = status;
            if let Some(cb) = u.callback_data {
                status.set("callback_unpriced = :cbu", ":cbu", s(cb));
            }
            let condition = if rank == 0 {
                "attribute_not_exists(status_rank)"
            } else {
                STATUS_ADVANCES
            };
            let out = update_conditionally(
                &self.client,
                &self.table,
                pk,
                "messages.merge_status",
                &status.expression(),
                condition,
                status.values,
            )
            .await?;
            if !out.applied {
                self.record_time(&u).await?;
            }
            return Ok(out.applied);
        };
        let priced = pricing_clause(&u, pricing);
        // Guess the common case first; a wrong guess costs one failed write, after which the
        // item the failure returns says exactly which parts still apply. Every write's
        // condition states the case it is for, so a race only sends us round again.
        let mut plan = if matches!(u.status, StatusKind::Sent) {
            Plan::Both
        } else {
            Plan::StatusAfterPricing
        };
        for _ in 0..4 {
            let (clause, condition, operation) = match plan {
                Plan::Both => (
                    status.and(&priced),
                    format!("{STATUS_ADVANCES} AND {PRICING_EARLIER}"),
                    "messages.merge_status_priced",
                ),
                Plan::StatusAfterPricing => {
                    let mut c = status.clone();
                    c.values.push((":pat", n(u.at)));
                    (
                        c,
                        format!("{STATUS_ADVANCES} AND {PRICED_BEFORE}"),
                        "messages.merge_status",
                    )
                }
                Plan::StatusOnly => (
                    status.clone(),
                    STATUS_ADVANCES.to_owned(),
                    "messages.merge_status",
                ),
                Plan::PricingOnly => (
                    priced.and(&time_clause(&u)),
                    PRICING_EARLIER.to_owned(),
                    "messages.merge_pricing",
                ),
            };
            let out = update_conditionally(
                &self.client,
                &self.table,
                pk.clone(),
                operation,
                &clause.expression(),
                &condition,
                clause.values,
            )
            .await?;
            if out.applied {
                return Ok(plan != Plan::PricingOnly);
            }
            match plan_for(&out.item.unwrap_or_default(), rank, u.at) {
                Some(next) => plan = next,
                None => {
                    self.record_time(&u).await?;
                    return Ok(false);
                }
            }
        }
        Err(StoreError::new(
            "messages.merge_status",
            "the item kept changing under four conditional writes",
        ))
    }

    async fn message(&self, wamid: &str) -> Result<Option<MessageRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(wamid))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("messages.get", e))?;
        Ok(out.item.as_ref().map(record))
    }

    async fn find_by_callback(
        &self,
        phone_number_id: &str,
        callback_data: &str,
        from: i64,
        until: i64,
    ) -> Result<Option<String>, StoreError> {
        // A priced status files the message under its first priced status's day, between the
        // send attempt and now: one partition per day (the shard is the callback data's).
        let shard = usage_shard(callback_data);
        let last = until.div_euclid(86_400);
        let first = from.div_euclid(86_400).max(last - RECONCILE_DAYS);
        for day in (first..=last).rev() {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(USAGE_INDEX)
                .key_condition_expression("usage_pk = :p AND usage_sk = :cb")
                .expression_attribute_values(
                    ":p",
                    s(usage_partition(
                        phone_number_id,
                        usage_day(day * 86_400),
                        shard,
                    )),
                )
                .expression_attribute_values(":cb", s(callback_data))
                .limit(1)
                .send()
                .await
                .map_err(|e| StoreError::new("messages.find_by_callback", e))?;
            if let Some(wamid) = out.items().first().and_then(|i| text(i, "pk")) {
                return Ok(Some(wamid));
            }
        }
        // Statuses without pricing (a failed message).
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(CALLBACK_INDEX)
            .key_condition_expression("callback_unpriced = :cb")
            .expression_attribute_values(":cb", s(callback_data))
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::new("messages.find_by_callback", e))?;
        Ok(out.items().first().and_then(|i| text(i, "pk")))
    }
}

fn record(i: &Item) -> MessageRecord {
    MessageRecord {
        status: text(i, "msg_status").map(|s| s.parse().unwrap_or_else(|never| match never {})),
        status_at: num(i, "status_at"),
        error_code: num(i, "error_code"),
        pricing_category: text(i, "pricing_category"),
        pricing_type: text(i, "pricing_type"),
        pricing_model: text(i, "pricing_model"),
        billable: i
            .get("pricing_billable")
            .and_then(|v| v.as_bool().ok())
            .copied(),
        priced_at: num(i, "priced_at"),
        waba_id: text(i, "waba_id"),
        conversation_id: text(i, "conversation_id"),
        callback_data: text(i, "callback_data"),
        recipient: text(i, "recipient"),
        status_times: status_times(|a| num(i, a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(rank: Option<i64>, priced_at: Option<i64>) -> Item {
        let mut i = Item::new();
        if let Some(r) = rank {
            i.insert("status_rank".into(), n(r));
        }
        if let Some(t) = priced_at {
            i.insert("priced_at".into(), n(t));
        }
        i
    }

    #[test]
    fn a_priced_status_applies_exactly_the_parts_that_are_news() {
        // read (rank 2) at 100 on an item nobody priced yet: both parts.
        assert_eq!(plan_for(&item(None, None), 2, 100), Some(Plan::Both));
        assert_eq!(plan_for(&item(Some(1), None), 2, 100), Some(Plan::Both));
        // An earlier status was priced: the status only.
        assert_eq!(
            plan_for(&item(Some(1), Some(90)), 2, 100),
            Some(Plan::StatusOnly)
        );
        assert_eq!(
            plan_for(&item(Some(1), Some(100)), 2, 100),
            Some(Plan::StatusOnly)
        );
        // A stale status that is the earliest priced one: the pricing only.
        assert_eq!(
            plan_for(&item(Some(2), Some(100)), 0, 90),
            Some(Plan::PricingOnly)
        );
        // Stale and later: nothing.
        assert_eq!(plan_for(&item(Some(2), Some(90)), 1, 95), None);
        assert_eq!(plan_for(&item(Some(2), Some(90)), 2, 90), None);
    }
}
