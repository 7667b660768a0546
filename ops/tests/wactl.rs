//! `wactl` against ministack: a dead-letter queue listed, shown and redriven by reason (never a
//! message twice), and `wactl usage` reaching finance's command line. Needs `AWS_ENDPOINT_URL`
//! (set by `scripts/test`).

use std::process::Command;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use serde_json::Value;

/// A finished run: exit code, stdout, stderr.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wactl(env: &[(&str, &str)], args: &[&str]) -> Ran {
    let o = Command::new(env!("CARGO_BIN_EXE_wactl"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run wactl");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 output");
    Ran {
        code: o.status.code().unwrap_or(-1),
        stdout: text(o.stdout),
        stderr: text(o.stderr),
    }
}

fn json(run: &Ran) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}")
}

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&whatsapp_aws::aws_sdk_config().await)
}

/// A source queue and its DLQ (named by the source's redrive policy).
async fn queues(sqs: &aws_sdk_sqs::Client) -> (String, String, String) {
    let dlq_name = unique("wactl-dlq");
    let dlq = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let source = sqs
        .create_queue()
        .queue_name(unique("wactl-source"))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"3"}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (source, dlq, dlq_name)
}

async fn dead_letter(sqs: &aws_sdk_sqs::Client, dlq: &str, body: &str, reason: Option<&str>) {
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    let mut req = sqs.send_message().queue_url(dlq).message_body(body);
    if let Some(reason) = reason {
        req = req
            .message_attributes("reason", attr(reason))
            .message_attributes("detail", attr("template name missing"));
    }
    req.send().await.unwrap();
}

async fn bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            let from = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("redriven_from"))
                .and_then(|v| v.string_value.clone());
            out.push((m.body.unwrap_or_default(), from));
        }
    }
}

#[tokio::test]
async fn a_dead_letter_queue_is_listed_shown_and_redriven_by_reason_once() {
    let sqs = sqs().await;
    let (source, dlq, dlq_name) = queues(&sqs).await;
    dead_letter(&sqs, &dlq, r#"{"job":1}"#, Some("invalid_job")).await;
    dead_letter(&sqs, &dlq, r#"{"job":2}"#, Some("invalid_job")).await;
    dead_letter(&sqs, &dlq, r#"{"job":3}"#, Some("media_upload_failed")).await;
    dead_letter(&sqs, &dlq, r#"{"job":4}"#, None).await;

    // Listing twice sees the same four: a list gives every message back.
    for _ in 0..2 {
        let list = json(&wactl(&[], &["dlq", "list", &dlq_name, "--format", "json"]));
        assert_eq!(list["messages"].as_array().unwrap().len(), 4, "{list}");
        assert_eq!(list["by_reason"]["invalid_job"], 2);
        assert_eq!(list["by_reason"]["media_upload_failed"], 1);
        assert_eq!(list["by_reason"]["max_receives_exceeded"], 1);
        assert!(
            list["messages"][0].get("body").is_none(),
            "no bodies in a list"
        );
    }
    let table = wactl(&[], &["dlq", "list", &dlq]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("2 × invalid_job"), "{}", table.stdout);
    assert!(table.stdout.contains("template name missing"));

    // One message in full, by id; an unknown id exits 2.
    let list = json(&wactl(&[], &["dlq", "list", &dlq_name, "--format", "json"]));
    let id = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["reason"] == "media_upload_failed")
        .unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = json(&wactl(
        &[],
        &["dlq", "show", &dlq_name, &id, "--format", "json"],
    ));
    assert_eq!(
        (shown["body"].as_str(), shown["reason"].as_str()),
        (Some(r#"{"job":3}"#), Some("media_upload_failed"))
    );
    let missing = wactl(&[], &["dlq", "show", &dlq_name, "no-such-id"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);

    // Redrive one reason to the queue that dead-letters here (found by SQS, no --to).
    let moved = json(&wactl(
        &[],
        &["dlq", "redrive", &dlq_name, "--reason", "invalid_job"],
    ));
    assert_eq!(
        (moved["moved"].as_u64(), moved["kept"].as_u64()),
        (Some(2), Some(2)),
        "{moved}"
    );
    assert_eq!(moved["target"], source.as_str());
    let again = json(&wactl(
        &[],
        &["dlq", "redrive", &dlq_name, "--reason", "invalid_job"],
    ));
    assert_eq!(again["moved"], 0, "a message is never redriven twice");
    let mut arrived = bodies(&sqs, &source).await;
    arrived.sort();
    assert_eq!(arrived.len(), 2);
    assert_eq!(arrived[0].0, r#"{"job":1}"#);
    assert_eq!(arrived[1].0, r#"{"job":2}"#);
    assert!(
        arrived.iter().all(|(_, from)| from.is_some()),
        "each names its DLQ message"
    );

    // The rest, to a named queue; the DLQ is then empty.
    let moved = json(&wactl(
        &[],
        &["dlq", "redrive", &dlq, "--all", "--to", &source],
    ));
    assert_eq!(moved["moved"], 2);
    let list = json(&wactl(&[], &["dlq", "list", &dlq_name, "--format", "json"]));
    assert_eq!(list["messages"].as_array().unwrap().len(), 0);
    assert_eq!(bodies(&sqs, &source).await.len(), 2);

    // Neither a reason nor --all: refused before touching anything.
    let refused = wactl(&[], &["dlq", "redrive", &dlq_name]);
    assert_eq!(refused.code, 2, "clap's usage error: {}", refused.stderr);
    let unknown = wactl(&[], &["dlq", "list", "no-such-queue"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("wactl: "), "{}", unknown.stderr);
}

#[test]
fn wactl_usage_is_finance_s_command_line() {
    // Finance's tests run these commands against ministack (finance/tests/cli.rs); here, that
    // `wactl usage` reaches them: its help lists them, and its errors and exit codes are theirs.
    let help = wactl(&[], &["usage", "--help"]);
    assert_eq!(help.code, 0);
    for command in ["report", "reconcile", "refresh", "rates", "tiers"] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    let bad = wactl(&[], &["usage", "report", "--period", "2026-13"]);
    assert_eq!(bad.code, 2, "clap refuses the period: {}", bad.stderr);
    let missing = wactl(&[("RATE_CARD_TABLE", "")], &["usage", "rates", "list"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("usage: "), "{}", missing.stderr);
}

#[test]
fn the_record_commands_name_the_setting_they_miss() {
    for (args, setting) in [
        (&["job", "106540352242922", "order-1"][..], "DEDUPE_TABLE"),
        (&["numbers"][..], "PHONE_NUMBERS"),
        (&["templates", "list"][..], "TEMPLATES_TABLE"),
    ] {
        let run = wactl(&[(setting, "")], args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{setting} is not set")),
            "{}",
            run.stderr
        );
    }
}
