//! Reconciliation: Meta's `pricing_analytics` for a WABA and a period against our usage rows,
//! per pricing category × country × pricing type. Meta counts messages under per-message
//! pricing, so the comparison is of PMP messages; a row that differs is a webhook we never
//! counted (or one Meta has not yet counted).

use std::collections::BTreeMap;
use std::str::FromStr;

use iso_currency::Currency;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::counting::{PMP, UsageRow, normalize_category};
use crate::rates::RateCard;

/// One data point of `pricing_analytics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsPoint {
    pub start: i64,
    pub country: String,
    pub category: String,
    pub pricing_type: String,
    pub volume: u64,
    /// Meta's cost in the WABA's currency, read from its JSON text (never through f64 math).
    pub cost: Option<Decimal>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnalyticsError {
    #[error("pricing_analytics answer without data points: {0}")]
    Shape(String),
}

/// The data points of `GET /{waba}?fields=pricing_analytics...` (`pricing_analytics.data[].
/// data_points[]`).
pub fn parse_analytics(body: &serde_json::Value) -> Result<Vec<AnalyticsPoint>, AnalyticsError> {
    let data = body
        .get("pricing_analytics")
        .unwrap_or(body)
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or_else(|| AnalyticsError::Shape("no pricing_analytics.data".into()))?;
    let mut out = Vec::new();
    for block in data {
        let Some(points) = block.get("data_points").and_then(|p| p.as_array()) else {
            continue;
        };
        for p in points {
            let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let volume = p
                .get("volume")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| AnalyticsError::Shape(format!("data point without volume: {p}")))?;
            out.push(AnalyticsPoint {
                start: p.get("start").and_then(|v| v.as_i64()).unwrap_or_default(),
                country: text("country").to_ascii_uppercase(),
                category: normalize_category(&text("pricing_category")),
                pricing_type: text("pricing_type").to_ascii_lowercase(),
                volume,
                cost: p
                    .get("cost")
                    .and_then(|c| Decimal::from_str(&c.to_string()).ok())
                    .or_else(|| {
                        p.get("cost")
                            .and_then(|c| Decimal::from_scientific(&c.to_string()).ok())
                    }),
            });
        }
    }
    Ok(out)
}

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub category: String,
    pub country: String,
    pub pricing_type: String,
    pub ours: u64,
    pub meta: u64,
    /// `ours - meta`: negative when we missed messages Meta counted.
    pub difference: i64,
    /// Meta's cost for these messages, if it reported one (in the account's currency).
    pub meta_cost: Option<Decimal>,
    /// Our estimate for the same messages from the rate card, only in the account's own
    /// currency (never a cost in another currency beside Meta's); `None` when the card has no
    /// rate for one of them, or no currency is known for the account.
    pub our_cost: Option<Decimal>,
}

/// The per-category, per-country, per-type comparison of a period (every group either side
/// has), and whether it balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub lines: Vec<DiffLine>,
    pub ours_total: u64,
    pub meta_total: u64,
}

impl Reconciliation {
    pub fn balanced(&self) -> bool {
        self.lines.iter().all(|l| l.difference == 0)
    }

    pub fn differences(&self) -> impl Iterator<Item = &DiffLine> {
        self.lines.iter().filter(|l| l.difference != 0)
    }
}

pub fn reconcile(ours: &[UsageRow], meta: &[AnalyticsPoint]) -> Reconciliation {
    reconcile_priced(ours, meta, None)
}

