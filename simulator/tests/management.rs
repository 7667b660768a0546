//! Templates, phone numbers, pricing analytics, and how webhooks are delivered.

mod common;

use common::*;
use serde_json::{Value, json};
use simulator::Tier;

fn body_template(name: &str, text: &str, example: Value) -> Value {
    json!({"name": name, "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": text, "example": example}]})
}

#[tokio::test]
async fn template_is_reviewed_and_the_outcome_is_a_webhook() {
    let h = Harness::new().await;
    let (s, b) = h
        .post(
            &format!("{WABA}/message_templates"),
            body_template(
                "order_update",
                "Hi {{1}}, it shipped.",
                json!({"body_text": [["Ann"]]}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["status"].as_str(), b["category"].as_str()),
        (Some("PENDING"), Some("UTILITY"))
    );
    let (_, b) = h
        .post(
            &format!("{WABA}/message_templates"),
            body_template(
                "please_reject_me",
                "Hi {{1}}, it shipped.",
                json!({"body_text": [["Ann"]]}),
            ),
        )
        .await;
    assert_eq!(b["status"], "PENDING");
    h.receiver
        .wait_for("two reviews", |r| {
            r.changes()
                .iter()
                .filter(|(f, _)| f == "message_template_status_update")
                .count()
                == 2
        })
        .await;
    let events: Vec<Value> = h
        .receiver
        .changes()
        .into_iter()
        .filter(|(f, _)| f == "message_template_status_update")
        .map(|(_, v)| v)
        .collect();
    let approved = events
        .iter()
        .find(|e| e["message_template_name"] == "order_update")
        .unwrap();
    assert_eq!(approved["event"], "APPROVED");
    let rejected = events
        .iter()
        .find(|e| e["message_template_name"] == "please_reject_me")
        .unwrap();
    assert_eq!(
        (rejected["event"].as_str(), rejected["reason"].as_str()),
        (Some("REJECTED"), Some("INVALID_FORMAT"))
    );
}

#[tokio::test]
async fn template_creation_is_validated_as_meta_does() {
    let h = Harness::new().await;
    let path = format!("{WABA}/message_templates");
    let bad = [
        json!({"name": "Order Update", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}]}),
        json!({"name": "t", "language": "en_US", "category": "PROMO", "components": [{"type": "BODY", "text": "x"}]}),
        json!({"name": "t", "language": "en_US", "category": "UTILITY", "components": [{"type": "HEADER", "format": "TEXT", "text": "h"}]}),
        body_template("t", "{{1}} at the start", json!({"body_text": [["a"]]})),
        body_template(
            "t",
            "Hi {{1}} {{2}} adjacent",
            json!({"body_text": [["a", "b"]]}),
        ),
        body_template("t", "Hi {{1}} with no example.", json!({})),
        json!({"name": "t", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{name}} there."}]}),
    ];
    for b in bad {
        let (s, r) = h.post(&path, b.clone()).await;
        // A missing BODY is a missing required parameter; the rest are invalid parameters.
        let expected = if b["components"][0]["type"] == "HEADER" {
            131008
        } else {
            100
        };
        assert_eq!(
            (s, r["error"]["code"].as_i64()),
            (400, Some(expected)),
            "{b}"
        );
    }
    assert_eq!(
        h.post(&path, body_template("dup", "Hello.", json!({})))
            .await
            .0,
        200
    );
    let (_, r) = h
        .post(&path, body_template("dup", "Hello.", json!({})))
        .await;
    assert_eq!(
        r["error"]["error_subcode"], 2388024,
        "same name and language"
    );
}

