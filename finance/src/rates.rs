//! The rate card: what Meta charges per unit, by market (an ISO country, or `*` for every
//! country the card does not name: Meta's "Other" market) × pricing category, from an effective
//! date, in a currency. Finance keeps it as a CSV file and imports it with
//! `usage rates import`; a new price is a new row with a later `effective_from`, so past
//! reports keep the price that applied then.
//!
//! ```text
//! market,category,currency,rate,effective_from
//! BR,marketing,USD,0.0625,2025-07-01
//! *,utility,USD,0.0080,2025-07-01
//! ```
//!
//! A card may hold several currencies: Meta bills each business account in its own (eight more
//! since 1 Apr 2026, AED to SGD), so a row is one market × category × currency × date, and a
//! report prices each account's usage in the currency set for it (`usage rates currency`).
//!
//! Money is `rust_decimal::Decimal` end to end: parsed from the CSV's text, multiplied by
//! counts, summed, and rounded to the currency's minor unit only for display.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::NaiveDate;
use iso_currency::Currency;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::counting::normalize_category;

/// The market that applies to every country without a row of its own.
pub const OTHER_MARKET: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub market: String,
    pub category: String,
    #[serde(serialize_with = "currency_code")]
    pub currency: Currency,
    /// Per charged unit (message under PMP, conversation under CBP).
    pub rate: Decimal,
    pub effective_from: NaiveDate,
}

fn currency_code<S: serde::Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.code())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateCardError {
    #[error("rate card line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error(
        "rate card line {line}: unknown currency {code:?} (an ISO 4217 code such as USD, EUR, INR)"
    )]
    UnknownCurrency { line: u64, code: String },
    #[error("rate card line {line}: bad rate {value:?} (a non-negative decimal such as 0.0625)")]
    BadRate { line: u64, value: String },
    #[error("rate card line {line}: bad effective_from {value:?} (YYYY-MM-DD)")]
    BadDate { line: u64, value: String },
    #[error(
        "rate card line {line}: bad market {value:?} (an ISO 3166 alpha-2 code, or * for every other country)"
    )]
    BadMarket { line: u64, value: String },
    #[error("rate card line {line}: empty category")]
    BadCategory { line: u64 },
    #[error(
        "rate card line {line}: {market}/{category} in {currency} from {effective_from} is already on line {first}"
    )]
    Duplicate {
        line: u64,
        first: u64,
        market: String,
        category: String,
        currency: String,
        effective_from: NaiveDate,
    },
    #[error("the rate card has no rows")]
    Empty,
}

#[derive(serde::Deserialize)]
struct CsvRow {
    market: String,
    category: String,
    currency: String,
    rate: String,
    effective_from: String,
}

/// Parses a rate-card CSV (header `market,category,currency,rate,effective_from`), reporting
/// the first bad line with what is wrong with it.
pub fn parse_csv(input: impl Read) -> Result<Vec<Rate>, RateCardError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut out: Vec<Rate> = Vec::new();
    let mut lines: BTreeMap<(String, String, &'static str, NaiveDate), u64> = BTreeMap::new();
    for row in reader.deserialize::<CsvRow>() {
        let row = row.map_err(|e| RateCardError::Csv {
            line: e.position().map_or(0, |p| p.line()),
            message: match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => format!(
                    "{err} (the header must be market,category,currency,rate,effective_from)"
                ),
                _ => e.to_string(),
            },
        })?;
        // The header is line 1.
        let line = out.len() as u64 + 2;
        let market = row.market.to_ascii_uppercase();
        if market != OTHER_MARKET
            && !(market.len() == 2 && market.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(RateCardError::BadMarket {
                line,
                value: row.market,
            });
        }
        let category = normalize_category(&row.category);
        if category.is_empty() {
            return Err(RateCardError::BadCategory { line });
        }
        let currency = Currency::from_code(&row.currency.to_ascii_uppercase()).ok_or(
            RateCardError::UnknownCurrency {
                line,
                code: row.currency.clone(),
            },
        )?;
        let rate = Decimal::from_str_exact(&row.rate)
            .ok()
            .filter(|r| !r.is_sign_negative())
            .ok_or(RateCardError::BadRate {
                line,
                value: row.rate.clone(),
            })?;
        let effective_from =
            NaiveDate::parse_from_str(&row.effective_from, "%Y-%m-%d").map_err(|_| {
                RateCardError::BadDate {
                    line,
                    value: row.effective_from.clone(),
                }
            })?;
        if let Some(first) = lines.insert(
            (
                market.clone(),
                category.clone(),
                currency.code(),
                effective_from,
            ),
            line,
        ) {
            return Err(RateCardError::Duplicate {
                line,
                first,
                market,
                category,
                currency: currency.code().to_owned(),
                effective_from,
            });
        }
        out.push(Rate {
            market,
            category,
            currency,
            rate: rate.normalize(),
            effective_from,
        });
    }
    if out.is_empty() {
        return Err(RateCardError::Empty);
    }
    Ok(out)
}

