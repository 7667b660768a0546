//! Webhook delivery as Meta does it: changes grouped into `{"object", "entry": [...]}` envelopes,
//! serialised with non-ASCII escaped as `\uXXXX` (and `/` as `\/`), signed with
//! `X-Hub-Signature-256` over the exact bytes sent, and retried with exponential back-off until
//! the endpoint answers 2xx. Batching, duplicates, reordering and delays are configurable.

use std::sync::Weak;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::model::Delivery;
use crate::{Inner, Simulator, lock};

/// One change waiting to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub waba_id: String,
    pub field: &'static str,
    pub value: Value,
    /// Not before this instant (epoch ms, simulated clock).
    pub not_before_ms: i64,
}

/// The queue of changes and the task that delivers them.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Outbox {
    pub fn start(inner: Weak<Inner>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver_loop(inner, rx));
        Outbox { tx }
    }
}

impl Simulator {
    /// Queues a change for delivery to the callback URL.
    pub(crate) fn emit(&self, waba_id: &str, field: &'static str, value: Value, delay_ms: u64) {
        let p = Pending {
            waba_id: waba_id.to_owned(),
            field,
            value,
            not_before_ms: self.now_ms() + delay_ms as i64,
        };
        let _ = self.inner.webhooks.tx.send(p);
    }
}

/// `sha256=<lowercase hex>` of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// JSON as Meta sends it: every non-ASCII character as a lowercase `\uXXXX` escape (UTF-16
/// surrogate pairs beyond the BMP) and `/` as `\/`.
pub fn meta_json(v: &Value) -> String {
    let plain = v.to_string();
    let mut out = String::with_capacity(plain.len() + plain.len() / 8);
    for c in plain.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out
}

/// Groups changes into one envelope: one entry per WABA, changes in the given order.
pub(crate) fn envelope(changes: &[Pending], now_s: i64) -> Value {
    let mut entries: Vec<(String, Vec<Value>)> = Vec::new();
    for c in changes {
        let change = json!({"value": c.value, "field": c.field});
        match entries.iter_mut().find(|(id, _)| *id == c.waba_id) {
            Some((_, list)) => list.push(change),
            None => entries.push((c.waba_id.clone(), vec![change])),
        }
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": entries.into_iter().map(|(id, changes)| json!({"id": id, "time": now_s, "changes": changes})).collect::<Vec<_>>(),
    })
}

async fn deliver_loop(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let http = reqwest::Client::new();
    while let Some(first) = rx.recv().await {
        let Some(sim) = inner.upgrade().map(|inner| Simulator { inner }) else {
            return;
        };
        let cfg = sim.config();
        let w = cfg.webhooks.clone();
        if w.batch_window_ms > 0 {
            tokio::time::sleep(Duration::from_millis(w.batch_window_ms)).await;
        }
        let mut batch = vec![first];
        while batch.len() < w.batch_max.max(1) {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // Honour each change's earliest delivery time.
        let wait = batch.iter().map(|p| p.not_before_ms).max().unwrap_or(0) - sim.now_ms();
        let wait = wait.max(0) as u64 + w.delay_ms;
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if w.reorder {
            for i in (1..batch.len()).rev() {
                let j = (sim.random() * (i + 1) as f64) as usize;
                batch.swap(i, j.min(i));
            }
        }
        let Some(url) = cfg.callback_url.clone() else {
            continue;
        };
        // Each app signs its own accounts' changes: one envelope per app.
        for (secret, changes) in by_app(&sim, batch, &cfg.app_secret) {
            let body = meta_json(&envelope(&changes, sim.now()));
            let signature = sign(secret.as_bytes(), body.as_bytes());
            let duplicate = sim.random() < w.duplicate_probability;
            let job = Post {
                sim: sim.clone(),
                http: http.clone(),
                url: url.clone(),
                body,
                signature,
                attempt: 1,
            };
            if duplicate {
                let again = Post {
                    attempt: 1,
                    ..job.clone()
                };
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    again.run().await;
                });
            }
            // Deliveries stay in order unless reordering is on: wait for the first attempt.
            job.run().await;
        }
    }
}

/// `batch` split by the app secret that signs each change (its account's app, else
/// `default`), in order of first appearance, each group's changes in their order.
fn by_app(sim: &Simulator, batch: Vec<Pending>, default: &str) -> Vec<(String, Vec<Pending>)> {
    let world = sim.world();
    let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
    for p in batch {
        let secret = world
            .wabas
            .get(&p.waba_id)
            .and_then(|w| w.app_secret.clone())
            .unwrap_or_else(|| default.to_owned());
        match groups.iter_mut().find(|(s, _)| *s == secret) {
            Some((_, list)) => list.push(p),
            None => groups.push((secret, vec![p])),
        }
    }
    groups
}

#[derive(Clone)]
struct Post {
    sim: Simulator,
    http: reqwest::Client,
    url: String,
    body: String,
    signature: String,
    attempt: u32,
}

impl Post {
    /// The first attempt now; on failure, retries with exponential back-off in the background,
    /// so later webhooks are not held up (as with Meta, a failing endpoint delays only what it
    /// fails).
    async fn run(mut self) {
        if self.attempt_once().await {
            return;
        }
        tokio::spawn(async move {
            let w = self.sim.config().webhooks;
            while self.attempt < w.retry_max_attempts {
                let backoff = w
                    .retry_base_ms
                    .saturating_mul(1 << (self.attempt - 1).min(20));
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                self.attempt += 1;
                if self.attempt_once().await {
                    return;
                }
            }
        });
    }

    /// One POST; true when the endpoint answered 2xx.
    async fn attempt_once(&self) -> bool {
        let w = self.sim.config().webhooks;
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &self.signature)
            .timeout(Duration::from_millis(w.timeout_ms))
            .body(self.body.clone())
            .send()
            .await;
        let status = res.as_ref().ok().map(|r| r.status().as_u16());
        crate::model::push_capped(
            &mut lock(&self.sim.inner.world).deliveries,
            Delivery {
                body: self.body.clone(),
                signature: self.signature.clone(),
                attempt: self.attempt,
                status,
            },
        );
        status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_meta() {
        let v = json!({"t": "äöå / 👍 @"});
        assert_eq!(
            meta_json(&v),
            r#"{"t":"\u00e4\u00f6\u00e5 \/ \ud83d\udc4d @"}"#
        );
        let back: Value = serde_json::from_str(&meta_json(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn signs_the_published_vector() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn groups_changes_by_waba() {
        let p = |w: &str| Pending {
            waba_id: w.into(),
            field: "messages",
            value: json!({}),
            not_before_ms: 0,
        };
        let env = envelope(&[p("a"), p("b"), p("a")], 1);
        assert_eq!(env["entry"].as_array().unwrap().len(), 2);
        assert_eq!(env["entry"][0]["changes"].as_array().unwrap().len(), 2);
    }
}
