//! Meta's rules and error codes, through HTTP.

mod common;

use common::*;
use serde_json::{Value, json};
use simulator::{Fault, FaultRoute, Tier};

#[tokio::test]
async fn accepted_message_gets_signed_statuses_with_pricing() {
    let h = Harness::with(|c| c.pmp_2026_from = None).await;
    h.user_writes("447700900001");
    let (status, body) = h.send("447700900001", json!({"type": "text", "text": {"body": "Ça va? 👍"}, "biz_opaque_callback_data": "job-1"})).await;
    assert_eq!(status, 200, "{body}");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    assert_eq!(body["contacts"][0]["wa_id"], "447700900001");
    h.receiver
        .wait_for("read", |r| r.statuses_of(&wamid).len() == 3)
        .await;
    let st = h.receiver.statuses_of(&wamid);
    let kinds: Vec<&str> = st.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["sent", "delivered", "read"]);
    for s in &st {
        assert_eq!(
            s["pricing"],
            json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"})
        );
        assert_eq!(s["biz_opaque_callback_data"], "job-1");
        assert!(s.get("conversation").is_none(), "no CBP object after v23");
    }
    assert_eq!(h.sim().sent_count("job-1"), 1);
}

#[tokio::test]
async fn service_messages_are_charged_from_october_2026() {
    let h = Harness::with(|c| c.pmp_2026_from = Some(0)).await;
    h.user_writes("447700900002");
    let (_, body) = h.send("447700900002", text("hi")).await;
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("sent", |r| !r.statuses_of(&wamid).is_empty())
        .await;
    assert_eq!(
        h.receiver.statuses_of(&wamid)[0]["pricing"]["type"],
        "regular"
    );
}

#[tokio::test]
async fn webhook_version_23_carries_the_cbp_conversation() {
    let h = Harness::with(|c| c.webhook_version = "v23.0".into()).await;
    h.user_writes("447700900003");
    let (_, body) = h.send("447700900003", text("hi")).await;
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("sent", |r| !r.statuses_of(&wamid).is_empty())
        .await;
    let s = &h.receiver.statuses_of(&wamid)[0];
    assert_eq!(s["pricing"]["pricing_model"], "CBP");
    assert_eq!(s["conversation"]["origin"]["type"], "service");
}

