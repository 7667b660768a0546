//! The refusals of 2025–26 (reference §6c), each from its own condition, through HTTP; and
//! stale template-listing cursors (131059).

mod common;

use common::*;
use serde_json::json;
use simulator::Restrictions;

fn code(body: &serde_json::Value) -> Option<i64> {
    body["error"]["code"].as_i64()
}

#[tokio::test]
async fn account_restrictions_refuse_with_their_own_codes() {
    let h = Harness::new().await;
    h.seed_template("promo", "MARKETING");
    h.seed_template("order_update", "UTILITY");
    h.user_writes("447700900101");
    h.user_writes("5511987650101");

    h.sim().set_restrictions(
        WABA,
        Restrictions {
            marketing_on_cloud_disabled: true,
            ..Restrictions::default()
        },
    );
    let (s, b) = h.send("447700900101", template("promo", &["Ann"])).await;
    assert_eq!((s, code(&b)), (400, Some(131063)), "{b}");
    // Only marketing: a utility template goes.
    let (s, _) = h
        .send("447700900101", template("order_update", &["Ann"]))
        .await;
    assert_eq!(s, 200);

    h.sim().set_restrictions(
        WABA,
        Restrictions {
            classification_hold_until: Some(h.sim().now() + 60),
            ..Restrictions::default()
        },
    );
    h.sim().advance_clock(10);
    let (_, b) = h
        .send("5511987650101", template("order_update", &["Ann"]))
        .await;
    assert_eq!(code(&b), Some(131064), "{b}");
    // Free-form inside the window is not a template: it goes.
    let (s, _) = h.send("5511987650101", text("hi")).await;
    assert_eq!(s, 200);
    h.sim().advance_clock(70);
    let (s, _) = h
        .send("447700900101", template("order_update", &["Ann"]))
        .await;
    assert_eq!(s, 200, "the hold is over");

    h.sim().set_restrictions(
        WABA,
        Restrictions {
            barred_countries: ["BR".to_owned()].into(),
            ..Restrictions::default()
        },
    );
    h.sim().advance_clock(10);
    let (_, b) = h.send("5511987650101", text("hi")).await;
    assert_eq!(code(&b), Some(130497), "{b}");
    let (s, _) = h.send("447700900101", text("hi")).await;
    assert_eq!(s, 200, "other countries are not barred");
}

#[tokio::test]
async fn a_555_number_sends_nothing_until_its_display_name_is_approved() {
    let h = Harness::new().await;
    h.sim()
        .create_phone_number("555000111", WABA, "+1 555 010 0199");
    h.sim().set_name_status("555000111", "PENDING_REVIEW");
    h.sim()
        .user_sends(
            "447700900111",
            simulator::InboundSpec {
                phone_number_id: "555000111".into(),
                message: text("hi"),
                referral: None,
                context: None,
                hide_phone_number: false,
                media: None,
            },
        )
        .unwrap();
    let body = json!({"messaging_product": "whatsapp", "to": "447700900111", "type": "text",
                      "text": {"body": "hi"}});
    let (_, b) = h.post("555000111/messages", body.clone()).await;
    assert_eq!(code(&b), Some(131037), "{b}");
    h.sim().set_name_status("555000111", "APPROVED");
    let (s, _) = h.post("555000111/messages", body).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn otp_templates_need_a_phone_number_and_identity_hashes_must_match() {
    let h = Harness::new().await;
    h.sim()
        .seed_template(
            WABA,
            json!({"name": "login", "language": "en_US", "category": "AUTHENTICATION",
                   "components": [
                       {"type": "BODY", "text": "Your code {{1}} is valid for 10 minutes.",
                        "example": {"body_text": [["123456"]]}},
                       {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "ONE_TAP", "text": "Autofill"}]}]}),
        )
        .unwrap();
    h.user_writes("447700900121");
    let uid = h.sim().add_user(Some("447700900121"), None, true);
    let otp = json!({"type": "template", "template": {"name": "login", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "123456"}]},
                       {"type": "button", "sub_type": "url", "index": "0",
                        "parameters": [{"type": "text", "text": "123456"}]}]}});
    let mut by_bsuid = json!({"messaging_product": "whatsapp", "recipient": uid});
    by_bsuid
        .as_object_mut()
        .unwrap()
        .extend(otp.as_object().unwrap().clone());
    let (_, b) = h.post(&format!("{PHONE}/messages"), by_bsuid).await;
    assert_eq!(code(&b), Some(131062), "{b}");
    let (s, b) = h.send("447700900121", otp).await;
    assert_eq!(s, 200, "{b}");

    h.user_writes("447700900122");
    let uid = h.sim().add_user(Some("447700900122"), None, true);
    h.sim().set_identity_key(&uid, "hash-now");
    h.sim().advance_clock(10);
    let mut stale = text("hi");
    stale["recipient_identity_key_hash"] = json!("hash-before");
    let (_, b) = h.send("447700900122", stale).await;
    assert_eq!(code(&b), Some(137000), "{b}");
    let mut current = text("hi");
    current["recipient_identity_key_hash"] = json!("hash-now");
    let (s, _) = h.send("447700900122", current).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn marketing_within_a_day_of_a_131049_is_counted_as_an_excessive_retry() {
    let h = Harness::new().await;
    h.seed_template("promo", "MARKETING");
    h.user_writes("16505550199");
    for _ in 0..2 {
        let (s, b) = h.send("16505550199", template("promo", &["Ann"])).await;
        // Accepted: the refusal comes as a failed status.
        assert_eq!(s, 200, "{b}");
        h.sim().advance_clock(10);
    }
    assert_eq!(h.sim().excessive_marketing_retries(WABA), 1);
    h.sim().advance_clock(86_400);
    h.send("16505550199", template("promo", &["Ann"])).await;
    assert_eq!(
        h.sim().excessive_marketing_retries(WABA),
        1,
        "a day later it is not"
    );
}

