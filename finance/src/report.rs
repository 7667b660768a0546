//! Usage reports: the usage rows of a period grouped by any of day, month, business account,
//! phone number, category, pricing type, country and pricing model, with the estimated cost
//! from the rate card, as an aligned table, CSV or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use chrono::NaiveDate;
use iso_currency::Currency;
use rust_decimal::Decimal;

use crate::counting::{Counts, UsageRow};
use crate::period::Period;
use crate::rates::RateCard;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Day,
    Month,
    Waba,
    Phone,
    Category,
    PricingType,
    Country,
    Model,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Day => "day",
            Dimension::Month => "month",
            Dimension::Waba => "waba",
            Dimension::Phone => "phone_number_id",
            Dimension::Category => "category",
            Dimension::PricingType => "pricing_type",
            Dimension::Country => "country",
            Dimension::Model => "pricing_model",
        }
    }

    fn value(self, row: &UsageRow) -> String {
        let k = &row.key;
        match self {
            Dimension::Day => k.day.to_string(),
            Dimension::Month => k.day.format("%Y-%m").to_string(),
            Dimension::Waba => k.waba_id.clone(),
            Dimension::Phone => k.phone_number_id.clone(),
            Dimension::Category => k.category.clone(),
            Dimension::PricingType => k.pricing_type.clone(),
            Dimension::Country => k.country.clone(),
            Dimension::Model => k.pricing_model.clone(),
        }
    }
}

impl FromStr for Dimension {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "day" => Dimension::Day,
            "month" => Dimension::Month,
            "waba" | "account" => Dimension::Waba,
            "phone" | "phone_number" | "phone_number_id" | "number" => Dimension::Phone,
            "category" => Dimension::Category,
            "type" | "pricing_type" => Dimension::PricingType,
            "country" => Dimension::Country,
            "model" | "pricing_model" => Dimension::Model,
            other => {
                return Err(format!(
                    "unknown dimension {other:?}: day, month, waba, phone, category, type, country or model"
                ));
            }
        })
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown format {other:?}: table, csv or json")),
        }
    }
}

/// Charged messages the rate card has no rate for: left out of the cost, and said so.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingRate {
    pub country: String,
    pub category: String,
    /// The currency the rate was needed in (the business account's).
    pub currency: String,
    /// The first day that needed it.
    pub day: NaiveDate,
    /// Charged messages (or conversations) of this country and category without a rate.
    pub charged: u64,
}

impl MissingRate {
    /// The warning a report prints for it.
    pub fn warning(&self) -> String {
        format!(
            "no {} rate for {}/{} (from {}): {} charged not in the cost; add rows (or a * market) to the rate card and import it again",
            self.currency, self.country, self.category, self.day, self.charged
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("the accounts in this report are billed in several currencies ({}); a report is in one currency: report one account at a time (--waba)", .0.join(", "))]
    MixedCurrencies(Vec<String>),
    #[error("no rate card has been imported (usage rates import FILE), or report without cost")]
    NoRateCard,
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub group: Vec<String>,
    pub counts: Counts,
    /// Estimated cost, exact (not rounded), of the charged units that have a rate.
    pub cost: Option<Decimal>,
    /// Charged units without a rate: not in `cost` (never counted as zero cost silently).
    pub unpriced: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub period: Period,
    pub dimensions: Vec<Dimension>,
    pub currency: Option<Currency>,
    pub lines: Vec<Line>,
    pub total: Line,
    /// What the rate card lacked; each is printed as a warning with the report.
    pub missing: Vec<MissingRate>,
    /// Accounts with charged usage but no currency, on a card with several: (account, charged).
    pub no_currency: Vec<(String, u64)>,
}

impl Report {
    /// Every warning the report carries, in order.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.missing.iter().map(MissingRate::warning).collect();
        for (waba, charged) in &self.no_currency {
            out.push(format!(
                "no currency set for business account {waba} and the rate card has several: {charged} charged not in the cost; set it with usage rates currency {waba} CODE"
            ));
        }
        out
    }
}

/// Groups day rows and prices them. With a card, each row with charged units is priced at the
/// rate in force on its day; one without a rate is counted as unpriced, on its line and in
/// [`Report::missing`]. All rates used must be in one currency.
pub fn build(
    period: Period,
    rows: &[UsageRow],
    dimensions: &[Dimension],
    card: Option<&RateCard>,
) -> Result<Report, ReportError> {
    build_in(period, rows, dimensions, card, &BTreeMap::new())
}