/// The whole card, indexed for lookups.
#[derive(Debug, Clone, Default)]
pub struct RateCard {
    /// (currency, market, category) → rates by effective date.
    by_market: BTreeMap<(&'static str, String, String), BTreeMap<NaiveDate, Rate>>,
}

impl RateCard {
    pub fn new(rates: impl IntoIterator<Item = Rate>) -> Self {
        let mut card = RateCard::default();
        for r in rates {
            card.by_market
                .entry((r.currency.code(), r.market.clone(), r.category.clone()))
                .or_default()
                .insert(r.effective_from, r);
        }
        card
    }

    pub fn is_empty(&self) -> bool {
        self.by_market.is_empty()
    }

    pub fn rates(&self) -> impl Iterator<Item = &Rate> {
        self.by_market.values().flat_map(BTreeMap::values)
    }

    /// The currencies the card has rates in.
    pub fn currencies(&self) -> Vec<Currency> {
        let mut out: Vec<Currency> = Vec::new();
        for r in self.rates() {
            if !out.contains(&r.currency) {
                out.push(r.currency);
            }
        }
        out.sort_by_key(|c| c.code());
        out
    }

    /// The card's currency when it has only one.
    pub fn single_currency(&self) -> Option<Currency> {
        match self.currencies().as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// The rate in force on `day` for a country and category in `currency`: the country's own
    /// row if it has one for that category, else the `*` market's; the latest `effective_from`
    /// not after `day`.
    pub fn rate_in(
        &self,
        country: &str,
        category: &str,
        day: NaiveDate,
        currency: Currency,
    ) -> Option<&Rate> {
        let find = |market: &str| {
            self.by_market
                .get(&(currency.code(), market.to_owned(), category.to_owned()))
                .and_then(|by_date| by_date.range(..=day).next_back().map(|(_, r)| r))
        };
        find(country).or_else(|| find(OTHER_MARKET))
    }

    /// [`RateCard::rate_in`] the card's only currency (`None` when it has several).
    pub fn rate_for(&self, country: &str, category: &str, day: NaiveDate) -> Option<&Rate> {
        self.rate_in(country, category, day, self.single_currency()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "market,category,currency,rate,effective_from
BR,marketing,USD,0.0625,2025-07-01
BR,marketing,USD,0.0700,2026-11-15
*,marketing,USD,0.0500,2025-07-01
*,utility,usd,0.0080,2025-07-01
IN,authentication-international,USD,0.0280,2025-07-01
";

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn rates_apply_from_their_effective_date() {
        let card = RateCard::new(parse_csv(CARD.as_bytes()).unwrap());
        let rate = |c: &str, cat: &str, day: &str| card.rate_for(c, cat, d(day)).map(|r| r.rate);
        assert_eq!(
            rate("BR", "marketing", "2026-11-14"),
            Some(Decimal::new(625, 4))
        );
        assert_eq!(
            rate("BR", "marketing", "2026-11-15"),
            Some(Decimal::new(7, 2))
        );
        assert_eq!(
            rate("DE", "marketing", "2026-11-15"),
            Some(Decimal::new(5, 2))
        );
        assert_eq!(
            rate("DE", "utility", "2026-11-15"),
            Some(Decimal::new(8, 3))
        );
        assert_eq!(
            rate("IN", "authentication_international", "2026-01-01"),
            Some(Decimal::new(28, 3))
        );
        assert_eq!(rate("BR", "marketing", "2025-06-30"), None);
        assert_eq!(rate("BR", "authentication", "2026-01-01"), None);
    }

    #[test]
    fn the_example_card_parses() {
        let card =
            RateCard::new(parse_csv(include_str!("../rates.example.csv").as_bytes()).unwrap());
        let day: NaiveDate = "2026-11-23".parse().unwrap();
        assert_eq!(
            card.rate_for("BR", "marketing", day).map(|r| r.rate),
            Some(Decimal::new(25, 3))
        );
        assert_eq!(
            card.rate_for("MX", "service", day)
                .map(|r| r.currency.code()),
            Some("USD")
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let with = |line: &str| parse_csv(format!("{}\n{line}\n", CARD.trim_end()).as_bytes());
        assert_eq!(
            with("BR,utility,XYZ,0.01,2026-01-01"),
            Err(RateCardError::UnknownCurrency {
                line: 7,
                code: "XYZ".into()
            })
        );
        assert_eq!(
            with("BR,utility,USD,-0.01,2026-01-01"),
            Err(RateCardError::BadRate {
                line: 7,
                value: "-0.01".into()
            })
        );
        assert_eq!(
            with("BR,utility,USD,0.01e2,2026-01-01"),
            Err(RateCardError::BadRate {
                line: 7,
                value: "0.01e2".into()
            })
        );
        assert_eq!(
            with("BR,utility,USD,0.01,01/01/2026"),
            Err(RateCardError::BadDate {
                line: 7,
                value: "01/01/2026".into()
            })
        );
        assert_eq!(
            with("Brazil,utility,USD,0.01,2026-01-01"),
            Err(RateCardError::BadMarket {
                line: 7,
                value: "Brazil".into()
            })
        );
        assert!(matches!(
            with("BR,marketing,USD,0.09,2026-11-15"),
            Err(RateCardError::Duplicate {
                line: 7,
                first: 3,
                ..
            })
        ));
        assert!(matches!(
            parse_csv("market,cat\nBR,x\n".as_bytes()),
            Err(RateCardError::Csv { .. })
        ));
        assert_eq!(
            parse_csv("market,category,currency,rate,effective_from\n".as_bytes()),
            Err(RateCardError::Empty)
        );
    }

    #[test]
    fn a_card_holds_several_currencies_and_prices_in_the_one_asked_for() {
        let card = RateCard::new(
            parse_csv(
                "market,category,currency,rate,effective_from
IN,marketing,USD,0.0107,2026-01-01
IN,marketing,INR,0.8631,2026-01-01
*,marketing,INR,2.50,2026-01-01
"
                .as_bytes(),
            )
            .unwrap(),
        );
        let day = d("2026-11-23");
        let inr = Currency::from_code("INR").unwrap();
        let usd = Currency::from_code("USD").unwrap();
        assert_eq!(card.currencies(), [inr, usd]);
        assert_eq!(card.single_currency(), None);
        assert_eq!(
            card.rate_in("IN", "marketing", day, inr).map(|r| r.rate),
            Some(Decimal::new(8631, 4))
        );
        assert_eq!(
            card.rate_in("IN", "marketing", day, usd).map(|r| r.rate),
            Some(Decimal::new(107, 4))
        );
        // No USD row for the other market: no USD rate, never the INR one.
        assert_eq!(card.rate_in("BR", "marketing", day, usd), None);
        assert_eq!(card.rate_for("IN", "marketing", day), None, "ambiguous");
    }
}