#[tokio::test]
async fn a_template_listing_cursor_goes_stale_when_a_template_is_deleted() {
    let h = Harness::new().await;
    for i in 0..3 {
        h.seed_template(&format!("t{i}"), "UTILITY");
    }
    let (_, page) = h.get(&format!("{WABA}/message_templates?limit=2")).await;
    let after = page["paging"]["cursors"]["after"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, next) = h
        .get(&format!("{WABA}/message_templates?limit=2&after={after}"))
        .await;
    assert_eq!((s, next["data"].as_array().unwrap().len()), (200, 1));
    let (s, _) = h.delete(&format!("{WABA}/message_templates?name=t0")).await;
    assert_eq!(s, 200);
    let (s, b) = h
        .get(&format!("{WABA}/message_templates?limit=2&after={after}"))
        .await;
    assert_eq!((s, code(&b)), (400, Some(131059)), "{b}");
    let (_, b) = h
        .get(&format!("{WABA}/message_templates?after=garbage"))
        .await;
    assert_eq!(code(&b), Some(131059));
    // Before v24 the old cursor still pages on.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v23.0/{WABA}/message_templates?limit=2&after={after}",
            h.running.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn template_ttl_and_the_2026_button_types_follow_meta_s_rules() {
    let h = Harness::new().await;
    let create = |name: &str, category: &str, ttl: Option<i64>, buttons: serde_json::Value| {
        let mut v = json!({"name": name, "language": "en_US", "category": category,
            "components": [{"type": "BODY", "text": "Your order is ready."},
                           {"type": "BUTTONS", "buttons": buttons}]});
        if let Some(t) = ttl {
            v["message_send_ttl_seconds"] = json!(t);
        }
        v
    };
    let path = format!("{WABA}/message_templates");
    let qr = json!([{"type": "QUICK_REPLY", "text": "Ok"}]);
    let (s, _) = h
        .post(&path, create("u1", "UTILITY", Some(43_200), qr.clone()))
        .await;
    assert_eq!(s, 200);
    let (s, b) = h
        .post(&path, create("u2", "UTILITY", Some(43_201), qr.clone()))
        .await;
    assert_eq!((s, code(&b)), (400, Some(100)), "{b}");
    let otp = json!([{"type": "OTP", "otp_type": "COPY_CODE"}]);
    let (s, b) = h
        .post(&path, create("a1", "AUTHENTICATION", Some(901), otp))
        .await;
    assert_eq!((s, code(&b)), (400, Some(100)), "{b}");
    let calls =
        json!([{"type": "VOICE_CALL", "text": "Call us"}, {"type": "REQUEST_CONTACT_INFO"}]);
    let (s, b) = h.post(&path, create("m1", "MARKETING", None, calls)).await;
    assert_eq!(s, 200, "{b}");
    let two = json!([{"type": "VOICE_CALL", "text": "a"}, {"type": "VOICE_CALL", "text": "b"}]);
    let (s, _) = h.post(&path, create("m2", "MARKETING", None, two)).await;
    assert_eq!(s, 400);
    let (s, _) = h
        .post(
            &path,
            create(
                "m3",
                "MARKETING",
                None,
                json!([{"type": "TELEPORT", "text": "x"}]),
            ),
        )
        .await;
    assert_eq!(s, 400);
}

/// Identity changes as Meta reports them (changelog of 11 Aug 2026): one system message per
/// number the user wrote to, without `contacts`, with the previous id; the retired id is
/// refused as a recipient and the new one has the user's window.
#[tokio::test]
async fn identity_changes_send_system_messages_and_retire_the_old_id() {
    let h = Harness::new().await;
    h.user_writes("447700900111");
    let old = h.sim().add_user(Some("447700900111"), None, true);
    let new = h.sim().change_number(&old, "447700900119").unwrap();
    assert_ne!(new, old);
    let system = |kind: &'static str| {
        move |r: &Receiver| {
            r.changes()
                .iter()
                .any(|(f, v)| f == "messages" && v["messages"][0]["system"]["type"] == kind)
        }
    };
    h.receiver
        .wait_for("user_changed_number", system("user_changed_number"))
        .await;
    let (_, v) = h
        .receiver
        .changes()
        .into_iter()
        .find(|(_, v)| v["messages"][0]["type"] == "system")
        .unwrap();
    assert!(
        v.get("contacts").is_none(),
        "system messages carry no contacts"
    );
    let m = &v["messages"][0];
    assert_eq!(m["from"], "447700900111");
    assert_eq!(m["system"]["wa_id"], "447700900119");
    assert_eq!(m["system"]["user_id"], new.as_str());
    assert_eq!(m["system"]["previous_user_id"], old.as_str());

    let by_id = |id: &str| json!({"messaging_product": "whatsapp", "recipient": id, "type": "text", "text": {"body": "hi"}});
    let (s, b) = h.post(&format!("{PHONE}/messages"), by_id(&old)).await;
    assert_eq!(s, 400, "the retired id is no recipient: {b}");
    let (s, b) = h.post(&format!("{PHONE}/messages"), by_id(&new)).await;
    assert_eq!(s, 200, "the window moved with the user: {b}");

    // An id change alone: no phone number in the message.
    // Through the control route this time.
    let b: serde_json::Value = h
        .http
        .post(format!(
            "{}/_sim/users/{new}/identity",
            h.running.base_url()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let third = b["user_id"].as_str().unwrap().to_owned();
    h.receiver
        .wait_for("user_changed_user_id", system("user_changed_user_id"))
        .await;
    let (_, v) = h
        .receiver
        .changes()
        .into_iter()
        .find(|(_, v)| v["messages"][0]["system"]["type"] == "user_changed_user_id")
        .unwrap();
    assert!(v["messages"][0].get("from").is_none());
    assert_eq!(v["messages"][0]["system"]["previous_user_id"], new.as_str());
    assert_eq!(v["messages"][0]["system"]["user_id"], third.as_str());
}

/// `/marketing_messages`: marketing templates only, once the portfolio accepted the API's
/// terms, and exempt from 131063 (which sends Cloud API marketing there).
#[tokio::test]
async fn the_marketing_messages_route_has_its_own_rules() {
    let h = Harness::new().await;
    h.seed_template("promo", "MARKETING");
    h.seed_template("order_update", "UTILITY");
    h.user_writes("447700900121");
    let mm = |message: serde_json::Value| {
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "447700900121"});
        body.as_object_mut()
            .unwrap()
            .extend(message.as_object().unwrap().clone());
        body
    };
    let path = format!("{PHONE}/marketing_messages");
    let (s, b) = h.post(&path, mm(template("promo", &["Ann"]))).await;
    assert_eq!((s, code(&b)), (400, Some(100)), "not onboarded: {b}");
    h.sim().set_restrictions(
        WABA,
        Restrictions {
            marketing_on_cloud_disabled: true,
            marketing_messages_onboarded: true,
            ..Restrictions::default()
        },
    );
    let (s, b) = h.post(&path, mm(template("order_update", &["Ann"]))).await;
    assert_eq!((s, code(&b)), (400, Some(100)), "a utility template: {b}");
    let (s, b) = h.post(&path, mm(text("hi"))).await;
    assert_eq!((s, code(&b)), (400, Some(100)), "free-form: {b}");
    let (s, b) = h.post(&path, mm(template("promo", &["Ann"]))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h.send("447700900121", template("promo", &["Ann"])).await;
    assert_eq!(
        (s, code(&b)),
        (400, Some(131063)),
        "the Cloud API still refuses it"
    );
    assert_eq!(h.sim().messages().last().unwrap().api, "marketing_messages");
}