/// [`build`], pricing each business account's rows in its currency (`currencies`, from
/// `usage rates currency`); an account without one takes the card's only currency, and on a
/// card with several its charged rows are unpriced, with a warning.
pub fn build_in(
    period: Period,
    rows: &[UsageRow],
    dimensions: &[Dimension],
    card: Option<&RateCard>,
    currencies: &BTreeMap<String, Currency>,
) -> Result<Report, ReportError> {
    if card.is_some_and(RateCard::is_empty) {
        return Err(ReportError::NoRateCard);
    }
    let mut missing: BTreeMap<(String, String, &'static str), (NaiveDate, u64)> = BTreeMap::new();
    let mut no_currency: BTreeMap<String, u64> = BTreeMap::new();
    let single = card.and_then(RateCard::single_currency);
    let mut used: BTreeMap<&'static str, Currency> = BTreeMap::new();
    let mut groups: BTreeMap<Vec<String>, (Counts, Decimal, u64)> = BTreeMap::new();
    let mut total = (Counts::default(), Decimal::ZERO, 0);
    for row in rows {
        let mut cost = Decimal::ZERO;
        let mut unpriced = 0;
        if let Some(card) = card
            && row.counts.charged > 0
        {
            let k = &row.key;
            let currency = currencies.get(&k.waba_id).copied().or(single);
            match currency.map(|c| (c, card.rate_in(&k.country, &k.category, k.day, c))) {
                Some((_, Some(rate))) => {
                    used.insert(rate.currency.code(), rate.currency);
                    cost = rate.rate * Decimal::from(row.counts.charged);
                }
                Some((c, None)) => {
                    unpriced = row.counts.charged;
                    let e = missing
                        .entry((k.country.clone(), k.category.clone(), c.code()))
                        .or_insert((k.day, 0));
                    e.0 = e.0.min(k.day);
                    e.1 += row.counts.charged;
                }
                None => {
                    unpriced = row.counts.charged;
                    *no_currency.entry(k.waba_id.clone()).or_default() += row.counts.charged;
                }
            }
        }
        let group: Vec<String> = dimensions.iter().map(|d| d.value(row)).collect();
        let g = groups.entry(group).or_default();
        g.0.add(&row.counts);
        g.1 += cost;
        g.2 += unpriced;
        total.0.add(&row.counts);
        total.1 += cost;
        total.2 += unpriced;
    }
    if used.len() > 1 {
        return Err(ReportError::MixedCurrencies(
            used.keys().map(|c| (*c).to_owned()).collect(),
        ));
    }
    let priced = card.is_some();
    let currency = used.into_values().next().or(single);
    Ok(Report {
        period,
        dimensions: dimensions.to_vec(),
        currency,
        lines: groups
            .into_iter()
            .map(|(group, (counts, cost, unpriced))| Line {
                group,
                counts,
                cost: priced.then_some(cost),
                unpriced,
            })
            .collect(),
        total: Line {
            group: Vec::new(),
            counts: total.0,
            cost: priced.then_some(total.1),
            unpriced: total.2,
        },
        missing: missing
            .into_iter()
            .map(
                |((country, category, currency), (day, charged))| MissingRate {
                    country,
                    category,
                    currency: currency.to_owned(),
                    day,
                    charged,
                },
            )
            .collect(),
        no_currency: no_currency.into_iter().collect(),
    })
}

impl Report {
    fn headers(&self) -> Vec<String> {
        let mut h: Vec<String> = self
            .dimensions
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        h.extend(["messages", "charged", "conversations"].map(String::from));
        if self.total.cost.is_some() {
            h.push(format!(
                "cost_{}",
                self.currency.map_or("", |c| c.code()).to_ascii_lowercase()
            ));
            if self.total.unpriced > 0 {
                h.push("unpriced_charged".into());
            }
        }
        h
    }

    fn cells(&self, line: &Line, rounded: bool) -> Vec<String> {
        let mut c = line.group.clone();
        c.push(line.counts.messages.to_string());
        c.push(line.counts.charged.to_string());
        c.push(line.counts.conversations.to_string());
        if let Some(cost) = line.cost {
            c.push(if rounded {
                self.rounded(cost)
            } else {
                cost.normalize().to_string()
            });
            if self.total.unpriced > 0 {
                c.push(line.unpriced.to_string());
            }
        }
        c
    }

    /// Rounded half-to-even to the currency's minor unit, for display.
    fn rounded(&self, cost: Decimal) -> String {
        let dp = self.currency.and_then(Currency::exponent).unwrap_or(2);
        let mut r = cost.round_dp(u32::from(dp));
        r.rescale(u32::from(dp));
        r.to_string()
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Csv => self.csv(),
            Format::Json => self.json(),
        }
    }

    fn table(&self) -> String {
        let mut headers = self.headers();
        let mut rows: Vec<Vec<String>> = self.lines.iter().map(|l| self.cells(l, true)).collect();
        let labels = self.dimensions.len().max(1);
        if self.dimensions.is_empty() {
            headers.insert(0, String::new());
            for r in &mut rows {
                r.insert(0, String::new());
            }
        }
        let mut total = vec![String::new(); labels];
        total[0] = "total".into();
        total.extend(self.cells(&self.total, true));
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| {
                rows.iter()
                    .chain(std::iter::once(&total))
                    .map(|r| r.get(i).map_or(0, String::len))
                    .chain(std::iter::once(headers[i].len()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric_from = labels;
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                if i >= numeric_from {
                    let _ = write!(s, "{c:>w$}", w = widths[i]);
                } else {
                    let _ = write!(s, "{c:<w$}", w = widths[i]);
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = format!("usage {}\n", self.period);
        out.push_str(&line(&headers));
        out.push('\n');
        let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        for r in rows.drain(..) {
            out.push_str(&line(&r));
            out.push('\n');
        }
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        out.push_str(&line(&total));
        out.push('\n');
        for w in self.warnings() {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }

    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(self.headers());
        for l in &self.lines {
            let _ = w.write_record(self.cells(l, false));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    fn json(&self) -> String {
        let line = |l: &Line| {
            let mut o = serde_json::Map::new();
            for (d, v) in self.dimensions.iter().zip(&l.group) {
                o.insert(d.name().into(), v.clone().into());
            }
            o.insert("messages".into(), l.counts.messages.into());
            o.insert("charged".into(), l.counts.charged.into());
            o.insert("conversations".into(), l.counts.conversations.into());
            if let Some(cost) = l.cost {
                // Money as a decimal string: JSON numbers are floats to most readers.
                o.insert("cost".into(), cost.normalize().to_string().into());
                o.insert("unpriced_charged".into(), l.unpriced.into());
            }
            serde_json::Value::Object(o)
        };
        let v = serde_json::json!({
            "period": {"from": self.period.from.to_string(), "to": self.period.to.to_string()},
            "group_by": self.dimensions.iter().map(|d| d.name()).collect::<Vec<_>>(),
            "currency": self.currency.map(|c| c.code()),
            "rows": self.lines.iter().map(line).collect::<Vec<_>>(),
            "total": line(&self.total),
            "warnings": self.warnings(),
        });
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counting::UsageKey;
    use crate::rates::parse_csv;

    fn row(day: &str, category: &str, kind: &str, country: &str, n: u64, charged: u64) -> UsageRow {
        UsageRow {
            key: UsageKey {
                day: day.parse().unwrap(),
                waba_id: "W".into(),
                phone_number_id: "P".into(),
                category: category.into(),
                pricing_type: kind.into(),
                country: country.into(),
                pricing_model: "PMP".into(),
            },
            counts: Counts {
                messages: n,
                charged,
                conversations: 0,
            },
        }
    }

    fn card(csv: &str) -> RateCard {
        RateCard::new(parse_csv(csv.as_bytes()).unwrap())
    }

    const CARD: &str = "market,category,currency,rate,effective_from
BR,marketing,USD,0.0625,2025-07-01
BR,marketing,USD,0.0700,2026-11-15
*,utility,USD,0.0080,2025-07-01
";

    #[test]
    fn groups_and_prices_by_the_rate_of_each_day() {
        let rows = [
            row("2026-11-14", "marketing", "regular", "BR", 3, 3),
            row("2026-11-15", "marketing", "regular", "BR", 2, 2),
            row("2026-11-15", "utility", "regular", "DE", 10, 10),
            row("2026-11-15", "utility", "free_customer_service", "XX", 7, 0),
        ];
        let period: Period = "2026-11".parse().unwrap();
        let r = build(period, &rows, &[Dimension::Category], Some(&card(CARD))).unwrap();
        assert_eq!(r.lines.len(), 2);
        // 3 × 0.0625 + 2 × 0.07 = 0.3275, exactly.
        assert_eq!(r.lines[0].cost, Some(Decimal::new(3275, 4)));
        assert_eq!(r.lines[1].cost, Some(Decimal::new(8, 2)));
        assert_eq!(r.total.cost, Some(Decimal::new(4075, 4)));
        assert_eq!(r.total.counts.messages, 22);
        let table = r.render(Format::Table);
        assert!(table.contains("cost_usd"), "{table}");
        assert!(table.contains("0.33"), "{table}");
        let csv = r.render(Format::Csv);
        assert!(csv.starts_with("category,messages,charged,conversations,cost_usd\n"));
        assert!(csv.contains("marketing,5,5,0,0.3275\n"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["total"]["cost"], "0.4075");
        assert_eq!(json["currency"], "USD");
    }

    #[test]
    fn the_2026_categories_are_priced_from_the_card() {
        let card = card(
            "market,category,currency,rate,effective_from
*,general_purpose_ai,USD,0.0150,2026-02-16
*,group_marketing,USD,0.0300,2026-02-03
*,group_utility,USD,0.0040,2026-02-03
*,group_service,USD,0.0010,2026-02-03
",
        );
        let rows = [
            row("2026-11-15", "general_purpose_ai", "regular", "US", 2, 2),
            row("2026-11-15", "group_marketing", "regular", "BR", 3, 3),
            row("2026-11-15", "group_utility", "regular", "IN", 5, 5),
            row("2026-11-15", "group_service", "regular", "IN", 10, 10),
        ];
        let r = build(
            "2026-11".parse().unwrap(),
            &rows,
            &[Dimension::Category],
            Some(&card),
        )
        .unwrap();
        // 2 × 0.015 + 3 × 0.03 + 5 × 0.004 + 10 × 0.001
        assert_eq!(r.total.cost, Some(Decimal::new(15, 2)));
        assert!(r.missing.is_empty());
    }

    #[test]
    fn a_missing_rate_is_a_warning_never_a_silent_zero_and_mixed_currencies_an_error() {
        let rows = [
            row("2025-06-30", "marketing", "regular", "BR", 1, 1),
            row("2026-11-15", "authentication", "regular", "IN", 1, 1),
            row("2026-11-15", "general_purpose_ai", "regular", "IN", 4, 4),
            row("2026-11-15", "utility", "regular", "IN", 2, 2),
            row("2026-11-15", "service", "free_customer_service", "IN", 1, 0),
        ];
        let period: Period = "2026-11".parse().unwrap();
        let r = build(period, &rows, &[Dimension::Category], Some(&card(CARD))).unwrap();
        assert_eq!(
            r.total.cost,
            Some(Decimal::new(160, 4)),
            "only utility is priced"
        );
        assert_eq!(r.total.unpriced, 6);
        let warnings: Vec<String> = r.missing.iter().map(MissingRate::warning).collect();
        assert_eq!(
            warnings,
            [
                "no USD rate for BR/marketing (from 2025-06-30): 1 charged not in the cost; add rows (or a * market) to the rate card and import it again",
                "no USD rate for IN/authentication (from 2026-11-15): 1 charged not in the cost; add rows (or a * market) to the rate card and import it again",
                "no USD rate for IN/general_purpose_ai (from 2026-11-15): 4 charged not in the cost; add rows (or a * market) to the rate card and import it again",
            ]
        );
        let table = r.render(Format::Table);
        assert!(table.contains("unpriced_charged"), "{table}");
        assert!(
            table.contains("warning: no USD rate for IN/general_purpose_ai"),
            "{table}"
        );
        let csv = r.render(Format::Csv);
        assert!(csv.contains("general_purpose_ai,4,4,0,0,4\n"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["total"]["unpriced_charged"], 6);
        assert_eq!(json["warnings"].as_array().unwrap().len(), 3);
        // A card in two currencies: each account's rows in its own; an account without one is
        // unpriced (and said so); two accounts in two currencies are two reports.
        let two = card(
            "market,category,currency,rate,effective_from\n*,marketing,USD,0.06,2025-01-01\n*,marketing,EUR,0.05,2025-01-01\n",
        );
        let mut in_eur = row("2026-11-15", "marketing", "regular", "DE", 2, 2);
        in_eur.key.waba_id = "W-EUR".into();
        let rows = [
            row("2026-11-15", "marketing", "regular", "BR", 1, 1),
            in_eur,
        ];
        let eur = Currency::from_code("EUR").unwrap();
        let usd = Currency::from_code("USD").unwrap();
        let only_eur = BTreeMap::from([("W-EUR".to_owned(), eur)]);
        let r = build_in(period, &rows, &[], Some(&two), &only_eur).unwrap();
        assert_eq!(r.currency, Some(eur));
        assert_eq!(r.total.cost, Some(Decimal::new(10, 2)), "2 × 0.05 EUR");
        assert_eq!(r.no_currency, [("W".to_owned(), 1)]);
        assert!(r.warnings()[0].contains("no currency set for business account W"));
        let both = BTreeMap::from([("W-EUR".to_owned(), eur), ("W".to_owned(), usd)]);
        assert_eq!(
            build_in(period, &rows, &[], Some(&two), &both),
            Err(ReportError::MixedCurrencies(vec![
                "EUR".into(),
                "USD".into()
            ]))
        );
        assert_eq!(
            build(period, &rows, &[], Some(&RateCard::default())),
            Err(ReportError::NoRateCard)
        );
        // Without a card, counts only.
        let r = build(period, &rows, &[Dimension::Country], None).unwrap();
        assert_eq!(r.total.cost, None);
        assert!(!r.render(Format::Table).contains("cost"));
    }
}
