//! The template's alarms on custom metrics watch metrics the code emits (by name, function and
//! dimensions), and each alarm is documented with what to do when it fires.

use whatsapp_core::metrics::{NAMESPACE, catalog};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `AWS::CloudWatch::Alarm` of the template: (logical id, its text).
fn alarms(template: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in template.lines() {
        let top = line.len() > 2 && line.starts_with("  ") && !line.starts_with("   ");
        if top && line.trim_end().ends_with(':') && !line.trim_start().starts_with('#') {
            if let Some((id, body)) = current.take() {
                out.push((id, body.join("\n")));
            }
            current = Some((line.trim().trim_end_matches(':').to_owned(), Vec::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push(line);
        }
    }
    out.extend(current.map(|(id, body)| (id, body.join("\n"))));
    out.retain(|(_, body)| body.contains("Type: AWS::CloudWatch::Alarm"));
    out
}

/// The custom metrics an alarm watches: (metric name, [(dimension, value)]).
fn watched(alarm: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut ours = false;
    let mut pending: Option<String> = None;
    for line in alarm.lines().map(str::trim) {
        if let Some(ns) = line.strip_prefix("Namespace: ") {
            ours = ns == NAMESPACE;
            if ours {
                out.push((String::new(), Vec::new()));
            }
        } else if !ours {
            continue;
        } else if let Some(name) = line.strip_prefix("MetricName: ") {
            out.last_mut().unwrap().0 = name.to_owned();
        } else if let Some(dim) = line.strip_prefix("- Name: ") {
            pending = Some(dim.to_owned());
        } else if let (Some(value), Some(dim)) = (line.strip_prefix("Value: "), pending.take()) {
            out.last_mut().unwrap().1.push((dim, value.to_owned()));
        }
    }
    out
}

#[test]
fn every_custom_metric_alarm_watches_a_metric_the_code_emits() {
    let template = read("infra/template.yaml");
    let alarms = alarms(&template);
    assert!(alarms.len() >= 20, "{} alarms", alarms.len());
    let mut custom = 0;
    for (id, body) in &alarms {
        for (name, dims) in watched(body) {
            custom += 1;
            let function = dims
                .iter()
                .find(|(k, _)| k == "Function")
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{id}: {name} without its Function dimension"));
            let metric = catalog::find(function, &name)
                .unwrap_or_else(|| panic!("{id}: {function}/{name} is never emitted"));
            let names: Vec<&str> = dims
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| *k != "Function")
                .collect();
            assert_eq!(names, metric.dimensions, "{id}: {name}'s dimensions");
        }
    }
    assert!(custom >= 11, "{custom} custom metrics watched");
}

#[test]
fn the_reader_catches_an_alarm_on_a_metric_nobody_emits() {
    let alarm = "    Properties:\n      Namespace: WhatsAppMiddleware\n      MetricName: Failure\n      Dimensions:\n        - Name: Function\n          Value: sender\n";
    let w = watched(alarm);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].0, "Failure");
    assert!(catalog::find("sender", "Failure").is_none());
}

#[test]
fn every_alarm_says_what_it_means_and_the_docs_say_what_to_do() {
    let template = read("infra/template.yaml");
    let docs = read("docs/deploy-and-operations.md");
    for (id, body) in alarms(&template) {
        assert!(
            body.contains("AlarmDescription:"),
            "{id} has no description"
        );
        assert!(
            body.contains("AlarmActions: [!Ref AlarmTopic]"),
            "{id} notifies nobody"
        );
        let named = format!("`{id}`");
        assert!(
            docs.lines()
                .any(|l| l.starts_with("| `")
                    && l.split('|').nth(1).is_some_and(|c| c.contains(&named))),
            "docs/deploy-and-operations.md has no row for {id}"
        );
    }
}