#[tokio::test]
async fn unknown_or_expired_token_gets_190() {
    let h = Harness::new().await;
    let (status, body) = h
        .post_as(
            &format!("{PHONE}/messages"),
            json!({"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}}),
            "nope",
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_i64()), (401, Some(190)));
    assert!(body["error"]["fbtrace_id"].is_string());
    h.sim().add_token("old", Some(h.sim().now() - 1));
    let (status, _) = h
        .post_as(&format!("{PHONE}/messages"), json!({}), "old")
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn invalid_bodies_get_metas_codes() {
    let h = Harness::new().await;
    let cases: Vec<(Value, i64)> = vec![
        (
            json!({"type": "text", "text": {"body": "a".repeat(4097)}}),
            100,
        ),
        (json!({"type": "image", "image": {}}), 131008),
        (json!({"type": "poll", "poll": {}}), 131051),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "1", "title": "a"}}, {"type": "reply", "reply": {"id": "2", "title": "b"}},
            {"type": "reply", "reply": {"id": "3", "title": "c"}}, {"type": "reply", "reply": {"id": "4", "title": "d"}}]}}}),
            131009,
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"}, "action": {"button": "Open", "sections": [
            {"title": "s", "rows": (0..11).map(|i| json!({"id": i.to_string(), "title": "t"})).collect::<Vec<_>>()}]}}}),
            131009,
        ),
    ];
    for (msg, code) in cases {
        let (status, body) = h.send("447700900004", msg.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (400, Some(code)),
            "{msg}"
        );
        assert!(body["error"]["error_data"]["details"].is_string());
    }
    let (status, body) = h
        .post(
            &format!("{PHONE}/messages"),
            json!({"to": "447700900004", "text": {"body": "x"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(100)),
        "messaging_product is required"
    );
    let (_, body) = h
        .post(
            "999/messages",
            json!({"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}}),
        )
        .await;
    assert_eq!(
        (
            body["error"]["code"].as_i64(),
            body["error"]["error_subcode"].as_i64()
        ),
        (Some(100), Some(33))
    );
}

#[tokio::test]
async fn free_form_outside_the_window_fails_later_with_131047() {
    let h = Harness::new().await;
    let (status, body) = h.send("447700900005", text("hello?")).await;
    assert_eq!(status, 200, "accepted, as Meta does");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("failed", |r| !r.statuses_of(&wamid).is_empty())
        .await;
    let s = &h.receiver.statuses_of(&wamid)[0];
    assert_eq!(s["status"], "failed");
    assert_eq!(s["errors"][0]["code"], 131047);

    // A window that was open but is now older than 24 h is closed too.
    h.user_writes("447700900006");
    h.sim().advance_clock(24 * 3600);
    let (_, body) = h.send("447700900006", text("late")).await;
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("failed", |r| !r.statuses_of(&wamid).is_empty())
        .await;
    assert_eq!(
        h.receiver.statuses_of(&wamid)[0]["errors"][0]["code"],
        131047
    );
}

#[tokio::test]
async fn template_errors() {
    let h = Harness::new().await;
    let id = h.seed_template("order_update", "UTILITY");
    let (s, b) = h
        .send("447700900007", template("no_such_template", &["x"]))
        .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (404, Some(132001)));
    let (s, b) = h.send("447700900007", template("order_update", &[])).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132000)));
    let (s, b) = h
        .send("447700900007", template("order_update", &["a", "b"]))
        .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132000)));
    let (_, b) = h
        .send("447700900007", template("order_update", &["two\nlines"]))
        .await;
    assert_eq!(b["error"]["code"], 132018);
    let (s, _) = h
        .send("447700900007", template("order_update", &["Ann"]))
        .await;
    assert_eq!(s, 200);

    // Before v23.0 the same parameter problem is a 132000.
    let mut body = json!({"messaging_product": "whatsapp", "to": "447700900008"});
    body.as_object_mut().unwrap().extend(
        template("order_update", &["a    b"])
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = h
        .http
        .post(format!("{}/v22.0/{PHONE}/messages", h.running.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 132000);

    h.sim().set_template_status(&id, "PAUSED", None);
    let (_, b) = h
        .send("447700900009", template("order_update", &["Ann"]))
        .await;
    assert_eq!(b["error"]["code"], 132015);
    h.sim().set_template_status(&id, "PAUSED", None);
    h.sim().set_template_status(&id, "PAUSED", None);
    let (_, b) = h
        .send("447700900009", template("order_update", &["Ann"]))
        .await;
    assert_eq!(b["error"]["code"], 132016, "the third pause disables it");
}

#[tokio::test]
async fn named_parameters_must_match_the_template() {
    let h = Harness::new().await;
    h.sim()
        .seed_template(WABA, json!({"name": "maint", "language": "en_US", "category": "UTILITY", "parameter_format": "NAMED",
            "components": [{"type": "BODY", "text": "Hi {{tech}}, we fix the {{thing}} today.",
                "example": {"body_text_named_params": [{"param_name": "tech", "example": "Ana"}, {"param_name": "thing", "example": "AC"}]}}]}))
        .unwrap();
    let msg = |names: [&str; 2]| {
        json!({"type": "template", "template": {"name": "maint", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [
        {"type": "text", "parameter_name": names[0], "text": "Ana"}, {"type": "text", "parameter_name": names[1], "text": "AC"}]}]}})
    };
    assert_eq!(h.send("447700900010", msg(["thing", "tech"])).await.0, 200);
    assert_eq!(
        h.send("447700900011", msg(["tech", "other"])).await.1["error"]["code"],
        132000
    );
}

#[tokio::test]
async fn throughput_cap_answers_130429() {
    let h = Harness::with(|c| c.default_mps = 5).await;
    h.seed_template("order_update", "UTILITY");
    let mut codes = Vec::new();
    for i in 0..8 {
        let (s, b) = h
            .send(
                &format!("4477009002{i:02}"),
                template("order_update", &["x"]),
            )
            .await;
        codes.push((s, b["error"]["code"].as_i64()));
    }
    assert!(codes[..5].iter().all(|c| c.0 == 200), "{codes:?}");
    assert!(codes[5..].contains(&(429, Some(130429))), "{codes:?}");
}

