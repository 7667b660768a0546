//! The accounts' volume tiers (`account_update` with `VOLUME_BASED_PRICING_TIER_UPDATE`, since
//! 1 Oct 2025): Meta prices some categories per month at the tier an account's volume reached in
//! a region. The webhook keeps each tier in the phone-state table
//! (`VBP#<waba>#<month>#<category>#<region>`); finance lists them beside the rate card, which
//! holds list prices: a month priced at a tier's rates needs the tier's rows in the card.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::report::Format;

/// One account's tier for a month, pricing category and region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct VolumeTier {
    pub waba_id: String,
    pub effective_month: String,
    pub pricing_category: String,
    pub region: String,
    pub tier: String,
    /// When Meta reported it (the webhook entry's time, epoch s).
    pub reported_at: i64,
}

/// The volume tiers in the phone-state table.
#[derive(Debug, Clone)]
pub struct TierTable {
    client: Client,
    table: String,
}

impl TierTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        TierTable {
            client,
            table: table.into(),
        }
    }

    /// Every tier, or one account's, sorted by account, month, category and region. A scan of
    /// the phone-state table (a few items per number and account): paged to the end.
    pub async fn list(
        &self,
        waba_id: Option<&str>,
    ) -> Result<Vec<VolumeTier>, aws_sdk_dynamodb::Error> {
        let prefix = match waba_id {
            Some(w) => format!("VBP#{w}#"),
            None => "VBP#".to_owned(),
        };
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            let text = |i: &std::collections::HashMap<String, AttributeValue>, k: &str| {
                i.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            for i in page.items() {
                out.push(VolumeTier {
                    waba_id: text(i, "vbp_waba_id"),
                    effective_month: text(i, "vbp_month"),
                    pricing_category: text(i, "vbp_category"),
                    region: text(i, "vbp_region"),
                    tier: text(i, "vbp_tier"),
                    reported_at: i
                        .get("tier_event_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                });
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The tiers as a table, CSV or JSON.
pub fn render(tiers: &[VolumeTier], format: Format) -> String {
    if format == Format::Json {
        let mut s = serde_json::to_string_pretty(tiers).unwrap_or_default();
        s.push('\n');
        return s;
    }
    let sep = if format == Format::Csv { "," } else { "  " };
    let mut out = ["waba", "month", "category", "region", "tier", "reported_at"].join(sep);
    out.push('\n');
    for t in tiers {
        out.push_str(
            &[
                t.waba_id.as_str(),
                &t.effective_month,
                &t.pricing_category,
                &t.region,
                &t.tier,
                &t.reported_at.to_string(),
            ]
            .join(sep),
        );
        out.push('\n');
    }
    out
}
