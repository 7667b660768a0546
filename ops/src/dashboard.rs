//! The stack's CloudWatch dashboard (`AWS::CloudWatch::Dashboard`, named after the stack).
//!
//! [`body`] builds it from the metric catalog, so that every metric it plots is one the code
//! emits, with the dimensions the code gives it; the per-number, per-reason and per-category
//! graphs are `SEARCH` expressions, which pick up every number, reason and category without the
//! template naming them. The body holds CloudFormation `!Sub` references (`${AWS::Region}`,
//! `${SendDLQ.QueueName}`, `${WebhookFunction}`) for what only the stack knows.
//!
//! [`template_block`] is the text between the markers in `infra/template.yaml`; the crate's
//! test fails when the template's copy differs, and rewrites it with `UPDATE_DASHBOARD=1`.

use serde_json::{Value, json};
use whatsapp_core::metrics::{Metric, NAMESPACE, catalog as c};

/// The markers around the generated resource in the template.
pub const BEGIN: &str = "  # >>> dashboard: generated from ops/src/dashboard.rs; UPDATE_DASHBOARD=1 cargo test -p ops rewrites it";
pub const END: &str = "  # <<< dashboard";

/// The functions, by the logical id of their `AWS::Serverless::Function` (whose `Ref` is the
/// function's name).
pub const FUNCTIONS: &[&str] = &[
    "WebhookFunction",
    "EventProcessorFunction",
    "SenderFunction",
    "MediaFetcherFunction",
    "TemplateSubmitterFunction",
    "QualityPollerFunction",
    "UsageAggregatorFunction",
];

/// The dead-letter queues, by logical id.
pub const DEAD_LETTER_QUEUES: &[&str] = &[
    "SendDLQ",
    "InboundDLQ",
    "EventsDLQ",
    "MediaDLQ",
    "OutcomesDLQ",
];

const FIVE_MINUTES: u32 = 300;
const ONE_DAY: u32 = 86_400;

/// One graph: a title and its metric lines.
struct Graph {
    title: &'static str,
    lines: Vec<Value>,
    period: u32,
    stat: &'static str,
    /// Stacked areas (shares, counts by category) rather than lines.
    stacked: bool,
}

impl Graph {
    fn new(title: &'static str, stat: &'static str) -> Self {
        Graph {
            title,
            lines: Vec::new(),
            period: FIVE_MINUTES,
            stat,
            stacked: false,
        }
    }

    /// A catalog metric with no dimension beyond `Function`.
    fn metric(mut self, m: Metric, stat: Option<&str>, label: &str) -> Self {
        assert!(m.dimensions.is_empty(), "{} needs a SEARCH", m.name);
        let mut options = json!({"label": label});
        if let Some(stat) = stat {
            options["stat"] = stat.into();
        }
        self.lines
            .push(json!([NAMESPACE, m.name, "Function", m.function, options]));
        self
    }

    /// Every series of a catalog metric with one more dimension (by number, reason, category).
    fn search(mut self, m: Metric, stat: &str, id: &str) -> Self {
        let dims = std::iter::once("Function")
            .chain(m.dimensions.iter().copied())
            .collect::<Vec<_>>()
            .join(",");
        let expression = format!(
            "SEARCH('{{{NAMESPACE},{dims}}} MetricName=\"{}\" Function=\"{}\"', '{stat}', {})",
            m.name, m.function, self.period
        );
        self.lines
            .push(json!([{"expression": expression, "id": id, "label": ""}]));
        self
    }

    /// An AWS metric per resource (`${LogicalId}` or `${LogicalId.Attr}`).
    fn per_resource(
        mut self,
        namespace: &str,
        name: &str,
        dimension: &str,
        resources: &[&str],
        attribute: Option<&str>,
    ) -> Self {
        for r in resources {
            let value = match attribute {
                Some(a) => format!("${{{r}.{a}}}"),
                None => format!("${{{r}}}"),
            };
            self.lines
                .push(json!([namespace, name, dimension, value, {"label": r}]));
        }
        self
    }

    fn daily(mut self) -> Self {
        self.period = ONE_DAY;
        self
    }

    fn stacked(mut self) -> Self {
        self.stacked = true;
        self
    }
}

