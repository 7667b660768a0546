//! Custom CloudWatch metrics in the embedded metric format (EMF): one JSON document per line on
//! stdout, which CloudWatch Logs turns into metrics. No API call on the request path and no
//! `cloudwatch:PutMetricData` permission; Lambda passes JSON lines through unchanged under the
//! JSON log format. Hand-written on `serde_json`: the format is one small JSON object, and the
//! crates that emit it bring a metrics facade this project does not otherwise need.
//!
//! Every metric the code emits is a constant of [`catalog`], and [`document`] takes only those:
//! the dashboard and the alarms are checked against the same list, by name. Namespace
//! [`NAMESPACE`]; every document has the `Function` dimension; the others are fixed labels
//! (`Reason`, `Category`) or the business's own phone number ID (`PhoneNumberId`), never user
//! data.

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "WhatsAppMiddleware";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One metric the code emits: its name, the function that emits it (the `Function`
/// dimension), its other dimensions, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub function: &'static str,
    pub dimensions: &'static [&'static str],
    pub unit: Unit,
    pub meaning: &'static str,
}

/// Every metric, by the function that emits it.
pub mod catalog {
    use super::{Metric, Unit};

    const fn m(
        name: &'static str,
        function: &'static str,
        dimensions: &'static [&'static str],
        unit: Unit,
        meaning: &'static str,
    ) -> Metric {
        Metric {
            name,
            function,
            dimensions,
            unit,
            meaning,
        }
    }

    pub const WEBHOOK_LATENCY: Metric = m(
        "WebhookLatency",
        "webhook",
        &[],
        Unit::Milliseconds,
        "the handler's time for one POST, to the acknowledgement",
    );
    pub const WEBHOOK_ITEMS: Metric = m(
        "WebhookItems",
        "webhook",
        &[],
        Unit::Count,
        "items (messages, statuses, changes) per POST",
    );
    pub const WINDOW_HITS: Metric = m(
        "WindowHits",
        "webhook",
        &[],
        Unit::Count,
        "inbound messages that opened or extended a service window",
    );
    pub const WEBHOOK_NOT_CONFIGURED: Metric = m(
        "WebhookNotConfigured",
        "webhook",
        &[],
        Unit::Count,
        "requests refused because the app secret or verify token is not set",
    );
    pub const WEBHOOK_QUARANTINED: Metric = m(
        "EventsQuarantined",
        "webhook",
        &[],
        Unit::Count,
        "signed bodies or values kept in the quarantine bucket because they are malformed",
    );
    pub const PROCESSOR_QUARANTINED: Metric = m(
        "EventsQuarantined",
        "event-processor",
        &[],
        Unit::Count,
        "queued values kept in the quarantine bucket because they are malformed",
    );
    pub const SENDS: Metric = m("Sends", "sender", &[], Unit::Count, "jobs Meta accepted");
    pub const REJECTS: Metric = m(
        "Rejects",
        "sender",
        &["Reason"],
        Unit::Count,
        "jobs refused by policy or contract, by reason",
    );
    pub const FAILURES: Metric = m(
        "Failures",
        "sender",
        &["Reason"],
        Unit::Count,
        "jobs that ended failed (Meta or transport errors, retries exhausted), by reason",
    );
    pub const GRAPH_THROTTLED: Metric = m(
        "GraphThrottled",
        "sender",
        &["Reason"],
        Unit::Count,
        "sends Meta refused with a rate limit (Reason 130429: the number's throughput, 131056: one recipient)",
    );
    pub const QUALITY_SCORE: Metric = m(
        "QualityScore",
        "quality-poller",
        &["PhoneNumberId"],
        Unit::None,
        "the number's quality rating: 3 GREEN, 2 YELLOW, 1 RED, 0 unknown",
    );
    pub const MESSAGING_LIMIT: Metric = m(
        "MessagingLimit",
        "quality-poller",
        &["PhoneNumberId"],
        Unit::Count,
        "the portfolio's unique users per 24 h (not emitted when unlimited)",
    );
    pub const THROUGHPUT_MPS: Metric = m(
        "ThroughputMps",
        "quality-poller",
        &["PhoneNumberId"],
        Unit::Count,
        "the number's throughput cap, messages per second (80 or 1,000)",
    );
    pub const THROUGHPUT_SHARE: Metric = m(
        "ThroughputShare",
        "quality-poller",
        &["PhoneNumberId"],
        Unit::None,
        "the number's share of the deployment's summed throughput caps (0 to 1)",
    );
    pub const MARKETING_PAUSED: Metric = m(
        "MarketingPaused",
        "quality-poller",
        &["PhoneNumberId"],
        Unit::Count,
        "1 while marketing sends are paused on the number, else 0",
    );
    pub const NUMBERS_MARKETING_PAUSED: Metric = m(
        "NumbersMarketingPaused",
        "quality-poller",
        &[],
        Unit::Count,
        "numbers with marketing paused, per run",
    );
    pub const QUALITY_DROPS: Metric = m(
        "QualityDrops",
        "quality-poller",
        &[],
        Unit::Count,
        "numbers whose quality rating fell since the last run",
    );
    pub const POLL_FAILURES: Metric = m(
        "PollFailures",
        "quality-poller",
        &["Reason"],
        Unit::Count,
        "numbers a run could not poll (rate_limited, access_token_invalid, graph_error, store_error, secret_unavailable)",
    );
    pub const USAGE_MESSAGES: Metric = m(
        "UsageMessages",
        "usage-aggregator",
        &["Category"],
        Unit::Count,
        "messages in the usage table for one UTC day (the metric's timestamp), per category",
    );
    pub const USAGE_CHARGED: Metric = m(
        "UsageCharged",
        "usage-aggregator",
        &["Category"],
        Unit::Count,
        "charged messages in the usage table for one UTC day, per category",
    );

    pub const ALL: &[Metric] = &[
        WEBHOOK_LATENCY,
        WEBHOOK_ITEMS,
        WINDOW_HITS,
        WEBHOOK_NOT_CONFIGURED,
        WEBHOOK_QUARANTINED,
        PROCESSOR_QUARANTINED,
        SENDS,
        REJECTS,
        FAILURES,
        GRAPH_THROTTLED,
        QUALITY_SCORE,
        MESSAGING_LIMIT,
        THROUGHPUT_MPS,
        THROUGHPUT_SHARE,
        MARKETING_PAUSED,
        NUMBERS_MARKETING_PAUSED,
        QUALITY_DROPS,
        POLL_FAILURES,
        USAGE_MESSAGES,
        USAGE_CHARGED,
    ];

    /// The catalog entry for a metric name emitted by `function`.
    pub fn find(function: &str, name: &str) -> Option<&'static Metric> {
        ALL.iter()
            .find(|m| m.function == function && m.name == name)
    }
}

