//! What `wactl job`, `numbers` and `templates` read (`ops::records`), through the real SDK
//! against ministack, after the real sender, webhook and stores wrote it. (`ops/tests/wactl.rs`
//! runs the binary itself: the DLQ commands and the dispatch.)

use ops::records::{self, JobTables};
use whatsapp_aws::DynamoSendControl;
use whatsapp_core::policy::{HealthChange, NumberHealth};
use whatsapp_core::ports::{NumberState, NumberStateStore};

use crate::sender::{
    config, enqueue_and_receive, graph, invoke, job, rig, seed_template, sender_with, template,
    text, user,
};
use crate::support::now;
use crate::webhook::{PHONE, WABA, eventually};

#[tokio::test]
async fn wactl_reads_a_job_its_number_and_its_templates() {
    let rig = rig(|_| {}).await;
    let ddb = aws_sdk_dynamodb::Client::new(&rig.stack.aws);
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    user(&rig, "447700900101", true).await;
    user(&rig, "447700900102", false).await;
    let jobs = [
        job(
            "w-ok",
            "447700900101",
            template("order_ready", &["Ann", "1"]),
        ),
        job("w-closed", "447700900102", text("outside the window")),
    ];
    let sender = sender_with(&rig, graph(&rig), config());
    let received = enqueue_and_receive(&rig, &jobs).await;
    invoke(&rig, &sender, &received, now() * 1000).await;

    let tables = JobTables {
        dedupe: &rig.resources.dedupe_table,
        messages: &rig.resources.messages_table,
    };
    // The accepted job, with the status Meta's webhook brought back.
    let ok = || async {
        records::job(&ddb, &tables, PHONE, "w-ok")
            .await
            .unwrap()
            .unwrap()
    };
    let kinds = |job: &serde_json::Value| -> Vec<String> {
        let list = job["statuses"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|s| s["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    eventually(
        "the sent and delivered statuses on the job's message",
        || async {
            let k = kinds(&ok().await);
            k.contains(&"sent".to_owned()) && k.contains(&"delivered".to_owned())
        },
    )
    .await;
    let shown = ok().await;
    // Every status with its time, in order.
    let times: Vec<i64> = shown["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{shown}");
    assert_eq!(kinds(&shown)[..2], ["sent", "delivered"], "{shown}");
    assert_eq!(shown["verdict"], "accepted");
    assert_eq!(shown["state"], "COMPLETED");
    assert!(shown["wamid"].as_str().unwrap().starts_with("wamid."));
    assert!(shown["message"]["status_at"].is_number(), "{shown}");
    assert!(
        !shown.to_string().contains("447700900101"),
        "the recipient is masked: {shown}"
    );
    // The refused one says why, and has no message.
    let closed = records::job(&ddb, &tables, PHONE, "w-closed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (closed["verdict"].as_str(), closed["reason"].as_str()),
        (Some("rejected"), Some("no_opt_in"))
    );
    assert!(closed["message"].is_null() && closed["wamid"].is_null());
    assert!(
        records::job(&ddb, &tables, PHONE, "never-sent")
            .await
            .unwrap()
            .is_none()
    );

    // Templates, as synced or submitted.
    let listed = records::templates(&ddb, &rig.resources.templates_table, Some(WABA))
        .await
        .unwrap();
    assert!(
        listed.iter().any(|t| t["pk"]
            .as_str()
            .is_some_and(|k| k.contains("#order_ready#"))),
        "{listed:?}"
    );
    let other = records::templates(&ddb, &rig.resources.templates_table, Some("999"))
        .await
        .unwrap();
    assert!(other.is_empty());
    let lang = listed[0]["pk"]
        .as_str()
        .unwrap()
        .rsplit('#')
        .next()
        .unwrap()
        .to_owned();
    let one = records::template(
        &ddb,
        &rig.resources.templates_table,
        WABA,
        "order_ready",
        &lang,
    )
    .await
    .unwrap();
    assert!(one.is_some());
    assert!(
        records::template(&ddb, &rig.resources.templates_table, WABA, "nope", &lang)
            .await
            .unwrap()
            .is_none()
    );

    // A number's health and history, as the poller stores them.
    let control = DynamoSendControl::new(ddb.clone(), &rig.resources.control_table);
    let health = NumberHealth {
        quality: "RED".into(),
        status: "CONNECTED".into(),
        name_status: "APPROVED".into(),
        throughput_level: "STANDARD".into(),
        tier: "TIER_2K".into(),
    };
    let state = NumberState {
        health,
        marketing_paused: true,
        polled_at: now(),
        backoff_until: None,
    };
    control.put_number_state(PHONE, &state).await.unwrap();
    let change = HealthChange {
        field: "quality".into(),
        from: Some("GREEN".into()),
        to: "RED".into(),
    };
    control
        .append_history(PHONE, now() * 1000, &[change])
        .await
        .unwrap();
    let numbers = records::numbers(
        &ddb,
        &rig.resources.control_table,
        &[PHONE.to_owned(), "1".into()],
    )
    .await
    .unwrap();
    assert_eq!(
        numbers[0]["state"]["marketing_paused"], true,
        "{:?}",
        numbers[0]
    );
    assert_eq!(numbers[0]["state"]["quality"], "RED", "{:?}", numbers[0]);
    assert_eq!(
        numbers[0]["history"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        numbers[0]
    );
    assert!(
        numbers[1]["state"].is_null(),
        "a number never polled has no state"
    );
}