fn graphs() -> Vec<Graph> {
    vec![
        Graph::new("Webhook latency (ms)", "p50")
            .metric(c::WEBHOOK_LATENCY, Some("p50"), "p50")
            .metric(c::WEBHOOK_LATENCY, Some("p99"), "p99"),
        Graph::new("Webhook items and window hits", "Sum")
            .metric(c::WEBHOOK_ITEMS, None, "items")
            .metric(c::WINDOW_HITS, None, "window hits"),
        Graph::new("Sends", "Sum").metric(c::SENDS, None, "accepted by Meta"),
        Graph::new("Rejects by reason", "Sum").search(c::REJECTS, "Sum", "rejects"),
        Graph::new("Failures by reason", "Sum").search(c::FAILURES, "Sum", "failures"),
        Graph::new("Meta rate limits (130429 number, 131056 recipient)", "Sum").search(
            c::GRAPH_THROTTLED,
            "Sum",
            "throttled",
        ),
        Graph::new("Dead-letter queue depths", "Maximum").per_resource(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            DEAD_LETTER_QUEUES,
            Some("QueueName"),
        ),
        Graph::new(
            "Quarantined events and webhooks refused unconfigured",
            "Sum",
        )
        .metric(c::WEBHOOK_QUARANTINED, None, "webhook quarantined")
        .metric(
            c::PROCESSOR_QUARANTINED,
            None,
            "event processor quarantined",
        )
        .metric(c::WEBHOOK_NOT_CONFIGURED, None, "refused: secret not set"),
        Graph::new("Throttles per function", "Sum").per_resource(
            "AWS/Lambda",
            "Throttles",
            "FunctionName",
            FUNCTIONS,
            None,
        ),
        Graph::new("Errors per function", "Sum").per_resource(
            "AWS/Lambda",
            "Errors",
            "FunctionName",
            FUNCTIONS,
            None,
        ),
        Graph::new("Quality per number (3 green, 2 yellow, 1 red)", "Minimum").search(
            c::QUALITY_SCORE,
            "Minimum",
            "quality",
        ),
        Graph::new(
            "Messaging limit per number (unique users / 24 h)",
            "Minimum",
        )
        .search(c::MESSAGING_LIMIT, "Minimum", "tier"),
        Graph::new("Throughput cap per number (msg/s)", "Minimum").search(
            c::THROUGHPUT_MPS,
            "Minimum",
            "mps",
        ),
        Graph::new("Throughput share per number", "Average")
            .search(c::THROUGHPUT_SHARE, "Average", "share")
            .stacked(),
        Graph::new("Marketing paused per number", "Maximum").search(
            c::MARKETING_PAUSED,
            "Maximum",
            "paused",
        ),
        Graph::new("Poller: numbers paused, quality drops, failures", "Sum")
            .metric(
                c::NUMBERS_MARKETING_PAUSED,
                Some("Maximum"),
                "numbers paused",
            )
            .metric(c::QUALITY_DROPS, None, "quality drops")
            .search(c::POLL_FAILURES, "Sum", "poll_failures"),
        Graph::new("Usage per category per day (messages)", "Maximum")
            .daily()
            .search(c::USAGE_MESSAGES, "Maximum", "messages")
            .stacked(),
        Graph::new("Charged per category per day", "Maximum")
            .daily()
            .search(c::USAGE_CHARGED, "Maximum", "charged")
            .stacked(),
    ]
}

/// The dashboard's body: two graphs a row, 12 columns by 6 rows each.
pub fn body() -> Value {
    let widgets: Vec<Value> = graphs()
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            json!({
                "type": "metric",
                "x": (i % 2) * 12,
                "y": (i / 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": g.title,
                    "region": "${AWS::Region}",
                    "view": "timeSeries",
                    "stacked": g.stacked,
                    "stat": g.stat,
                    "period": g.period,
                    "metrics": g.lines,
                },
            })
        })
        .collect();
    json!({ "widgets": widgets })
}

