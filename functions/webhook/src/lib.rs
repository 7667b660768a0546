//! The `webhook` function: Meta's verification GET, and signed POSTs whose items are processed
//! inline, exactly once, before answering 200.
//!
//! A POST is acknowledged only once it is durable: every item's effects are committed, or the
//! items that could not be processed are on the events queue for the event processor. If
//! neither holds, the answer is 500 and Meta retries. See the README for why processing is
//! inline rather than always through a queue.

mod config;

pub use config::Config;

use std::collections::HashMap;

use futures_util::future::join_all;
use tracing::{debug, error, info, warn};
use whatsapp_core::foreign::ForeignKind;
use whatsapp_core::ingest::{self, IngestConfig, IngestPorts, Outcome, single_item_envelope};
use whatsapp_core::metrics::catalog;
use whatsapp_core::ports::{MessageQueue, Quarantine, SecretSource};
use whatsapp_core::signature::{self, SignatureError};
use whatsapp_core::webhook::{Envelope, Item, ItemContext};

/// An HTTP request, as the Lambda adapter hands it over (body already base64-decoded).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub query: &'a HashMap<String, String>,
    /// The raw `X-Hub-Signature-256` header value, looked up case-insensitively.
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain",
            body: body.into(),
        }
    }
}

/// Limits and behaviour of the handler.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bodies above this are refused with 413 before hashing (Meta sends up to 3 MB).
    pub max_body_bytes: usize,
    /// Items processed at once.
    pub concurrency: usize,
    pub ingest: IngestConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_body_bytes: 3 * 1024 * 1024 + 64 * 1024,
            concurrency: 16,
            ingest: IngestConfig::default(),
        }
    }
}

/// The handler, generic over its ports.
pub struct Webhook<P, S, E> {
    pub ports: P,
    pub secrets: S,
    /// The events queue: where items go when they cannot be processed inline.
    pub events: E,
    pub settings: Settings,
}

/// What one POST did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub items: usize,
    pub applied: usize,
    pub duplicates: usize,
    /// Items not ours to act on, published on the Meta events topic.
    pub published: usize,
    /// Items handed to the event processor.
    pub queued: usize,
    /// Inbound messages (customer messages and echoes) the POST carried.
    pub inbound: usize,
    /// Inbound messages that opened or extended a customer-service window.
    pub window_hits: usize,
    /// Refused because the app secret is empty, a placeholder or too short (fail closed).
    pub not_configured: bool,
    /// Kept in the quarantine bucket: a signed body that is not JSON, or malformed values.
    pub quarantined: usize,
    /// The configured app whose secret signed the body (`default`, or a name from `apps`).
    pub signed_by: Option<String>,
}

/// Counted on every request refused because a secret is not set: the template's alarm watches
/// it.
pub const NOT_CONFIGURED_METRIC: &str = catalog::WEBHOOK_NOT_CONFIGURED.name;

impl Tally {
    /// The POST's EMF document. Logs are most of what a webhook costs beyond its invocation,
    /// so it holds only what applies: `WindowHits` only when the POST carried inbound messages
    /// (a status-only POST has no window to hit, and a missing value leaves the metric's sum
    /// unchanged), the latency to the microsecond.
    pub fn metrics(&self, latency_ms: f64, now_ms: i64) -> serde_json::Value {
        let latency = (latency_ms * 1000.0).round() / 1000.0;
        let mut metrics = vec![
            (catalog::WEBHOOK_LATENCY, latency),
            (catalog::WEBHOOK_ITEMS, self.items as f64),
        ];
        if self.inbound > 0 {
            metrics.push((catalog::WINDOW_HITS, self.window_hits as f64));
        }
        if self.not_configured {
            metrics.push((catalog::WEBHOOK_NOT_CONFIGURED, 1.0));
        }
        if self.quarantined > 0 {
            metrics.push((catalog::WEBHOOK_QUARANTINED, self.quarantined as f64));
        }
        whatsapp_core::metrics::document(&[], &metrics, now_ms)
    }
}

