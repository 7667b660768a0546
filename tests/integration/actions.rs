//! Conversation actions on ministack with the simulator: a `mark_read` job (with the typing
//! indicator) reaches the simulator as Meta's mark-as-read request, whatever the window, with
//! one verdict, paced by the number's throughput like a message.

use sender::Verdict;
use serde_json::json;

use crate::cloud_api_2026::send_one;
use crate::sender::{config, graph, job, rig, sender_with, user};
use crate::support::now;
use crate::webhook::PHONE;

fn mark_read(message_id: &str, typing: bool) -> serde_json::Value {
    json!({"type": "mark_read", "mark_read": {"message_id": message_id, "typing_indicator": typing}})
}

/// The throughput slots the sender's pacing took, summed over the send-control table.
async fn paced(rig: &crate::sender::Rig) -> u64 {
    let ddb = aws_sdk_dynamodb::Client::new(&rig.stack.aws);
    let items = ddb
        .scan()
        .table_name(&rig.resources.control_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .iter()
        .filter(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with(&format!("TP#{PHONE}#")))
        })
        .filter_map(|i| i.get("sends")?.as_n().ok()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn mark_read_with_typing_reaches_the_simulator_once_even_after_the_window() {
    let rig = rig(|_| {}).await;
    let sender = sender_with(&rig, graph(&rig), config());
    let uid = user(&rig, "447700900091", true).await;
    let inbound = rig
        .sim
        .sim
        .messages_from(&uid)
        .last()
        .cloned()
        .expect("the user's message");
    assert!(!rig.sim.sim.inbound_message(&inbound).unwrap().read);
    let before = paced(&rig).await;
    // Two days on: the window has closed, and an action is still not held to it.
    let later = (now() + 2 * 86_400) * 1000;
    let o = send_one(
        &rig,
        &sender,
        job("read-1", "447700900091", mark_read(&inbound, true)),
        later,
    )
    .await;
    assert_eq!(o.outcome, Verdict::Accepted, "{o:?}");
    assert!(o.wamid.is_none(), "an action sends no message");
    let m = rig.sim.sim.inbound_message(&inbound).unwrap();
    assert!(m.read, "marked read");
    assert!(m.typing_at.is_some(), "typing shown");
    assert_eq!(paced(&rig).await, before + 1, "one throughput slot taken");
    let marks = rig
        .sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.body["status"] == "read")
        .count();
    assert_eq!(marks, 1);
}

#[tokio::test]
async fn a_mark_read_meta_refuses_ends_failed_with_one_verdict() {
    let rig = rig(|_| {}).await;
    let sender = sender_with(&rig, graph(&rig), config());
    user(&rig, "447700900092", true).await;
    let o = send_one(
        &rig,
        &sender,
        job(
            "read-2",
            "447700900092",
            mark_read("wamid.not-received", false),
        ),
        now() * 1000,
    )
    .await;
    assert_eq!(o.outcome, Verdict::Failed, "{o:?}");
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(131_009));
}