/// The template's resource, between [`BEGIN`] and [`END`].
pub fn template_block() -> String {
    // One widget a line: short enough to read, and a change shows as the widget it changes.
    let widgets: Vec<String> = body()["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    let json = format!("{{\"widgets\": [\n  {}\n]}}", widgets.join(",\n  "));
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(
        "  Dashboard:\n    Type: AWS::CloudWatch::Dashboard\n    Properties:\n      \
         DashboardName: !Ref AWS::StackName\n      DashboardBody: !Sub |\n",
    );
    for line in json.lines() {
        out.push_str("        ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Every `WhatsAppMiddleware` metric a body plots: (function, name, dimensions beyond
/// `Function`), read back from the JSON, plain metrics and `SEARCH` expressions alike.
pub fn plotted(body: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let widgets = body["widgets"].as_array().cloned().unwrap_or_default();
    for w in &widgets {
        for line in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let Some(parts) = line.as_array() else {
                continue;
            };
            if parts.first().and_then(Value::as_str) == Some(NAMESPACE) {
                let strings: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                let dims: Vec<(&str, &str)> =
                    strings[2..].chunks(2).map(|p| (p[0], p[1])).collect();
                let function = dims.iter().find(|(k, _)| *k == "Function").map(|p| p.1);
                let others = dims
                    .iter()
                    .filter(|(k, _)| *k != "Function")
                    .map(|(k, _)| (*k).to_owned())
                    .collect();
                out.push((
                    function.unwrap_or_default().to_owned(),
                    strings[1].to_owned(),
                    others,
                ));
            } else if let Some(expr) = parts
                .first()
                .and_then(|o| o.get("expression"))
                .and_then(Value::as_str)
            {
                out.extend(parse_search(expr));
            }
        }
    }
    out
}

/// `SEARCH('{Namespace,Dim,...} MetricName="X" Function="f"', ...)` → (f, X, dims).
fn parse_search(expr: &str) -> Option<(String, String, Vec<String>)> {
    let schema = expr.split_once('{')?.1.split_once('}')?.0;
    let mut parts = schema.split(',');
    if parts.next()? != NAMESPACE {
        return None;
    }
    let dims: Vec<String> = parts
        .filter(|d| *d != "Function")
        .map(String::from)
        .collect();
    let quoted = |key: &str| {
        let rest = expr.split_once(&format!("{key}=\""))?.1;
        Some(rest.split_once('"')?.0.to_owned())
    };
    Some((quoted("Function")?, quoted("MetricName")?, dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn template_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
    }

    #[test]
    fn every_plotted_metric_is_one_the_code_emits_and_every_emitted_one_is_plotted() {
        let plotted = plotted(&body());
        assert!(plotted.len() >= c::ALL.len());
        for (function, name, dims) in &plotted {
            let m = c::find(function, name)
                .unwrap_or_else(|| panic!("{function}/{name} is plotted but never emitted"));
            assert_eq!(
                m.dimensions
                    .iter()
                    .map(|d| (*d).to_owned())
                    .collect::<Vec<_>>(),
                *dims,
                "{name}: plotted with other dimensions than emitted"
            );
        }
        let seen: BTreeSet<(&str, &str)> = plotted
            .iter()
            .map(|(f, n, _)| (f.as_str(), n.as_str()))
            .collect();
        for m in c::ALL {
            assert!(
                seen.contains(&(m.function, m.name)),
                "{}/{} is emitted but not on the dashboard",
                m.function,
                m.name
            );
        }
    }

    #[test]
    fn the_reader_sees_a_misspelt_or_unknown_metric() {
        let mut b = body();
        b["widgets"][0]["properties"]["metrics"][0][1] = "WebhookLatencyMs".into();
        let bad = plotted(&b);
        assert!(bad.iter().any(|(_, n, _)| n == "WebhookLatencyMs"));
        assert!(c::find("webhook", "WebhookLatencyMs").is_none());
        let search = parse_search(
            "SEARCH('{WhatsAppMiddleware,Function,Reason} MetricName=\"Rejected\" Function=\"sender\"', 'Sum', 300)",
        );
        assert_eq!(
            search,
            Some(("sender".into(), "Rejected".into(), vec!["Reason".into()]))
        );
    }

    #[test]
    fn every_dead_letter_queue_of_the_template_is_plotted() {
        let template = std::fs::read_to_string(template_path()).unwrap();
        let mut targets: Vec<&str> = template
            .split("deadLetterTargetArn: !GetAtt ")
            .skip(1)
            .filter_map(|rest| rest.split(".Arn").next())
            .collect();
        targets.sort();
        let mut plotted = DEAD_LETTER_QUEUES.to_vec();
        plotted.sort();
        assert_eq!(plotted, targets);
    }

    #[test]
    fn widgets_tile_the_grid_and_reference_only_template_resources() {
        let b = body();
        let template = std::fs::read_to_string(template_path()).unwrap();
        for w in b["widgets"].as_array().unwrap() {
            let x = w["x"].as_u64().unwrap() + w["width"].as_u64().unwrap();
            assert!(x <= 24, "CloudWatch's grid is 24 columns");
        }
        let text = b.to_string();
        for reference in text.split("${").skip(1) {
            let name = reference.split('}').next().unwrap();
            let resource = name.split('.').next().unwrap();
            if resource == "AWS::Region" {
                continue;
            }
            assert!(
                template.contains(&format!("\n  {resource}:\n")),
                "${{{name}}} names no resource of the template"
            );
        }
    }

    #[test]
    fn the_template_holds_the_generated_dashboard() {
        let path = template_path();
        let template = std::fs::read_to_string(&path).unwrap();
        let start = template
            .find(BEGIN)
            .expect("the template has the dashboard markers");
        let end = template[start..].find(END).expect("the end marker") + start;
        let end = end + END.len() + 1;
        let block = template_block();
        let json: String = block
            .lines()
            .skip_while(|l| !l.ends_with("!Sub |"))
            .skip(1)
            .take_while(|l| !l.starts_with(END))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json).expect("the block is JSON"),
            body()
        );
        if template[start..end] != block {
            if std::env::var_os("UPDATE_DASHBOARD").is_some() {
                let updated = format!("{}{}{}", &template[..start], block, &template[end..]);
                std::fs::write(&path, updated).unwrap();
            } else {
                panic!(
                    "infra/template.yaml's dashboard differs from ops/src/dashboard.rs: run \
                     UPDATE_DASHBOARD=1 cargo test -p ops"
                );
            }
        }
    }
}