impl<P, S, E> Webhook<P, S, E>
where
    P: IngestPorts,
    S: SecretSource,
    E: MessageQueue,
{
    pub async fn handle(&self, req: Request<'_>, now_ms: i64) -> Response {
        match req.method {
            "GET" => self.verify(req.query, now_ms).await,
            "POST" => {
                let started = std::time::Instant::now();
                let (response, tally) = self.receive(req.signature, req.body, now_ms).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                whatsapp_core::metrics::emit(&[tally.metrics(ms, now_ms)]);
                response
            }
            _ => Response::text(405, "method not allowed"),
        }
    }

    /// The subscription handshake: echo `hub.challenge` when the mode is `subscribe` and the
    /// token matches (constant time). No signature on GET.
    async fn verify(&self, query: &HashMap<String, String>, now_ms: i64) -> Response {
        let secrets = match self.secrets.secrets().await {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "secret unavailable");
                return Response::text(500, "unavailable");
            }
        };
        if let Err(weak) = signature::usable_secret(&secrets.verify_token) {
            error!(alert = true, reason = %weak, "verify token not set; refusing the verification handshake");
            let doc = whatsapp_core::metrics::document(
                &[],
                &[(catalog::WEBHOOK_NOT_CONFIGURED, 1.0)],
                now_ms,
            );
            whatsapp_core::metrics::emit(&[doc]);
            return Response::text(503, "not configured");
        }
        let mode = query.get("hub.mode").map(String::as_str);
        let token = query
            .get("hub.verify_token")
            .map(String::as_bytes)
            .unwrap_or_default();
        let challenge = query.get("hub.challenge");
        match (mode, challenge) {
            (Some("subscribe"), Some(challenge))
                if signature::secrets_equal(token, secrets.verify_token.as_bytes()) =>
            {
                info!("webhook verified");
                Response::text(200, challenge.clone())
            }
            _ => {
                warn!("verification refused");
                Response::text(403, "forbidden")
            }
        }
    }

    /// A signed POST. Returns the response and what was done.
    pub async fn receive(&self, sig: Option<&str>, body: &[u8], now_ms: i64) -> (Response, Tally) {
        let mut tally = Tally::default();
        let envelope = match self.verified(sig, body, &mut tally).await {
            Ok(envelope) => envelope,
            Err(answer) => return (answer, tally),
        };
        let items: Vec<_> = envelope.items().collect();
        tally.items = items.len();
        tally.inbound = items
            .iter()
            .filter(|(_, i)| matches!(i, whatsapp_core::webhook::Item::Message { .. }))
            .count();
        let failed = self.process_inline(&items, now_ms, &mut tally).await;
        if let Err(answer) = self.queue_failed(failed, &mut tally).await {
            return (answer, tally);
        }
        log_tally(&tally);
        (Response::text(200, "ok"), tally)
    }

    /// Steps 1–3: the size, a usable app secret, the signature over the exact bytes, the JSON. `Err` is the answer
    /// to give at once (a signed body that is not JSON is quarantined and acknowledged).
    async fn verified(
        &self,
        sig: Option<&str>,
        body: &[u8],
        tally: &mut Tally,
    ) -> Result<Envelope, Response> {
        if body.len() > self.settings.max_body_bytes {
            warn!(
                bytes = body.len(),
                limit = self.settings.max_body_bytes,
                "body too large"
            );
            return Err(Response::text(413, "payload too large"));
        }
        let secrets = self.secrets.secrets().await.map_err(|e| {
            error!(error = %e, "secret unavailable");
            Response::text(500, "unavailable")
        })?;
        // HMAC takes any key: with the template's placeholder anyone could sign. An unusable
        // secret is never tried; with none usable, fail closed (Meta retries 5xx for days, so
        // nothing is lost once a secret is set).
        let apps: Vec<(&str, &[u8])> = secrets
            .app_secrets()
            .filter(|(app, secret)| match signature::usable_secret(secret) {
                Ok(()) => true,
                Err(weak) => {
                    error!(alert = true, app, reason = %weak, "app secret not usable; not tried");
                    false
                }
            })
            .map(|(app, secret)| (app, secret.as_bytes()))
            .collect();
        if apps.is_empty() {
            error!(alert = true, "no app secret set; refusing every webhook");
            tally.not_configured = true;
            return Err(Response::text(503, "not configured"));
        }
        match signature::verify_any(&apps, body, sig) {
            Ok(app) => tally.signed_by = Some(app.to_owned()),
            Err(e) => {
                let kind = match e {
                    SignatureError::Missing => "missing",
                    SignatureError::Malformed => "malformed",
                    SignatureError::Mismatch => "mismatch",
                };
                warn!(kind, apps = apps.len(), "signature refused");
                return Err(Response::text(401, "invalid signature"));
            }
        }
        let Ok(envelope) = Envelope::from_slice(body) else {
            // Signed by Meta but unreadable: keep it and stop Meta retrying.
            return Err(
                match self.ports.quarantine().keep(body, "invalid-json").await {
                    Ok(location) => {
                        tally.quarantined += 1;
                        warn!(bytes = body.len(), %location, "unparsable webhook quarantined");
                        Response::text(200, "ok")
                    }
                    Err(e) => {
                        error!(error = %e, "quarantine failed");
                        Response::text(500, "unavailable")
                    }
                },
            );
        };
        Ok(envelope)
    }

    /// Step 4: every item, `concurrency` at a time, exactly once. Returns those a store error
    /// stopped, and those another delivery is still forwarding.
    async fn process_inline<'a>(
        &self,
        items: &[(ItemContext<'a>, Item<'a>)],
        now_ms: i64,
        tally: &mut Tally,
    ) -> Vec<(ItemContext<'a>, Item<'a>)> {
        let mut failed = Vec::new();
        for chunk in items.chunks(self.settings.concurrency.max(1)) {
            let results = join_all(chunk.iter().map(|&(ctx, item)| {
                ingest::process(&self.ports, &self.settings.ingest, ctx, item, now_ms)
            }))
            .await;
            for (&(ctx, item), result) in chunk.iter().zip(results) {
                match result {
                    Ok(Outcome::Applied) => {
                        tally.applied += 1;
                        if matches!(item, Item::Message { .. }) {
                            tally.window_hits += 1;
                        }
                    }
                    Ok(Outcome::Duplicate) => tally.duplicates += 1,
                    // Another delivery holds the forward lease and may have died holding it:
                    // acknowledging would lose the message, so it goes to the events queue,
                    // whose processor retries it once the lease runs out.
                    Ok(Outcome::InFlight) => failed.push((ctx, item)),
                    Ok(Outcome::Published(kind)) => {
                        tally.published += 1;
                        if kind == ForeignKind::Malformed.label() {
                            tally.quarantined += 1;
                        }
                        info!(kind, field = item_field(&item), "item published for others");
                    }
                    Err(e) => {
                        warn!(error = %e, "item not processed inline; queueing it");
                        failed.push((ctx, item));
                    }
                }
            }
        }
        failed
    }

    /// Step 5: what could not be processed goes on the events queue, one item per message;
    /// `Err` (500, so that Meta retries) only when that fails too.
    async fn queue_failed(
        &self,
        failed: Vec<(ItemContext<'_>, Item<'_>)>,
        tally: &mut Tally,
    ) -> Result<(), Response> {
        for (ctx, item) in failed {
            let env = single_item_envelope(ctx, item);
            let queued = match serde_json::to_string(&env) {
                Ok(body) => self
                    .events
                    .send(&body, None)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = queued {
                error!(error = %e, "could not queue an item; asking Meta to retry");
                return Err(Response::text(500, "unavailable"));
            }
            tally.queued += 1;
        }
        Ok(())
    }
}

