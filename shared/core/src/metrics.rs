//! Custom CloudWatch metrics in the embedded metric format (EMF): one JSON document per line on
//! stdout, which CloudWatch Logs turns into metrics. No API call on the request path and no
//! `cloudwatch:PutMetricData` permission; Lambda passes JSON lines through unchanged under the
//! JSON log format. Hand-written on `serde_json`: the format is one small JSON object, and the
//! crates that emit it bring a metrics facade this project does not otherwise need.
//!
//! Namespace [`NAMESPACE`]; every document has the `Function` dimension, and counts by reason
//! add `Reason` (a fixed label, never user data).

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "WhatsAppMiddleware";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: `metrics` (name, unit, value) with the `Function` dimension and any
/// `extra` dimensions (name, value).
pub fn document(
    function: &str,
    extra: &[(&str, &str)],
    metrics: &[(&str, Unit, f64)],
    at_ms: i64,
) -> Value {
    let mut dimensions = vec!["Function"];
    dimensions.extend(extra.iter().map(|(k, _)| *k));
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("Function".into(), function.into());
    for (k, v) in extra {
        doc.insert((*k).into(), (*v).into());
    }
    for (name, _, value) in metrics {
        doc.insert((*name).into(), json!(value));
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
            "sender",
            &[("Reason", "window_closed")],
            &[("Rejects", Unit::Count, 3.0)],
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
}