#[tokio::test]
async fn pair_rate_answers_131056_for_the_same_user_only() {
    let h = Harness::with(|c| c.pair_rate_gap_ms = 6_000).await;
    h.user_writes("447700900012");
    h.user_writes("447700900013");
    assert_eq!(h.send("447700900012", text("1")).await.0, 200);
    let (s, b) = h.send("447700900012", text("2")).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(131056)));
    assert_eq!(h.send("447700900013", text("other user")).await.0, 200);
    h.sim().advance_clock(6);
    assert_eq!(h.send("447700900012", text("3")).await.0, 200);
}

async fn failure_code(h: &Harness, wamid: &str) -> Option<i64> {
    h.receiver
        .wait_for("a status", |r| !r.statuses_of(wamid).is_empty())
        .await;
    h.receiver.statuses_of(wamid)[0]["errors"][0]["code"].as_i64()
}

#[tokio::test]
async fn marketing_rules_opt_out_us_recipients_and_the_per_user_cap() {
    let h = Harness::with(|c| c.marketing_cap_per_user = Some(2)).await;
    h.seed_template("promo", "MARKETING");
    let uid = h.sim().add_user(Some("447700900014"), None, true);
    h.sim().set_marketing_preference(&uid, PHONE, true).unwrap();
    h.receiver
        .wait_for("user_preferences", |r| {
            r.changes().iter().any(|(f, _)| f == "user_preferences")
        })
        .await;
    let (_, b) = h.send("447700900014", template("promo", &["x"])).await;
    assert_eq!(
        failure_code(&h, b["messages"][0]["id"].as_str().unwrap()).await,
        Some(131050)
    );

    let (_, b) = h.send("16505551234", template("promo", &["x"])).await;
    assert_eq!(
        failure_code(&h, b["messages"][0]["id"].as_str().unwrap()).await,
        Some(131049),
        "US marketing"
    );

    let mut last = None;
    for _ in 0..3 {
        let (_, b) = h.send("447700900015", template("promo", &["x"])).await;
        last = Some(b["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        failure_code(&h, &last.unwrap()).await,
        Some(131049),
        "third marketing message in 24 h"
    );
}

#[tokio::test]
async fn portfolio_messaging_limit_counts_unique_users_outside_the_window() {
    let h = Harness::with(|c| c.default_mps = 10_000).await;
    h.sim().create_waba("W250", Tier::T250);
    h.sim().create_phone_number("P250", "W250", "15550000250");
    h.sim()
        .seed_template(
            "W250",
            json!({"name": "hello", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hello there."}]}),
        )
        .unwrap();
    let send = |to: String| {
        let h = &h;
        async move {
            let body = json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}});
            h.post("P250/messages", body).await.1["messages"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    for i in 0..250 {
        send(format!("44770091{i:04}")).await;
    }
    // The same user again does not consume a slot; a new one is over the limit.
    let again = send("447700910000".into()).await;
    let over = send("447700919999".into()).await;
    h.receiver
        .wait_for("over", |r| !r.statuses_of(&over).is_empty())
        .await;
    assert_eq!(
        h.receiver.statuses_of(&over)[0]["errors"][0]["code"],
        131048
    );
    h.receiver
        .wait_for("again", |r| !r.statuses_of(&again).is_empty())
        .await;
    assert_eq!(h.receiver.statuses_of(&again)[0]["status"], "sent");
}

#[tokio::test]
async fn free_entry_point_makes_the_reply_free() {
    let h = Harness::new().await;
    h.sim()
        .user_sends(
            "447700900016",
            simulator::InboundSpec {
                phone_number_id: PHONE.into(),
                message: json!({"type": "text", "text": {"body": "from the ad"}}),
                referral: Some(json!({"source_type": "ad", "source_id": "1", "ctwa_clid": "ARA"})),
                context: None,
                hide_phone_number: false,
                media: None,
            },
        )
        .unwrap();
    h.seed_template("promo", "MARKETING");
    let (_, b) = h.send("447700900016", template("promo", &["x"])).await;
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("sent", |r| !r.statuses_of(&wamid).is_empty())
        .await;
    assert_eq!(
        h.receiver.statuses_of(&wamid)[0]["pricing"]["type"],
        "free_entry_point"
    );
}

#[tokio::test]
async fn bsuid_recipients_and_hidden_phone_numbers() {
    let h = Harness::new().await;
    let uid = h.sim().add_user(None, Some("BR.1502576394655843"), true);
    h.sim()
        .user_sends(
            &uid,
            simulator::InboundSpec {
                phone_number_id: PHONE.into(),
                message: json!({"type": "text", "text": {"body": "oi"}}),
                referral: None,
                context: None,
                hide_phone_number: true,
                media: None,
            },
        )
        .unwrap();
    h.receiver
        .wait_for("inbound", |r| {
            r.changes().iter().any(|(_, v)| v.get("messages").is_some())
        })
        .await;
    let inbound = h
        .receiver
        .changes()
        .into_iter()
        .find(|(_, v)| v.get("messages").is_some())
        .unwrap()
        .1;
    assert!(inbound["messages"][0].get("from").is_none());
    assert_eq!(inbound["messages"][0]["from_user_id"], uid);
    let body = json!({"messaging_product": "whatsapp", "recipient": uid, "type": "text", "text": {"body": "olá"}});
    let (s, b) = h.post(&format!("{PHONE}/messages"), body).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("sent", |r| !r.statuses_of(&wamid).is_empty())
        .await;
    assert_eq!(h.receiver.statuses_of(&wamid)[0]["recipient_user_id"], uid);
}

#[tokio::test]
async fn mark_as_read() {
    let h = Harness::new().await;
    let inbound = h.user_writes("447700900017");
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound, "typing_indicator": {"type": "text"}});
    assert_eq!(
        h.post(&format!("{PHONE}/messages"), body).await,
        (200, json!({"success": true}))
    );
    let body =
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.unknown"});
    assert_eq!(h.post(&format!("{PHONE}/messages"), body).await.0, 400);
}

#[tokio::test]
async fn faults_errors_and_a_timeout_after_acceptance() {
    let h = Harness::new().await;
    h.user_writes("447700900018");
    h.sim().inject_fault(Fault {
        route: FaultRoute::Messages,
        latency_ms: 0,
        error: Some((503, 2)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(1),
    });
    let (s, b) = h.send("447700900018", text("1")).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (503, Some(2)));
    assert_eq!(
        h.send("447700900018", text("2")).await.0,
        200,
        "the fault was spent"
    );

    h.sim().inject_fault(Fault {
        route: FaultRoute::Messages,
        latency_ms: 0,
        error: None,
        hang_before_ms: None,
        hang_after_ms: Some(2_000),
        times: Some(1),
    });
    let mut body = json!({"messaging_product": "whatsapp", "to": "447700900018", "biz_opaque_callback_data": "ambiguous-1"});
    body.as_object_mut()
        .unwrap()
        .extend(text("3").as_object().unwrap().clone());
    let r = h
        .http
        .post(h.url(&format!("{PHONE}/messages")))
        .bearer_auth(TOKEN)
        .json(&body)
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(
        h.sim().sent_count("ambiguous-1"),
        1,
        "the message was accepted although the caller timed out"
    );
}

#[tokio::test]
async fn every_request_is_recorded() {
    let h = Harness::new().await;
    h.send("447700900019", text("x")).await;
    let reqs = h.sim().requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, format!("/v25.0/{PHONE}/messages"));
    assert_eq!(reqs[0].body["to"], "447700900019");
}

#[tokio::test]
async fn a_restarted_simulator_never_reuses_a_wamid() {
    // Meta's ids never repeat; a stack kept across local runs has the first simulator's ids.
    let first = Harness::new().await;
    let second = Harness::new().await;
    for h in [&first, &second] {
        h.user_writes("447700900077");
    }
    let (_, a) = first.send("447700900077", text("hi")).await;
    let (_, b) = second.send("447700900077", text("hi")).await;
    let (a, b) = (&a["messages"][0]["id"], &b["messages"][0]["id"]);
    assert!(a.as_str().is_some_and(|id| id.starts_with("wamid.")), "{a}");
    assert_ne!(a, b, "outbound wamids");
    assert_ne!(
        first.user_writes("447700900077"),
        second.user_writes("447700900077"),
        "inbound wamids"
    );
}
