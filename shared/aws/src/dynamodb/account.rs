//! The templates table (`pk` = `TPL#<waba>#<name>#<language>`) and the phone-number state table
//! (`PN#<waba>#<display number>`, `WABA#<waba>`, and the account's volume tiers
//! `VBP#<waba>#<month>#<category>#<region>`, which finance lists). Webhook-sourced values are written with
//! the entry time as their version: an older event never overwrites a newer one.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{n, num, s, text, update_conditionally};
use whatsapp_core::ports::{
    PhoneStateStore, StoreError, TemplateDefinition, TemplateRecord, TemplateStore,
};
use whatsapp_core::webhook::{
    AccountUpdate, BusinessCapabilityUpdate, PhoneNumberQualityUpdate, TemplateCategoryUpdate,
    TemplateStatusUpdate, VOLUME_TIER_EVENT,
};

/// The key of one volume tier: an account's tier for one month, pricing category and region.
pub fn volume_tier_pk(waba_id: &str, month: &str, category: &str, region: &str) -> String {
    format!("VBP#{waba_id}#{month}#{category}#{region}")
}

#[derive(Debug, Clone)]
pub struct DynamoTemplateStore {
    client: Client,
    table: String,
}

impl DynamoTemplateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTemplateStore {
            client,
            table: table.into(),
        }
    }
}

/// The templates-table key of a template.
pub fn template_pk(waba_id: &str, name: &str, language: &str) -> String {
    format!("TPL#{waba_id}#{name}#{language}")
}

impl TemplateStore for DynamoTemplateStore {
    async fn record_status(
        &self,
        waba_id: &str,
        u: &TemplateStatusUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut sets = vec![
            "tpl_status = :s",
            "status_at = :t",
            "template_id = :id",
            "rejected_reason = :r",
        ];
        let mut vals = vec![
            (":s", s(u.event.as_str())),
            (":t", n(at)),
            (":id", s(u.message_template_id.as_str())),
            (":r", s(u.reason.as_deref().unwrap_or("NONE"))),
        ];
        if let Some(c) = &u.message_template_category {
            sets.push("tpl_category = if_not_exists(tpl_category, :c)");
            vals.push((":c", s(c.as_str())));
        }
        let out = update_conditionally(
            &self.client,
            &self.table,
            s(template_pk(
                waba_id,
                &u.message_template_name,
                &u.message_template_language,
            )),
            "templates.record_status",
            &format!("SET {}", sets.join(", ")),
            "attribute_not_exists(status_at) OR status_at <= :t",
            vals,
        )
        .await?;
        Ok(out.applied)
    }

    async fn record_category(
        &self,
        waba_id: &str,
        u: &TemplateCategoryUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        // The impending form announces a change; only a completed one sets the category.
        let Some(new) = u
            .new_category
            .as_ref()
            .filter(|_| u.previous_category.is_some())
        else {
            return Ok(false);
        };
        let out = update_conditionally(
            &self.client,
            &self.table,
            s(template_pk(
                waba_id,
                &u.message_template_name,
                &u.message_template_language,
            )),
            "templates.record_category",
            "SET tpl_category = :c, category_at = :t, template_id = :id",
            "attribute_not_exists(category_at) OR category_at <= :t",
            vec![
                (":c", s(new.as_str())),
                (":t", n(at)),
                (":id", s(u.message_template_id.as_str())),
            ],
        )
        .await?;
        Ok(out.applied)
    }