/// One EMF document: `metrics` (metric, value), all from one function and with the same
/// dimensions, and the values of those dimensions in `extra` (name, value), in the order the
/// metric names them.
///
/// # Panics
/// When the metrics disagree on their function or dimensions, or `extra` names other
/// dimensions: a programming error, caught by every test that emits.
pub fn document(extra: &[(&str, &str)], metrics: &[(Metric, f64)], at_ms: i64) -> Value {
    let first = metrics
        .first()
        .map(|(m, _)| *m)
        .expect("a document holds a metric");
    let names: Vec<&str> = extra.iter().map(|(k, _)| *k).collect();
    for (m, _) in metrics {
        assert!(
            m.function == first.function && m.dimensions == names.as_slice(),
            "metric {} takes dimensions {:?}, given {:?}",
            m.name,
            m.dimensions,
            names
        );
    }
    let mut dimensions = vec!["Function"];
    dimensions.extend(names);
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": metrics.iter().map(|(m, _)| json!({"Name": m.name, "Unit": m.unit.as_str()})).collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("Function".into(), first.function.into());
    for (k, v) in extra {
        doc.insert((*k).into(), (*v).into());
    }
    for (m, value) in metrics {
        doc.insert(m.name.into(), json!(value));
    }
    Value::Object(doc)
}

/// Writes documents to stdout, one line each.
pub fn emit(documents: &[Value]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for d in documents {
        let _ = writeln!(out, "{d}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_emf_specification() {
        let d = document(
            &[("Reason", "window_closed")],
            &[(catalog::REJECTS, 3.0)],
            1_795_435_200_000,
        );
        let cw = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], NAMESPACE);
        assert_eq!(cw["Dimensions"], json!([["Function", "Reason"]]));
        assert_eq!(cw["Metrics"], json!([{"Name": "Rejects", "Unit": "Count"}]));
        assert_eq!(d["_aws"]["Timestamp"], 1_795_435_200_000i64);
        // Every dimension and metric named is a top-level member of the document.
        assert_eq!(d["Function"], "sender");
        assert_eq!(d["Reason"], "window_closed");
        assert_eq!(d["Rejects"], 3.0);
    }

    #[test]
    #[should_panic(expected = "takes dimensions")]
    fn a_metric_with_the_wrong_dimensions_is_refused() {
        document(&[], &[(catalog::REJECTS, 1.0)], 0);
    }

    #[test]
    fn names_are_unique_per_function_and_dimensions_carry_no_user_data() {
        let mut seen = std::collections::BTreeSet::new();
        for m in catalog::ALL {
            assert!(seen.insert((m.function, m.name)), "{} twice", m.name);
            for d in m.dimensions {
                assert!(
                    ["Reason", "Category", "PhoneNumberId"].contains(d),
                    "{}: dimension {d} is not one of the fixed, non-personal ones",
                    m.name
                );
            }
        }
    }
}