/// [`reconcile`], with our estimated cost beside Meta's when `pricing` gives the card and the
/// currency Meta bills the account in: like with like, or not at all.
pub fn reconcile_priced(
    ours: &[UsageRow],
    meta: &[AnalyticsPoint],
    pricing: Option<(&RateCard, Currency)>,
) -> Reconciliation {
    type Key = (String, String, String);
    let mut groups: BTreeMap<Key, (u64, u64, Option<Decimal>)> = BTreeMap::new();
    let mut costs: BTreeMap<Key, Option<Decimal>> = BTreeMap::new();
    for r in ours.iter().filter(|r| r.key.pricing_model == PMP) {
        let k = &r.key;
        let key = (
            k.category.clone(),
            k.country.clone(),
            k.pricing_type.clone(),
        );
        if let Some((card, currency)) = pricing {
            let cost = match r.counts.charged {
                0 => Some(Decimal::ZERO),
                charged => card
                    .rate_in(&k.country, &k.category, k.day, currency)
                    .map(|rate| rate.rate * Decimal::from(charged)),
            };
            let sum = costs.entry(key.clone()).or_insert(Some(Decimal::ZERO));
            *sum = sum.zip(cost).map(|(a, b)| a + b);
        }
        groups.entry(key).or_default().0 += r.counts.messages;
    }
    for p in meta {
        let g = groups
            .entry((
                p.category.clone(),
                p.country.clone(),
                p.pricing_type.clone(),
            ))
            .or_default();
        g.1 += p.volume;
        if let Some(c) = p.cost {
            g.2 = Some(g.2.unwrap_or_default() + c);
        }
    }
    let lines: Vec<DiffLine> = groups
        .into_iter()
        .map(
            |((category, country, pricing_type), (ours, meta, cost))| DiffLine {
                our_cost: match pricing {
                    Some(_) => costs
                        .get(&(category.clone(), country.clone(), pricing_type.clone()))
                        .copied()
                        .unwrap_or(Some(Decimal::ZERO)),
                    None => None,
                },
                category,
                country,
                pricing_type,
                ours,
                meta,
                difference: ours as i64 - meta as i64,
                meta_cost: cost,
            },
        )
        .collect();
    Reconciliation {
        ours_total: lines.iter().map(|l| l.ours).sum(),
        meta_total: lines.iter().map(|l| l.meta).sum(),
        lines,
    }
}

