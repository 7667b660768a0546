//! Report periods: a month (`2026-11`), a day (`2026-11-23`) or an inclusive range of days
//! (`2026-11-01..2026-11-15`). Days are UTC days, as usage is filed.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, NaiveDate};

/// The longest period a report or refresh may span.
pub const MAX_DAYS: u64 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    /// Inclusive.
    pub to: NaiveDate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodError {
    #[error(
        "bad period {0:?}: expected YYYY-MM, YYYY-MM-DD or FROM..TO (inclusive days, YYYY-MM-DD)"
    )]
    Syntax(String),
    #[error("bad period {0:?}: it ends before it starts")]
    Reversed(String),
    #[error("bad period {0:?}: longer than {MAX_DAYS} days")]
    TooLong(String),
}

impl Period {
    pub fn day(day: NaiveDate) -> Self {
        Period { from: day, to: day }
    }

    /// Every day of the period, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// The months the period touches, as their first days.
    pub fn months(&self) -> Vec<NaiveDate> {
        let mut out: Vec<NaiveDate> = self.days().map(first_of_month).collect();
        out.dedup();
        out
    }

    /// `[start, end)` in epoch seconds (UTC midnights).
    pub fn epoch_bounds(&self) -> (i64, i64) {
        let start = self.from.and_time(chrono::NaiveTime::MIN).and_utc();
        let end = (self.to + Days::new(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        (start.timestamp(), end.timestamp())
    }

    /// The `lookback` days ending with `today` (at least today).
    pub fn ending(today: NaiveDate, lookback: u64) -> Self {
        let lookback = lookback.clamp(1, MAX_DAYS);
        Period {
            from: today - Days::new(lookback - 1),
            to: today,
        }
    }
}

pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The last day of `first`'s month.
pub fn last_of_month(first: NaiveDate) -> NaiveDate {
    let next = first_of_month(first)
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    next - Days::new(1)
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let syntax = || PeriodError::Syntax(s.to_owned());
        let day = |t: &str| NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").map_err(|_| syntax());
        let period = if let Some((a, b)) = text.split_once("..") {
            Period {
                from: day(a)?,
                to: day(b)?,
            }
        } else if text.len() == 7 {
            let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
                .map_err(|_| syntax())?;
            Period {
                from: first,
                to: last_of_month(first),
            }
        } else {
            Period::day(day(text)?)
        };
        if period.to < period.from {
            return Err(PeriodError::Reversed(s.to_owned()));
        }
        if (period.to - period.from).num_days() >= MAX_DAYS as i64 {
            return Err(PeriodError::TooLong(s.to_owned()));
        }
        Ok(period)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}..{}", self.from, self.to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn parses_months_days_and_ranges() {
        let p: Period = "2026-02".parse().unwrap();
        assert_eq!((p.from, p.to), (d("2026-02-01"), d("2026-02-28")));
        assert_eq!(p.days().count(), 28);
        let p: Period = "2026-11-23".parse().unwrap();
        assert_eq!((p.from, p.to), (d("2026-11-23"), d("2026-11-23")));
        let p: Period = "2026-10-30..2026-11-02".parse().unwrap();
        assert_eq!(p.days().count(), 4);
        assert_eq!(p.months(), [d("2026-10-01"), d("2026-11-01")]);
        assert_eq!(p.epoch_bounds(), (1_793_318_400, 1_793_664_000));
    }

    #[test]
    fn bad_periods_say_what_is_wrong() {
        for bad in ["2026-13", "2026-11-31", "last month", "2026-11-02..", ""] {
            assert_eq!(
                bad.parse::<Period>(),
                Err(PeriodError::Syntax(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            "2026-11-02..2026-11-01".parse::<Period>(),
            Err(PeriodError::Reversed(_))
        ));
        assert!(matches!(
            "2025-01-01..2026-06-01".parse::<Period>(),
            Err(PeriodError::TooLong(_))
        ));
        assert!(
            PeriodError::Syntax("x".into())
                .to_string()
                .contains("YYYY-MM")
        );
    }
}