/// An ordinary POST says everything in its metrics document; only the unusual ones (duplicates,
/// published or queued items) are worth an INFO line of their own.
fn log_tally(tally: &Tally) {
    if tally.duplicates + tally.published + tally.queued > 0 {
        info!(
            app = tally.signed_by.as_deref(),
            items = tally.items,
            applied = tally.applied,
            duplicates = tally.duplicates,
            published = tally.published,
            queued = tally.queued,
            "webhook processed"
        );
    } else {
        debug!(
            app = tally.signed_by.as_deref(),
            items = tally.items,
            applied = tally.applied,
            "webhook processed"
        );
    }
}

/// The webhook field an item came from (a fixed label, safe to log).
fn item_field(item: &whatsapp_core::webhook::Item<'_>) -> String {
    use whatsapp_core::webhook::Item;
    match item {
        Item::Message { .. } | Item::Status { .. } | Item::Error { .. } | Item::Rejected { .. } => {
            "messages".into()
        }
        Item::TemplateStatus(_) => "message_template_status_update".into(),
        Item::TemplateCategory(_) => "template_category_update".into(),
        Item::PhoneNumberQuality(_) => "phone_number_quality_update".into(),
        Item::BusinessCapability(_) => "business_capability_update".into(),
        Item::Account(_) => "account_update".into(),
        Item::UserPreference { .. } => "user_preferences".into(),
        // Field names come from Meta; keep only a safe, bounded form.
        Item::Unhandled { field, .. } | Item::Malformed { field, .. } => {
            whatsapp_core::foreign::safe_field(field)
        }
    }
}

/// A function URL request as the handler needs it. Built by hand from the event, tolerantly: a
/// query string that is not a valid URI (which `lambda_http` panics on) is still parsed, so a
/// malformed request gets an answer, not a function error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub method: String,
    pub query: HashMap<String, String>,
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

impl Incoming {
    /// `None` when the body claims base64 and is not.
    pub fn from_event(
        event: &aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest,
    ) -> Option<Self> {
        use base64::Engine;
        let body = match (&event.body, event.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(b), false) => b.as_bytes().to_vec(),
            (Some(b), true) => base64::engine::general_purpose::STANDARD.decode(b).ok()?,
        };
        let query = match event.raw_query_string.as_deref() {
            Some(q) if !q.is_empty() => form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            _ => event.query_string_parameters.clone(),
        };
        Some(Incoming {
            method: event
                .request_context
                .http
                .method
                .clone()
                .unwrap_or_default()
                .to_ascii_uppercase(),
            query,
            signature: event
                .headers
                .get(whatsapp_core::signature::SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
        })
    }
}

#[cfg(test)]
mod tests;
