//! The messages table (`pk` = wamid; TTL `expires_at`): delivery status merged monotonically,
//! the error of a failed message, and the pricing Meta reported.

use aws_sdk_dynamodb::Client;

use super::{Item, n, num, s, text, update_conditionally};
use crate::policy::status_rank;
use crate::ports::{MessageRecord, MessageStore, StatusUpdate, StoreError};

/// The keys-only global secondary index on `callback_data` (the `biz_opaque_callback_data` a
/// status echoed): written once per message, since later statuses do not change the key.
pub const CALLBACK_INDEX: &str = "by_callback";

/// Message records are kept this long after their last status (finance and reconciliation read
/// them; Meta retries webhooks for 7 days).
pub const MESSAGE_TTL_SECONDS: i64 = 90 * 24 * 3600;

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

fn pricing_values(
    u: &StatusUpdate<'_>,
) -> (
    Vec<&'static str>,
    Vec<(&'static str, aws_sdk_dynamodb::types::AttributeValue)>,
) {
    let mut sets = Vec::new();
    let mut vals = Vec::new();
    if let Some(p) = u.pricing {
        sets.push("pricing_category = :pc");
        vals.push((":pc", s(p.category.as_str())));
        if let Some(k) = &p.kind {
            sets.push("pricing_type = :pt");
            vals.push((":pt", s(k.as_str())));
        }
        if let Some(m) = &p.pricing_model {
            sets.push("pricing_model = :pm");
            vals.push((":pm", s(m.as_str())));
        }
    }
    if let Some(c) = u.conversation {
        sets.push("conversation_id = :cid");
        vals.push((":cid", s(c.id.as_str())));
        if let Some(o) = &c.origin {
            sets.push("conversation_origin = :co");
            vals.push((":co", s(o.kind.as_str())));
        }
    }
    (sets, vals)
}

impl MessageStore for DynamoMessageStore {
    async fn merge_status(&self, u: StatusUpdate<'_>) -> Result<bool, StoreError> {
        let rank = i64::from(status_rank(u.status));
        let mut sets = vec![
            "status_rank = :r",
            "msg_status = :s",
            "status_at = :t",
            "phone_number_id = :pn",
            "expires_at = :exp",
        ];
        let mut vals = vec![
            (":r", n(rank)),
            (":s", s(u.status.as_str())),
            (":t", n(u.at)),
            (":pn", s(u.phone_number_id)),
            (":exp", n(u.at + MESSAGE_TTL_SECONDS)),
        ];
        if let Some(r) = u.recipient {
            sets.push("recipient = :rc");
            vals.push((":rc", s(r)));
        }
        if let Some(c) = u.callback_data {
            sets.push("callback_data = :cb");
            vals.push((":cb", s(c)));
        }
        if let Some(e) = u.error {
            sets.push("error_code = :ec");
            vals.push((":ec", n(e.code)));
        }
        let (psets, pvals) = pricing_values(&u);
        sets.extend(psets.iter().copied());
        vals.extend(pvals.iter().cloned());
        let condition = if rank == 0 {
            "attribute_not_exists(status_rank)"
        } else {
            "attribute_not_exists(status_rank) OR status_rank < :r"
        };
        let pk = s(u.wamid);
        let out = update_conditionally(
            &self.client,
            &self.table,
            pk.clone(),
            "messages.merge_status",
            &format!("SET {}", sets.join(", ")),
            condition,
            vals,
        )
        .await?;
        // A stale status may still be the first to carry pricing (a `read` without it arrived
        // first): keep the pricing, never the status.
        let lacks_pricing = out
            .item
            .as_ref()
            .is_some_and(|i| !i.contains_key("pricing_category"));
        if !out.applied && !psets.is_empty() && lacks_pricing {
            update_conditionally(
                &self.client,
                &self.table,
                pk,
                "messages.merge_pricing",
                &format!("SET {}", psets.join(", ")),
                "attribute_not_exists(pricing_category)",
                pvals,
            )
            .await?;
        }
        Ok(out.applied)
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

    async fn find_by_callback(&self, callback_data: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(CALLBACK_INDEX)
            .key_condition_expression("callback_data = :cb")
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
        conversation_id: text(i, "conversation_id"),
        callback_data: text(i, "callback_data"),
    }
}