#[tokio::test]
async fn templates_list_with_filters_and_cursor_paging() {
    let h = Harness::new().await;
    for i in 0..5 {
        h.seed_template(&format!("t{i}"), "UTILITY");
    }
    let (_, page1) = h.get(&format!("{WABA}/message_templates?limit=2")).await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let after = page1["paging"]["cursors"]["after"].as_str().unwrap();
    assert!(page1["paging"]["next"].is_string());
    let (_, page2) = h
        .get(&format!("{WABA}/message_templates?limit=2&after={after}"))
        .await;
    let (_, page3) = h
        .get(&format!(
            "{WABA}/message_templates?limit=2&after={}",
            page2["paging"]["cursors"]["after"].as_str().unwrap()
        ))
        .await;
    let names: Vec<&str> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p["data"].as_array().unwrap())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t0", "t1", "t2", "t3", "t4"]);
    assert!(page3["paging"].get("next").is_none());
    let (_, by_name) = h.get(&format!("{WABA}/message_templates?name=t3")).await;
    assert_eq!(by_name["data"].as_array().unwrap().len(), 1);
    let (_, pending) = h
        .get(&format!("{WABA}/message_templates?status=PENDING"))
        .await;
    assert!(pending["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn edits_follow_metas_limits_and_delete_removes_every_language() {
    let h = Harness::new().await;
    let id = h.seed_template("order_update", "UTILITY");
    let edit = json!({"components": [{"type": "BODY", "text": "Hello {{1}}, your order is on its way.", "example": {"body_text": [["Ann"]]}}]});
    assert_eq!(h.post(&id, edit.clone()).await.0, 200);
    let (s, r) = h.post(&id, edit.clone()).await;
    assert_eq!(
        (s, r["error"]["code"].as_i64()),
        (400, Some(100)),
        "edited PENDING template"
    );
    // The seed's approval, then the re-approval after the edit.
    h.receiver
        .wait_for("re-approval", |r| {
            r.changes()
                .iter()
                .filter(|(f, v)| f == "message_template_status_update" && v["event"] == "APPROVED")
                .count()
                >= 2
        })
        .await;
    let (_, r) = h.post(&id, edit.clone()).await;
    assert!(
        r["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("24 hours"),
        "{r}"
    );
    h.sim().advance_clock(25 * 3600);
    let (_, r) = h.post(&id, json!({"category": "MARKETING"})).await;
    assert!(
        r["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("category"),
        "{r}"
    );

    let (s, _) = h
        .delete(&format!("{WABA}/message_templates?name=order_update"))
        .await;
    assert_eq!(s, 200);
    assert!(h.sim().template_id(WABA, "order_update", "en_US").is_none());
    assert_eq!(
        h.delete(&format!("{WABA}/message_templates?name=order_update"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn phone_number_fields_and_state_changes() {
    let h = Harness::new().await;
    let fields = "quality_rating,status,name_status,throughput,whatsapp_business_manager_messaging_limit,verified_name,display_phone_number";
    let (_, p) = h.get(&format!("{PHONE}?fields={fields}")).await;
    assert_eq!(p["quality_rating"], "GREEN");
    assert_eq!(p["throughput"]["level"], "STANDARD");
    assert_eq!(p["whatsapp_business_manager_messaging_limit"], "TIER_2K");
    assert_eq!(p["display_phone_number"], "15550783881");
    let (_, list) = h.get(&format!("{WABA}/phone_numbers")).await;
    assert_eq!(list["data"][0]["id"], PHONE);

    let change = |json: Value| serde_json::from_value::<simulator::PhoneChange>(json).unwrap();
    h.sim()
        .set_phone_state(PHONE, change(json!({"quality_rating": "RED"})))
        .unwrap();
    h.sim()
        .set_phone_state(PHONE, change(json!({"tier": "TIER_10K"})))
        .unwrap();
    h.sim()
        .set_phone_state(PHONE, change(json!({"throughput_level": "HIGH"})))
        .unwrap();
    h.sim()
        .set_phone_state(PHONE, change(json!({"status": "RESTRICTED"})))
        .unwrap();
    h.receiver
        .wait_for("state webhooks", |r| r.changes().len() >= 5)
        .await;
    let changes = h.receiver.changes();
    let quality: Vec<&str> = changes
        .iter()
        .filter(|(f, _)| f == "phone_number_quality_update")
        .map(|(_, v)| v["event"].as_str().unwrap())
        .collect();
    assert_eq!(quality, ["FLAGGED", "UPGRADE", "THROUGHPUT_UPGRADE"]);
    let upgrade = changes
        .iter()
        .find(|(_, v)| v["event"] == "UPGRADE")
        .unwrap();
    assert_eq!(upgrade.1["max_daily_conversations_per_business"], "10000");
    assert!(
        changes
            .iter()
            .any(|(f, v)| f == "business_capability_update"
                && v["max_daily_conversations_per_business"] == 10000)
    );
    assert!(
        changes
            .iter()
            .any(|(f, v)| f == "account_update" && v["event"] == "ACCOUNT_RESTRICTION")
    );
    let (_, p) = h.get(&format!("{PHONE}?fields={fields}")).await;
    assert_eq!(
        (p["quality_rating"].as_str(), p["status"].as_str()),
        (Some("RED"), Some("RESTRICTED"))
    );
    assert_eq!(p["whatsapp_business_manager_messaging_limit"], "TIER_10K");
    assert_eq!(p["throughput"]["level"], "HIGH");
}

#[tokio::test]
async fn pricing_analytics_reports_what_was_delivered_and_priced() {
    let h = Harness::with(|c| c.pmp_2026_from = None).await;
    h.seed_template("promo", "MARKETING");
    h.seed_template("order_update", "UTILITY");
    let start = h.sim().now() - 10;
    h.send("447700900101", template("promo", &["x"])).await;
    h.send("447700900102", template("promo", &["x"])).await;
    h.send("447700900103", template("order_update", &["x"]))
        .await;
    h.user_writes("447700900104");
    h.send("447700900104", template("order_update", &["x"]))
        .await;
    h.send("447700900105", text("no window: fails, not counted"))
        .await;
    let (s, r) = h
        .get(&format!(
            "{WABA}?fields=pricing_analytics.start({start}).end({}).granularity(DAILY)",
            start + 3600
        ))
        .await;
    assert_eq!(s, 200, "{r}");
    let points = r["pricing_analytics"]["data"][0]["data_points"]
        .as_array()
        .unwrap()
        .clone();
    let find = |cat: &str, kind: &str| {
        points
            .iter()
            .find(|p| p["pricing_category"] == cat && p["pricing_type"] == kind)
            .cloned()
    };
    let mkt = find("MARKETING", "REGULAR").unwrap();
    assert_eq!(
        (mkt["volume"].as_u64(), mkt["country"].as_str()),
        (Some(2), Some("GB"))
    );
    assert!((mkt["cost"].as_f64().unwrap() - 0.05).abs() < 1e-9);
    assert_eq!(find("UTILITY", "REGULAR").unwrap()["volume"], 1);
    assert_eq!(
        find("UTILITY", "FREE_CUSTOMER_SERVICE").unwrap()["cost"],
        0.0
    );
    let total: u64 = points.iter().map(|p| p["volume"].as_u64().unwrap()).sum();
    assert_eq!(total, 4);
    assert_eq!(r["currency"], "USD");
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_signed_body() {
    let h = Harness::with(|c| c.webhooks.retry_base_ms = 10).await;
    *h.receiver.fail_next.lock().unwrap() = (2, 500);
    h.user_writes("447700900201");
    h.receiver
        .wait_for("third attempt", |r| r.posts.lock().unwrap().len() == 3)
        .await;
    let posts = h.receiver.posts.lock().unwrap().clone();
    assert!(
        posts.windows(2).all(|w| w[0] == w[1]),
        "retries resend the same bytes and signature"
    );
    // The receiver saw the third POST before answering it; the simulator records the
    // attempt once the answer is back: wait for that too.
    let attempts = || -> Vec<(u32, Option<u16>)> {
        h.sim()
            .deliveries()
            .iter()
            .map(|d| (d.attempt, d.status))
            .collect()
    };
    for _ in 0..500 {
        if attempts().len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(attempts(), [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
}

#[tokio::test]
async fn batching_puts_several_changes_in_one_post() {
    let h = Harness::with(|c| {
        c.webhooks.batch_max = 10;
        c.webhooks.batch_window_ms = 100;
    })
    .await;
    h.sim().create_waba("W2", Tier::T2K);
    h.sim().create_phone_number("P2", "W2", "15550000002");
    h.user_writes("447700900301");
    h.user_writes_to("P2", "447700900302");
    h.receiver
        .wait_for("one post", |r| r.changes().len() == 2)
        .await;
    let posts = h.receiver.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    let env: Value = serde_json::from_str(&posts[0].0).unwrap();
    assert_eq!(
        env["entry"].as_array().unwrap().len(),
        2,
        "one entry per WABA"
    );
}

#[tokio::test]
async fn duplicates_and_reordering_can_be_switched_on() {
    let h = Harness::with(|c| {
        c.webhooks.duplicate_probability = 1.0;
        c.webhooks.batch_max = 10;
        c.webhooks.batch_window_ms = 50;
        c.webhooks.reorder = true;
    })
    .await;
    h.user_writes("447700900401");
    let (_, b) = h.send("447700900401", text("x")).await;
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("duplicated statuses", |r| r.statuses_of(&wamid).len() >= 6)
        .await;
    let mut kinds: Vec<String> = h
        .receiver
        .statuses_of(&wamid)
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["delivered", "read", "sent"]);
}

#[tokio::test]
async fn control_api_over_http() {
    let h = Harness::new().await;
    let base = h.running.base_url();
    let c = reqwest::Client::new();
    let post = |path: &str, body: Value| c.post(format!("{base}/_sim/{path}")).json(&body).send();
    assert!(
        post("tokens", json!({"token": "t2"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let r: Value = post("users/447700900501/messages", json!({"phone_number_id": PHONE, "message": {"type": "image", "image": {"id": "m1", "mime_type": "image/jpeg"}}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["id"].as_str().unwrap().starts_with("wamid."));
    h.receiver
        .wait_for("inbound image", |r| {
            r.changes()
                .iter()
                .any(|(_, v)| v["messages"][0]["type"] == "image")
        })
        .await;
    let r = post("clock/advance", json!({"seconds": 60})).await.unwrap();
    assert!(r.status().is_success());
    let r = c
        .get(format!("{base}/_sim/messages?callback_data=none"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(r["count"], 0);
}
