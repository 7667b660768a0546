//! A local WhatsApp Cloud API, for tests and for developing without a Meta account.
//!
//! It serves the Graph API surface the middleware uses (`/messages`, message templates,
//! phone-number fields, `pricing_analytics`), enforces Meta's rules with Meta's error codes, and
//! POSTs signed webhooks (statuses with pricing, inbound messages from simulated users, template,
//! quality and account events) to a callback URL. It is built from
//! `shared/reference/cloud-api.md`, not from what the middleware sends, and shares no code with it.
//!
//! Use it in-process ([`Simulator::start`]) or standalone (`cargo run -p simulator`); drive it
//! through its Rust API or the HTTP control API under `/_sim/`.

mod access;
mod body;
mod control;
mod control_http;
mod graph;
mod identity;
mod media;
mod media_http;
mod model;
mod restrictions;
mod send;
mod templates;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{Value, json};

pub use control::{Fault, FaultRoute, InboundMedia, InboundSpec, PhoneChange};

pub use media::{MediaObject, RETENTION_S as MEDIA_RETENTION_S, URL_TTL_S as MEDIA_URL_TTL_S};
pub use model::{Delivery, Inbound, Outbound, Priced, RequestRecord, Restrictions, Tier};

/// What the simulator does, and how Meta-like its webhooks are.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The Meta app secret webhooks are signed with.
    pub app_secret: String,
    /// Where webhooks go; none are sent while unset.
    pub callback_url: Option<String>,
    /// The app's webhook version: ≤ v23.0 adds the CBP `conversation` object to statuses.
    pub webhook_version: String,
    /// Messages per second a number may send unless set per number (Meta: 80).
    pub default_mps: u32,
    /// Minimum gap between two messages to one user from one number (Meta: about 6 s).
    pub pair_rate_gap_ms: i64,
    /// Marketing templates one user may receive per moving 24 h (Meta's cap is adaptive and
    /// undisclosed); `None`: no cap.
    pub marketing_cap_per_user: Option<u32>,
    /// Delay before a new or edited template is reviewed.
    pub template_review_delay_ms: u64,
    /// Templates whose name contains one of these are rejected (reason `INVALID_FORMAT`).
    pub reject_templates_containing: Vec<String>,
    /// Gap between the sent, delivered and read statuses of a message.
    pub status_delay_ms: u64,
    /// Whether users read what they receive.
    pub auto_read: bool,
    /// Countries whose authentication templates are priced `authentication-international`.
    pub auth_international_countries: Vec<String>,
    /// From when service messages and in-window utility templates are charged (Meta's
    /// announced 1 Oct 2026 change); `None`: never.
    pub pmp_2026_from: Option<i64>,
    pub webhooks: WebhookConfig,
    /// Billing currency of new WABAs.
    pub currency: String,
    /// Cost of one charged message by pricing category, in the WABA's currency.
    pub rates: Vec<(String, f64)>,
    /// Seed for the duplicate and reorder decisions, so runs are repeatable.
    pub seed: u64,
    /// Faults drawn at random for sends (on top of injected ones); `None`: none.
    pub fault_mix: Option<FaultMix>,
}

/// A seeded mix of faults on `POST /{phone}/messages`, each a probability per request: what
/// the fault run drives the sender through. Drawn from the simulator's seeded generator (a run
/// with concurrent callers is repeatable in its proportions, not request by request).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultMix {
    /// 503 with code 2 (service unavailable), before anything is processed.
    pub server_error: f64,
    /// 429 with 130429 (throughput), before anything is processed.
    pub throttled: f64,
    /// The message is accepted, then the answer is held this long (the caller times out: the
    /// ambiguous case).
    pub hang_after: f64,
    pub hang_ms: u64,
    /// 400 with 131049 (per-user marketing limit), synchronously.
    pub per_user_limit: f64,
    /// The message is accepted, then fails asynchronously: a `failed` status with 131047.
    pub failed_status: f64,
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Changes per POST at most (Meta batches under load).
    pub batch_max: usize,
    /// How long to gather changes into one POST.
    pub batch_window_ms: u64,
    /// Chance that a POST is delivered twice.
    pub duplicate_probability: f64,
    /// Shuffle the changes gathered for one POST.
    pub reorder: bool,
    /// Extra delay before each POST.
    pub delay_ms: u64,
    /// Retries of a POST that did not get a 2xx: Meta backs off exponentially for up to 7 days;
    /// here the first retry waits `retry_base_ms`, then doubles.
    pub retry_base_ms: u64,
    pub retry_max_attempts: u32,
    pub timeout_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            app_secret: "sim-app-secret".into(),
            callback_url: None,
            webhook_version: "v25.0".into(),
            default_mps: 80,
            pair_rate_gap_ms: 6_000,
            marketing_cap_per_user: None,
            template_review_delay_ms: 50,
            reject_templates_containing: vec!["reject".into()],
            status_delay_ms: 20,
            auto_read: true,
            auth_international_countries: vec!["IN".into(), "ID".into(), "NG".into()],
            pmp_2026_from: Some(1_790_812_800),
            webhooks: WebhookConfig::default(),
            currency: "USD".into(),
            fault_mix: None,
            rates: vec![
                ("marketing".into(), 0.025),
                ("utility".into(), 0.004),
                ("authentication".into(), 0.0035),
                ("authentication-international".into(), 0.02),
                ("service".into(), 0.004),
            ],
            seed: 7,
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            batch_max: 1,
            batch_window_ms: 0,
            duplicate_probability: 0.0,
            reorder: false,
            delay_ms: 0,
            retry_base_ms: 200,
            retry_max_attempts: 8,
            timeout_ms: 5_000,
        }
    }
}

