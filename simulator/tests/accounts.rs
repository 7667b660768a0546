//! Several business accounts and apps in one simulator: a system user's token reaches only the
//! accounts assigned to it, and each account's webhooks are signed by the app it is subscribed
//! to.

mod common;

use common::{Harness, PHONE, SECRET, WABA, text};
use serde_json::{Value, json};
use simulator::Tier;

const WABA_2: &str = "102290129340399";
const PHONE_2: &str = "106540352242999";
const SECOND_SECRET: &str = "the-second-apps-secret";

async fn two_accounts() -> Harness {
    let h = Harness::with(|c| {
        c.webhooks.batch_max = 10;
        c.webhooks.batch_window_ms = 100;
    })
    .await;
    h.sim().create_waba(WABA_2, Tier::T2K);
    h.sim().create_phone_number(PHONE_2, WABA_2, "15550000002");
    h
}

async fn call(h: &Harness, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let req = match method {
        "GET" => h.http.get(h.url(path)),
        _ => h.http.post(h.url(path)).json(&body),
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn send_body(to: &str) -> Value {
    let mut body = json!({"messaging_product": "whatsapp", "to": to});
    body.as_object_mut()
        .unwrap()
        .extend(text("hi").as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn a_scoped_token_reaches_its_own_accounts_only() {
    let h = two_accounts().await;
    h.sim().add_scoped_token("only-first", None, &[WABA]);
    h.sim().add_scoped_token("only-second", None, &[WABA_2]);
    h.user_writes("447700900801");
    let (status, _) = call(
        &h,
        "POST",
        &format!("{PHONE}/messages"),
        "only-first",
        send_body("447700900801"),
    )
    .await;
    assert_eq!(status, 200);
    for (method, path) in [
        ("POST", format!("{PHONE_2}/messages")),
        ("GET", PHONE_2.to_owned()),
        ("GET", format!("{WABA_2}/message_templates")),
        ("GET", format!("{WABA_2}/phone_numbers")),
    ] {
        let (status, body) = call(&h, method, &path, "only-first", send_body("1")).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], 100);
        assert_eq!(body["error"]["error_subcode"], 33);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("Unsupported {} request", method.to_lowercase())),
            "{message}"
        );
    }
    // The other account's token reaches it; the unscoped harness token reaches both.
    let (status, body) = call(&h, "GET", PHONE_2, "only-second", Value::Null).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(PHONE_2)));
    let (status, _) = call(&h, "GET", PHONE_2, common::TOKEN, Value::Null).await;
    assert_eq!(status, 200);
    // Over the control API too; a revoked or unknown token is 190 whatever the object.
    let control = format!("{}/_sim/tokens", h.running.base_url());
    let r = h
        .http
        .post(&control)
        .json(&json!({"token": "via-http", "wabas": [WABA_2]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(call(&h, "GET", PHONE, "via-http", Value::Null).await.0, 400);
    assert_eq!(
        call(&h, "GET", PHONE_2, "via-http", Value::Null).await.0,
        200
    );
    let r = h
        .http
        .post(&control)
        .json(&json!({"token": "bad", "wabas": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    h.sim().add_scoped_token("only-first", Some(1), &[WABA]);
    let (status, body) = call(&h, "GET", PHONE, "only-first", Value::Null).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (401, Some(190)));
}

#[tokio::test]
async fn each_account_is_signed_by_its_own_app() {
    let h = two_accounts().await;
    h.sim().subscribe_app(WABA_2, SECOND_SECRET);
    h.user_writes("447700900811");
    h.user_writes_to(PHONE_2, "447700900812");
    h.receiver
        .wait_for("a post per app", |r| r.posts.lock().unwrap().len() == 2)
        .await;
    let posts = h.receiver.posts.lock().unwrap().clone();
    let mut signed: Vec<(String, &str)> = posts
        .iter()
        .map(|(body, sig)| {
            let env: Value = serde_json::from_str(body).unwrap();
            let entries = env["entry"].as_array().unwrap();
            assert_eq!(entries.len(), 1, "one app's accounts per envelope: {body}");
            let by = [SECRET, SECOND_SECRET]
                .into_iter()
                .find(|s| {
                    whatsapp_core::signature::verify(s.as_bytes(), body.as_bytes(), Some(sig))
                        .is_ok()
                })
                .expect("signed by a known app");
            (entries[0]["id"].as_str().unwrap().to_owned(), by)
        })
        .collect();
    signed.sort();
    assert_eq!(
        signed,
        [
            (WABA.to_owned(), SECRET),
            (WABA_2.to_owned(), SECOND_SECRET)
        ]
    );
}