impl Reconciliation {
    pub fn render(&self, format: crate::report::Format) -> String {
        use crate::report::Format;
        let headers = [
            "category",
            "country",
            "pricing_type",
            "ours",
            "meta",
            "difference",
            "meta_cost",
            "our_cost",
        ];
        let cells = |l: &DiffLine| {
            vec![
                l.category.clone(),
                l.country.clone(),
                l.pricing_type.clone(),
                l.ours.to_string(),
                l.meta.to_string(),
                l.difference.to_string(),
                l.meta_cost
                    .map(|c| c.normalize().to_string())
                    .unwrap_or_default(),
                l.our_cost
                    .map(|c| c.normalize().to_string())
                    .unwrap_or_default(),
            ]
        };
        match format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(&serde_json::json!({
                    "balanced": self.balanced(),
                    "ours_total": self.ours_total,
                    "meta_total": self.meta_total,
                    "lines": self.lines.iter().map(|l| serde_json::json!({
                        "category": l.category, "country": l.country, "pricing_type": l.pricing_type,
                        "ours": l.ours, "meta": l.meta, "difference": l.difference,
                        "meta_cost": l.meta_cost.map(|c| c.normalize().to_string()),
                        "our_cost": l.our_cost.map(|c| c.normalize().to_string()),
                    })).collect::<Vec<_>>(),
                }))
                .unwrap_or_default();
                s.push('\n');
                s
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                let _ = w.write_record(headers);
                for l in &self.lines {
                    let _ = w.write_record(cells(l));
                }
                String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
            }
            Format::Table => {
                let rows: Vec<Vec<String>> = self.lines.iter().map(cells).collect();
                let widths: Vec<usize> = (0..headers.len())
                    .map(|i| {
                        rows.iter()
                            .map(|r| r[i].len())
                            .chain([headers[i].len()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let fmt = |cells: &[String]| {
                    cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if i >= 3 {
                                format!("{c:>w$}", w = widths[i])
                            } else {
                                format!("{c:<w$}", w = widths[i])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_owned()
                };
                let mut out = fmt(&headers.map(String::from));
                out.push('\n');
                for r in &rows {
                    out.push_str(&fmt(r));
                    out.push('\n');
                }
                out.push_str(&format!(
                    "ours {} · meta {} · {}\n",
                    self.ours_total,
                    self.meta_total,
                    if self.balanced() {
                        "balanced".to_owned()
                    } else {
                        format!("{} line(s) differ", self.differences().count())
                    }
                ));
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counting::{Counts, UsageKey};

    fn ours(category: &str, country: &str, kind: &str, n: u64) -> UsageRow {
        UsageRow {
            key: UsageKey {
                day: "2026-11-23".parse().unwrap(),
                waba_id: "W".into(),
                phone_number_id: "P".into(),
                category: category.into(),
                pricing_type: kind.into(),
                country: country.into(),
                pricing_model: PMP.into(),
            },
            counts: Counts {
                messages: n,
                charged: n,
                conversations: 0,
            },
        }
    }

    #[test]
    fn meta_points_parse_and_diff_by_category_country_and_type() {
        let body = serde_json::json!({"pricing_analytics": {"data": [{"data_points": [
            {"start": 1, "end": 2, "country": "BR", "pricing_category": "MARKETING", "pricing_type": "REGULAR", "phone_number": "1555", "volume": 3, "cost": 0.075},
            {"start": 2, "end": 3, "country": "BR", "pricing_category": "MARKETING", "pricing_type": "REGULAR", "phone_number": "1555", "volume": 2, "cost": 0.05},
            {"start": 1, "end": 2, "country": "IN", "pricing_category": "AUTHENTICATION_INTERNATIONAL", "pricing_type": "REGULAR", "phone_number": "1555", "volume": 1, "cost": 0.02}
        ]}]}, "id": "W"});
        let meta = parse_analytics(&body).unwrap();
        assert_eq!(meta[2].category, "authentication_international");
        assert_eq!(meta[0].cost, Some(Decimal::new(75, 3)));
        let r = reconcile(
            &[
                ours("marketing", "BR", "regular", 5),
                ours("authentication_international", "IN", "regular", 0),
            ],
            &meta,
        );
        assert!(!r.balanced());
        let d: Vec<_> = r.differences().collect();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].country.as_str(), d[0].difference), ("IN", -1));
        assert_eq!(r.lines[1].meta_cost, Some(Decimal::new(125, 3)));
        assert!(
            r.render(crate::report::Format::Table)
                .contains("1 line(s) differ")
        );
        assert!(parse_analytics(&serde_json::json!({"id": "W"})).is_err());
    }

    #[test]
    fn our_cost_stands_beside_metas_only_in_the_accounts_currency() {
        let meta = parse_analytics(&serde_json::json!({"pricing_analytics": {"data": [{"data_points": [
            {"start": 1, "end": 2, "country": "IN", "pricing_category": "MARKETING", "pricing_type": "REGULAR", "phone_number": "1555", "volume": 4, "cost": 3.4524}
        ]}]}, "id": "W"}))
        .unwrap();
        let card = RateCard::new(
            crate::rates::parse_csv(
                "market,category,currency,rate,effective_from\nIN,marketing,INR,0.8631,2026-01-01\nIN,marketing,USD,0.0107,2026-01-01\n"
                    .as_bytes(),
            )
            .unwrap(),
        );
        let rows = [ours("marketing", "IN", "regular", 4)];
        let inr = Currency::from_code("INR").unwrap();
        let r = reconcile_priced(&rows, &meta, Some((&card, inr)));
        assert_eq!(r.lines[0].our_cost, Some(Decimal::new(34524, 4)));
        assert_eq!(r.lines[0].meta_cost, r.lines[0].our_cost, "like with like");
        // A currency the card has no rate in: no estimate, rather than a wrong one.
        let brl = Currency::from_code("BRL").unwrap();
        assert_eq!(
            reconcile_priced(&rows, &meta, Some((&card, brl))).lines[0].our_cost,
            None
        );
        assert_eq!(reconcile(&rows, &meta).lines[0].our_cost, None);
        assert!(
            reconcile_priced(&rows, &meta, Some((&card, inr)))
                .render(crate::report::Format::Csv)
                .starts_with(
                    "category,country,pricing_type,ours,meta,difference,meta_cost,our_cost\n"
                )
        );
    }
}