    async fn template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(template_pk(waba_id, name, language)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("templates.get", e))?;
        Ok(out.item.map(|i| TemplateRecord {
            template_id: text(&i, "template_id"),
            status: text(&i, "tpl_status").map(|v| v.as_str().into()),
            category: text(&i, "tpl_category").map(|v| v.as_str().into()),
            reason: text(&i, "rejected_reason"),
            status_at: num(&i, "status_at"),
            parameter_format: text(&i, "parameter_format"),
            components: text(&i, "components"),
            edits: i
                .get("edits")
                .and_then(|e| e.as_l().ok())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_n().ok()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    async fn put_definition(
        &self,
        waba_id: &str,
        d: &TemplateDefinition,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut sets = vec![
            "tpl_status = :s",
            "status_at = :t",
            "tpl_category = :c",
            "components = :comp",
            "parameter_format = :pf",
            "rejected_reason = :r",
        ];
        let mut vals = vec![
            (":s", s(d.status.as_str())),
            (":t", n(at)),
            (":c", s(d.category.as_str())),
            (":comp", s(d.components.to_string())),
            (
                ":pf",
                s(d.parameter_format.as_deref().unwrap_or("POSITIONAL")),
            ),
            (":r", s(d.rejected_reason.as_deref().unwrap_or("NONE"))),
        ];
        if let Some(id) = &d.template_id {
            sets.push("template_id = :id");
            vals.push((":id", s(id.as_str())));
        }
        let out = update_conditionally(
            &self.client,
            &self.table,
            s(template_pk(waba_id, &d.name, &d.language)),
            "templates.put_definition",
            &format!("SET {}", sets.join(", ")),
            "attribute_not_exists(status_at) OR status_at <= :t",
            vals,
        )
        .await?;
        Ok(out.applied)
    }

    async fn record_edit(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(template_pk(waba_id, name, language)))
            .update_expression("SET edits = list_append(if_not_exists(edits, :none), :e)")
            .expression_attribute_values(":none", AttributeValue::L(vec![]))
            .expression_attribute_values(":e", AttributeValue::L(vec![n(at)]))
            .send()
            .await
            .map_err(|e| StoreError::new("templates.record_edit", e))?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct DynamoPhoneStateStore {
    client: Client,
    table: String,
}

impl DynamoPhoneStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoPhoneStateStore {
            client,
            table: table.into(),
        }
    }

    async fn versioned(
        &self,
        pk: String,
        version_attr: &str,
        sets: Vec<String>,
        mut vals: Vec<(&str, AttributeValue)>,
        at: i64,
    ) -> Result<bool, StoreError> {
        vals.push((":t", n(at)));
        let out = update_conditionally(
            &self.client,
            &self.table,
            s(pk),
            "phone_state.update",
            &format!("SET {version_attr} = :t, {}", sets.join(", ")),
            &format!("attribute_not_exists({version_attr}) OR {version_attr} <= :t"),
            vals,
        )
        .await?;
        Ok(out.applied)
    }
}

impl PhoneStateStore for DynamoPhoneStateStore {
    async fn record_quality(
        &self,
        waba_id: &str,
        u: &PhoneNumberQualityUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut sets = vec!["quality_event = :e".to_owned()];
        let mut vals = vec![(":e", s(u.event.as_str()))];
        if let Some(limit) = u.new_limit() {
            sets.push("messaging_limit = :l".into());
            vals.push((":l", s(limit.as_str())));
        }
        self.versioned(
            format!("PN#{waba_id}#{}", u.display_phone_number),
            "quality_event_at",
            sets,
            vals,
            at,
        )
        .await
    }

    async fn record_capability(
        &self,
        waba_id: &str,
        u: &BusinessCapabilityUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut sets = Vec::new();
        let mut vals = Vec::new();
        if let Some(t) = &u.max_daily_conversations_per_business {
            sets.push("messaging_limit = :l".to_owned());
            vals.push((":l", s(t.as_str())));
        }
        if let Some(p) = u.max_phone_numbers_per_business {
            sets.push("max_phone_numbers = :p".into());
            vals.push((":p", n(p)));
        }
        if sets.is_empty() {
            return Ok(false);
        }
        self.versioned(format!("WABA#{waba_id}"), "capability_at", sets, vals, at)
            .await
    }

    async fn record_account(
        &self,
        waba_id: &str,
        u: &AccountUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        if u.event == VOLUME_TIER_EVENT {
            // Not an account state: one item per tier, so that it leaves the account's
            // restrictions as they are and finance can list every month's tiers.
            let mut changed = false;
            for v in &u.volume_tier_info {
                // `region` is a DynamoDB reserved word: every attribute is prefixed.
                let sets = vec![
                    "vbp_waba_id = :w".to_owned(),
                    "vbp_month = :m".into(),
                    "vbp_category = :c".into(),
                    "vbp_region = :g".into(),
                    "vbp_tier = :tier".into(),
                ];
                let vals = vec![
                    (":w", s(waba_id)),
                    (":m", s(&v.effective_month)),
                    (":c", s(&v.pricing_category)),
                    (":g", s(&v.region)),
                    (":tier", s(&v.tier)),
                ];
                let pk =
                    volume_tier_pk(waba_id, &v.effective_month, &v.pricing_category, &v.region);
                changed |= self.versioned(pk, "tier_event_at", sets, vals, at).await?;
            }
            return Ok(changed);
        }
        let restrictions: Vec<&str> = u
            .restriction_info
            .iter()
            .map(|r| r.restriction_type.as_str())
            .collect();
        let until = u
            .restriction_info
            .iter()
            .filter_map(|r| r.expiration)
            .max()
            .unwrap_or(0);
        let sets = vec![
            "account_event = :e".to_owned(),
            "restrictions = :r".into(),
            "restricted_until = :u".into(),
        ];
        let vals = vec![
            (":e", s(u.event.as_str())),
            (":r", s(restrictions.join(","))),
            (":u", n(until)),
        ];
        self.versioned(
            format!("WABA#{waba_id}"),
            "account_event_at",
            sets,
            vals,
            at,
        )
        .await
    }

    async fn state(&self, pk: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("phone_state.get", e))?;
        Ok(out
            .item
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| match v {
                AttributeValue::S(x) => Some((k, x)),
                AttributeValue::N(x) => Some((k, x)),
                _ => None,
            })
            .collect())
    }
}
