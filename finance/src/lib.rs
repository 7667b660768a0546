//! What WhatsApp costs, for finance: per-category usage counted exactly once from Meta's own
//! pricing verdicts, estimated cost from a versioned rate card, and reconciliation against
//! Meta's `pricing_analytics`.
//!
//! - [`country`]: a recipient's country from its calling code or its BSUID prefix.
//! - [`period`]: the periods reports are asked for (`2026-11`, `2026-11-23`, `FROM..TO`).
//! - [`counting`]: the pure rule that turns one number's priced messages of a day into counters.
//! - [`rates`]: the rate card (CSV in, decimal money out) and its lookups.
//! - [`report`]: usage grouped by any dimensions, costed, as a table, CSV or JSON.
//! - [`reconcile`]: our counts against Meta's `pricing_analytics`, per category and country.
//! - [`store`]: the DynamoDB tables (usage, rate card) and the messages table's usage index.
//! - [`refresh`]: recomputes days of usage from the messages table, as absolute values.
//! - [`tiers`]: the accounts' volume-based pricing tiers, as Meta reports them.
//! - [`chart`]: usage per category per day as an SVG chart (`usage chart`).
//! - [`cli`]: the `usage` command line, also `wactl usage`.

pub mod chart;
pub mod cli;
pub mod counting;
pub mod country;
pub mod period;
pub mod rates;
pub mod reconcile;
pub mod refresh;
pub mod report;
pub mod store;
pub mod tiers;

pub use counting::{Counts, PricedMessage, UsageKey, UsageRow};
pub use period::Period;
