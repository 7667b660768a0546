//! Test harness: a simulator on loopback with one WABA, number and token, and a webhook
//! receiver that records every POST and checks its signature.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use simulator::{RunningSimulator, SimConfig, Simulator, Tier};

pub const WABA: &str = "102290129340398";
pub const PHONE: &str = "106540352242922";
pub const TOKEN: &str = "test-token";
pub const SECRET: &str = "test-app-secret";

/// What the receiver got: raw body and signature header, per POST.
#[derive(Clone, Default)]
pub struct Receiver {
    pub posts: Arc<Mutex<Vec<(String, String)>>>,
    /// Answer with this status for the next N posts (then 200).
    pub fail_next: Arc<Mutex<(u32, u16)>>,
}

impl Receiver {
    /// Every change received so far, flattened: (field, value).
    pub fn changes(&self) -> Vec<(String, Value)> {
        let posts = self.posts.lock().unwrap();
        let mut out = Vec::new();
        for (body, sig) in posts.iter() {
            // Every webhook verifies with the app secret over the exact bytes, and is ASCII
            // (Meta escapes everything else).
            assert_eq!(
                whatsapp_core::signature::verify(SECRET.as_bytes(), body.as_bytes(), Some(sig)),
                Ok(()),
                "bad signature on {body}"
            );
            assert!(body.is_ascii(), "non-ASCII in {body}");
            let env: Value = serde_json::from_str(body).unwrap();
            for entry in env["entry"].as_array().unwrap() {
                for c in entry["changes"].as_array().unwrap() {
                    out.push((c["field"].as_str().unwrap().to_owned(), c["value"].clone()));
                }
            }
        }
        out
    }

    /// Every status object received, flattened.
    pub fn statuses(&self) -> Vec<Value> {
        self.changes()
            .into_iter()
            .filter(|(f, _)| f == "messages")
            .flat_map(|(_, v)| v["statuses"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    pub fn statuses_of(&self, wamid: &str) -> Vec<Value> {
        self.statuses()
            .into_iter()
            .filter(|s| s["id"] == wamid)
            .collect()
    }

    /// Waits until `pred` holds over the received changes (or panics after 5 s).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Receiver) -> bool) {
        for _ in 0..500 {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}; got {:?}", self.changes());
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    r.posts
        .lock()
        .unwrap()
        .push((String::from_utf8(body.to_vec()).unwrap(), sig));
    let mut f = r.fail_next.lock().unwrap();
    if f.0 > 0 {
        f.0 -= 1;
        return StatusCode::from_u16(f.1).unwrap();
    }
    StatusCode::OK
}

pub struct Harness {
    pub running: RunningSimulator,
    pub receiver: Receiver,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut SimConfig)) -> Self {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/webhook", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut cfg = SimConfig {
            app_secret: SECRET.into(),
            callback_url: Some(format!("http://{addr}/webhook")),
            status_delay_ms: 1,
            template_review_delay_ms: 10,
            pair_rate_gap_ms: 0,
            ..SimConfig::default()
        };
        tweak(&mut cfg);
        let running = Simulator::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        running.sim.create_waba(WABA, Tier::T2K);
        running.sim.create_phone_number(PHONE, WABA, "15550783881");
        running.sim.add_token(TOKEN, None);
        Harness {
            running,
            receiver,
            http: reqwest::Client::new(),
        }
    }

    pub fn sim(&self) -> &Simulator {
        &self.running.sim
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v25.0/{path}", self.running.base_url())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(path, body, TOKEN).await
    }

    pub async fn post_as(&self, path: &str, body: Value, token: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Sends `message` (a Graph message object without envelope) to `to`.
    pub async fn send(&self, to: &str, message: Value) -> (u16, Value) {
        let mut body =
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to});
        body.as_object_mut()
            .unwrap()
            .extend(message.as_object().unwrap().clone());
        self.post(&format!("{PHONE}/messages"), body).await
    }

    /// The user writes a text, opening the service window.
    pub fn user_writes(&self, wa_id: &str) -> String {
        self.user_writes_to(PHONE, wa_id)
    }

    /// The user writes a text to the business number `phone`.
    pub fn user_writes_to(&self, phone: &str, wa_id: &str) -> String {
        self.sim()
            .user_sends(
                wa_id,
                simulator::InboundSpec {
                    phone_number_id: phone.into(),
                    message: json!({"type": "text", "text": {"body": "hi"}}),
                    referral: None,
                    context: None,
                    hide_phone_number: false,
                    media: None,
                },
            )
            .unwrap()
    }

    /// A positional utility template `order_update` with one body variable, approved.
    pub fn seed_template(&self, name: &str, category: &str) -> String {
        self.sim()
            .seed_template(WABA, json!({
                "name": name, "language": "en_US", "category": category,
                "components": [{"type": "BODY", "text": "Hello {{1}}, your order shipped.", "example": {"body_text": [["Ann"]]}}]
            }))
            .unwrap()
    }
}

pub fn template(name: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"type": "text", "text": p}))
        .collect();
    json!({"type": "template", "template": {"name": name, "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": parameters}]}})
}

pub fn text(body: &str) -> Value {
    json!({"type": "text", "text": {"body": body}})
}