/// A Graph API error, rendered as Meta's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphError {
    pub http: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub details: Option<String>,
}

impl GraphError {
    pub fn new(
        http: u16,
        code: i64,
        message: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        GraphError {
            http,
            code,
            subcode: None,
            message: message.into(),
            details: Some(details.into()),
        }
    }

    /// Invalid parameter (100).
    pub fn param(details: impl Into<String>) -> Self {
        Self::new(400, 100, "Invalid parameter", details)
    }

    /// Required parameter is missing (131008).
    pub fn missing(name: &str) -> Self {
        Self::new(
            400,
            131008,
            "Required parameter is missing",
            format!("The parameter {name} is required."),
        )
    }

    /// Parameter value is not valid (131009).
    pub fn invalid(details: impl Into<String>) -> Self {
        Self::new(400, 131009, "Parameter value is not valid", details)
    }

    pub fn envelope(&self, fbtrace_id: &str) -> Value {
        let mut error = json!({
            "message": format!("(#{}) {}", self.code, self.message),
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": fbtrace_id,
        });
        if let Some(d) = &self.details {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": d});
        }
        if let Some(s) = self.subcode {
            error["error_subcode"] = json!(s);
        }
        json!({ "error": error })
    }
}

pub(crate) struct Inner {
    world: Mutex<model::World>,
    config: Mutex<SimConfig>,
    faults: Mutex<Vec<Fault>>,
    clock_offset_ms: AtomicI64,
    rng: Mutex<u64>,
    webhooks: webhooks::Outbox,
    /// `http://host:port` once serving: the base of media download URLs.
    public_url: Mutex<Option<String>>,
}

/// A handle on one simulator; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

/// A simulator serving HTTP on loopback; stops when dropped.
pub struct RunningSimulator {
    pub sim: Simulator,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:<port>`: use it as the Graph API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Simulator {
    /// A simulator with an empty world. Must be called inside a Tokio runtime (it starts the
    /// webhook delivery task).
    pub fn new(config: SimConfig) -> Self {
        let seed = config.seed;
        let inner = Arc::new_cyclic(|weak| Inner {
            world: Mutex::new(model::World::new()),
            config: Mutex::new(config),
            faults: Mutex::new(Vec::new()),
            clock_offset_ms: AtomicI64::new(0),
            rng: Mutex::new(seed | 1),
            webhooks: webhooks::Outbox::start(weak.clone()),
            public_url: Mutex::new(None),
        });
        Simulator { inner }
    }

    /// Serves the Graph API and the control API on `addr` (use port 0 for any free port).
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
        let sim = Simulator::new(config);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        *lock(&sim.inner.public_url) = Some(format!("http://{addr}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = graph::router(sim.clone()).merge(control_http::router(sim.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(RunningSimulator {
            sim,
            addr,
            shutdown: Some(tx),
        })
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, model::World> {
        lock(&self.inner.world)
    }

    /// A copy of the current configuration.
    pub fn config(&self) -> SimConfig {
        lock(&self.inner.config).clone()
    }

    /// Changes the configuration (e.g. the callback URL or webhook behaviour) while running.
    pub fn configure(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut lock(&self.inner.config));
    }

    /// The simulated clock, in epoch milliseconds: real time plus what [`Self::advance_clock`]
    /// added.
    pub fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        real + self.inner.clock_offset_ms.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> i64 {
        self.now_ms() / 1000
    }

    /// Moves the simulated clock forward (windows, caps and limits see the new time).
    pub fn advance_clock(&self, seconds: i64) {
        self.inner
            .clock_offset_ms
            .fetch_add(seconds * 1000, Ordering::SeqCst);
    }

    /// A deterministic pseudo-random number in [0, 1).
    pub(crate) fn random(&self) -> f64 {
        let mut x = lock(&self.inner.rng);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn fbtrace_id(&self) -> String {
        format!("A{:x}", (self.random() * 1e15) as u64)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
