//! The sender: takes send jobs from SQS, holds them to WhatsApp's policy, and sends each exactly
//! once through the Graph API.
//!
//! One batch runs in four phases:
//! 1. per record, concurrently: parse, take the idempotency record, reconcile a send whose
//!    outcome was lost, and run the gates in the documented order (contract, consent, window,
//!    template, messaging limit);
//! 2. per number: reserve throughput slots for every record that passed, in as few writes as
//!    the shared counters allow;
//! 3. per record, concurrently: wait for the slot, take the pair-rate turn, send, classify;
//! 4. dead-letter and publish the outcomes, defer what must wait, and report exactly the
//!    records that must come back.

pub mod config;
#[cfg(feature = "fakes")]
pub mod memory;
pub mod outcome;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use shared::graph::{ErrorAction, ErrorClass, SendMessageRequest, SendMessageResponse};
use shared::job::{JobRejection, Recipient, SendJob};
use shared::policy::{
    THROUGHPUT_SLOT_MS, TemplateShape, WindowState, check_parameters, granted, slot_capacity,
    slot_of,
};
use shared::ports::{
    Begin, ConsentEvent, ContactStore, DeadLetters, DedupeStore, GraphApi, GraphCallError,
    MessageQueue, MessageStore, NumberLimits, PreviousHold, Reach, Redelivery, SecretSource,
    SendControl, SessionStore, StoreError, TemplateStore, UserKey,
};

pub use config::{NumberHome, SenderConfig};
pub use outcome::{Outcome, OutcomeError, Verdict};

/// Everything the sender talks to.
pub trait SenderPorts: Send + Sync {
    type Sessions: SessionStore;
    type Contacts: ContactStore;
    type Templates: TemplateStore;
    type Messages: MessageStore;
    type Dedupe: DedupeStore;
    type Control: SendControl;
    type Graph: GraphApi;
    type Secrets: SecretSource;
    type Outcomes: MessageQueue;
    type DeadLetters: DeadLetters;
    type Redelivery: Redelivery;

    fn sessions(&self) -> &Self::Sessions;
    fn contacts(&self) -> &Self::Contacts;
    fn templates(&self) -> &Self::Templates;
    fn messages(&self) -> &Self::Messages;
    fn dedupe(&self) -> &Self::Dedupe;
    fn control(&self) -> &Self::Control;
    fn graph(&self) -> &Self::Graph;
    fn secrets(&self) -> &Self::Secrets;
    /// The queue producers read outcomes from.
    fn outcomes(&self) -> &Self::Outcomes;
    /// The send queue's dead-letter queue.
    fn dead_letters(&self) -> &Self::DeadLetters;
    /// Visibility of the send queue's messages.
    fn redelivery(&self) -> &Self::Redelivery;
}

/// The key of a job's idempotency record: producers' keys are scoped by sending number.
pub fn record_key(job: &SendJob) -> String {
    format!("send#{}#{}", job.phone_number_id, job.idempotency_key)
}

/// What we send as `biz_opaque_callback_data`: a digest of the record key, so status webhooks
/// can be matched to the job without showing Meta the producer's key.
pub fn callback_data(record_key: &str) -> String {
    let digest = Sha256::digest(record_key.as_bytes());
    format!("j1.{}", &hex::encode(digest)[..32])
}

/// The hash of a job's payload: SHA-256 of its canonical JSON (sorted keys), so a redelivery of
/// the same job matches whatever the producer's key order was.
pub fn payload_hash(job: &SendJob) -> String {
    let canonical = serde_json::to_value(job)
        .map(|v| v.to_string())
        .unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// What a holder leaves in the idempotency record when it gives the job back to the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    /// Nothing was sent: the next holder may send at once.
    #[serde(default)]
    unsent: bool,
    /// A send whose outcome is unknown was made at this time (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempted_at_ms: Option<i64>,
    /// Failed attempts so far.
    #[serde(default)]
    failures: u32,
    /// The last failure's error, for the final outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<OutcomeError>,
}

/// The clock of one invocation: the caller's `now` plus real elapsed time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start_ms: i64,
    started: Instant,
}

impl Clock {
    fn now_ms(&self) -> i64 {
        self.start_ms + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// Where a record stands between phases.
enum Step {
    /// A verdict: dead-letter (if set), publish, acknowledge.
    Done {
        outcome: String,
        dead_letter: Option<(String, String)>,
    },
    /// Give the record back to the queue, visible again in `delay_s` (`None`: the queue's own
    /// visibility timeout).
    Later { delay_s: Option<u32> },
    /// Passed the gates; needs a throughput slot.
    Ready(Box<Ready>),
}

struct Ready {
    job: SendJob,
    key: String,
    callback: String,
    user: UserKey,
    window: WindowState,
    failures: u32,
    /// When the throughput slot starts (epoch ms).
    slot_at_ms: Option<i64>,
}

/// The sender, generic over its ports.
pub struct Sender<P> {
    pub ports: P,
    pub config: SenderConfig,
    limits: Mutex<HashMap<String, (Instant, NumberLimits)>>,
    /// Per number, the first slot not known to be full: where the next reservation starts.
    next_slot: Mutex<HashMap<String, i64>>,
}

/// Why a record could not be handled now (the record is retried through the queue).
#[derive(Debug, thiserror::Error)]
enum Transient {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("secrets unavailable: {0}")]
    Secrets(#[from] shared::ports::SecretError),
}

impl<P: SenderPorts> Sender<P> {
    pub fn new(ports: P, config: SenderConfig) -> Self {
        Sender {
            ports,
            config,
            limits: Mutex::new(HashMap::new()),
            next_slot: Mutex::new(HashMap::new()),
        }
    }

    /// Handles one SQS batch. `now_ms` is the current time, `deadline_ms` the invocation's
    /// deadline (both epoch ms). Returns exactly the records that must be delivered again.
    pub async fn handle(
        &self,
        records: &[SqsMessage],
        now_ms: i64,
        deadline_ms: i64,
    ) -> SqsBatchResponse {
        let clock = Clock {
            start_ms: now_ms,
            started: Instant::now(),
        };
        let concurrency = self.config.concurrency;
        // Phase 1: gates.
        let mut steps: Vec<Step> = futures_util::stream::iter(records)
            .map(|r| self.gate(r, clock, deadline_ms))
            .buffered(concurrency)
            .collect()
            .await;
        // Phase 2: throughput.
        self.reserve_throughput(&mut steps, clock).await;
        // Phase 3: send.
        let steps: Vec<Step> = futures_util::stream::iter(steps)
            .map(|s| self.send_step(s, clock, deadline_ms))
            .buffered(concurrency)
            .collect()
            .await;
        // Phase 4: outcomes and redeliveries.
        self.finish(records, steps).await
    }

    async fn number_limits(&self, phone_number_id: &str) -> NumberLimits {
        if let Some((at, l)) = lock(&self.limits).get(phone_number_id)
            && at.elapsed() < self.config.limits_cache
        {
            return l.clone();
        }
        match self.ports.control().number_limits(phone_number_id).await {
            Ok(l) => {
                lock(&self.limits).insert(phone_number_id.to_owned(), (Instant::now(), l.clone()));
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, "number limits unavailable; using defaults");
                NumberLimits::default()
            }
        }
    }

    async fn gate(&self, record: &SqsMessage, clock: Clock, deadline_ms: i64) -> Step {
        let body = record.body.as_deref().unwrap_or_default();
        let now_ms = clock.now_ms();
        let job = match SendJob::parse(body) {
            Ok(job) => job,
            Err(rejection) => return rejected_job(body, &rejection, now_ms),
        };
        let key = record_key(&job);
        match self.gate_job(job, key.clone(), clock, deadline_ms).await {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(error = %e, "transient failure; the record will be retried");
                Step::Later { delay_s: None }
            }
        }
    }

    async fn gate_job(
        &self,
        job: SendJob,
        key: String,
        clock: Clock,
        deadline_ms: i64,
    ) -> Result<Step, Transient> {
        let now_ms = clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let base = |o: Outcome| stamp(o, &job, 0);
        let Some(home) = self.config.numbers.get(&job.phone_number_id).cloned() else {
            let o = base(Outcome::rejected(
                "unknown_phone_number",
                "this deployment does not send from that phone number id",
                now_ms,
            ));
            return Ok(done(o, Some("unknown_phone_number")));
        };
        if let Some(not_after) = job.not_after
            && not_after.timestamp_millis() < now_ms
        {
            let o = base(Outcome::rejected(
                "expired",
                "not_after passed before the job could be sent",
                now_ms,
            ));
            return Ok(done(o, Some("expired")));
        }

        // Idempotency: one conditional write takes the job.
        let dedupe = self.ports.dedupe();
        let begin = dedupe
            .begin(
                &key,
                &payload_hash(&job),
                now_ms,
                deadline_ms.max(now_ms + 1_000),
                now + self.config.idempotency_ttl_s,
            )
            .await?;
        let previous = match begin {
            Begin::Started { previous } => previous,
            Begin::InProgress { until_ms } => {
                return Ok(Step::Later {
                    delay_s: Some(delay_seconds(until_ms - now_ms)),
                });
            }
            Begin::Completed { result } => {
                // Answered before: publish the same verdict again, never send again.
                return Ok(Step::Done {
                    outcome: result.unwrap_or_default(),
                    dead_letter: None,
                });
            }
            Begin::PayloadMismatch => {
                let o = base(Outcome::rejected(
                    "idempotency_key_reused",
                    "a different job already used this idempotency key",
                    now_ms,
                ));
                return Ok(done(o, Some("idempotency_key_reused")));
            }
        };
        let checkpoint: Checkpoint = previous
            .as_ref()
            .and_then(|p| p.checkpoint.as_deref())
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        // From here the record is ours: a failure must leave it in a state the next holder can
        // trust (nothing sent, or an attempt still to reconcile).
        let on_error = match &previous {
            Some(prev) if !checkpoint.unsent => Checkpoint {
                unsent: false,
                attempted_at_ms: Some(checkpoint.attempted_at_ms.unwrap_or(prev.held_until_ms)),
                ..checkpoint.clone()
            },
            _ => Checkpoint {
                unsent: true,
                ..checkpoint.clone()
            },
        };
        match self
            .gate_taken(job, key.clone(), home, previous, checkpoint, clock)
            .await
        {
            Ok(step) => Ok(step),
            Err(e) => {
                tracing::warn!(error = %e, "transient failure; the record will be retried");
                let _ = self.hold(&key, clock.now_ms() + 1_000, &on_error).await;
                Ok(Step::Later { delay_s: None })
            }
        }
    }

    /// Reconciliation and gates 2–5 for a job whose record we hold.
    async fn gate_taken(
        &self,
        job: SendJob,
        key: String,
        home: NumberHome,
        previous: Option<PreviousHold>,
        checkpoint: Checkpoint,
        clock: Clock,
    ) -> Result<Step, Transient> {
        let now_ms = clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let dedupe = self.ports.dedupe();
        let callback = callback_data(&key);

        // A previous holder may have reached Meta: reconcile before anything else.
        if let Some(prev) = &previous
            && !checkpoint.unsent
        {
            let since = checkpoint.attempted_at_ms.unwrap_or(prev.held_until_ms);
            if let Some(wamid) = self.ports.messages().find_by_callback(&callback).await? {
                let mut o = Outcome::new(Verdict::Accepted, now_ms);
                o.wamid = Some(wamid);
                o.reconciled = true;
                let o = stamp(o, &job, checkpoint.failures);
                dedupe
                    .complete(
                        &key,
                        Some(&o.to_json()),
                        now + self.config.idempotency_ttl_s,
                    )
                    .await?;
                tracing::info!(phone_number_id = %job.phone_number_id, "send reconciled from status webhooks");
                return Ok(done(o, None));
            }
            let wait = since + self.config.reconcile_after_ms - now_ms;
            if wait > 0 {
                let cp = Checkpoint {
                    unsent: false,
                    attempted_at_ms: Some(since),
                    ..checkpoint
                };
                self.hold(&key, now_ms + wait, &cp).await?;
                return Ok(Step::Later {
                    delay_s: Some(delay_seconds(wait)),
                });
            }
            tracing::warn!(
                phone_number_id = %job.phone_number_id,
                "no status for an earlier attempt within the reconciliation window; sending again"
            );
        }

        match self.policy(&job, &home, clock).await? {
            Ok((user, window)) => Ok(Step::Ready(Box::new(Ready {
                job,
                key,
                callback,
                user,
                window,
                failures: checkpoint.failures,
                slot_at_ms: None,
            }))),
            Err(o) => {
                let o = stamp(o, &job, checkpoint.failures);
                dedupe
                    .complete(
                        &key,
                        Some(&o.to_json()),
                        now + self.config.idempotency_ttl_s,
                    )
                    .await?;
                Ok(done(o, None))
            }
        }
    }

    /// Gates 2–5: consent, window, template, messaging limit. `Err` is the rejection.
    async fn policy(
        &self,
        job: &SendJob,
        home: &NumberHome,
        clock: Clock,
    ) -> Result<Result<(UserKey, WindowState), Outcome>, Transient> {
        let now_ms = clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let pn = &job.phone_number_id;
        let key = |u: &str| UserKey {
            phone_number_id: pn.clone(),
            user: u.to_owned(),
        };
        // Windows and consent are kept under the business-scoped id once the user has written
        // (their phone number is an alias of it); a producer's opt-in for a user who never
        // wrote is under the phone number. Consent is read under both.
        let (user, phone_key) = match &job.to {
            Recipient::UserId(u) => (key(u), None),
            Recipient::WaId(w) => match self.ports.contacts().resolve_alias(pn, w).await? {
                Some(bsuid) => (key(&bsuid), Some(key(w))),
                None => (key(w), None),
            },
        };
        let template = match job.message.as_template() {
            Some(t) => Some((
                t,
                self.ports
                    .templates()
                    .template(&home.waba_id, &t.name, &t.language.code)
                    .await?,
            )),
            None => None,
        };
        let marketing = template.as_ref().is_some_and(|(_, r)| {
            r.as_ref()
                .and_then(|r| r.category.as_deref())
                .is_none_or(|c| !matches!(c, "UTILITY" | "AUTHENTICATION"))
        });
        let window = self.ports.sessions().window(&user).await?;
        let business_initiated = !window.csw_open(now);
        let reject =
            |reason: &str, detail: String| Ok(Err(Outcome::rejected(reason, detail, now_ms)));

        // 2. Consent.
        if business_initiated || marketing {
            let mut consent = self.ports.contacts().consent(&user).await?;
            if let Some(k) = &phone_key {
                consent = consent.merged(&self.ports.contacts().consent(k).await?);
            }
            if business_initiated && consent.opted_out() {
                return reject(
                    "opted_out",
                    "the user opted out of business-initiated messages".into(),
                );
            }
            if business_initiated && self.config.require_opt_in && !consent.opted_in() {
                return reject(
                    "no_opt_in",
                    "business-initiated messages need a recorded opt-in (REQUIRE_OPT_IN)".into(),
                );
            }
            if marketing && (consent.marketing_stopped() || consent.opted_out()) {
                return reject(
                    "marketing_opt_out",
                    "the user stopped marketing messages".into(),
                );
            }
        }
        if marketing && self.number_limits(pn).await.marketing_paused {
            return reject(
                "marketing_paused",
                "marketing is paused on this number while its quality or status recovers".into(),
            );
        }
        // 3. Window.
        let Some((message, record)) = template else {
            if business_initiated {
                return reject(
                    "window_closed",
                    "free-form messages need an open customer-service window; send an approved template".into(),
                );
            }
            return Ok(Ok((user, window)));
        };
        // 4. Template.
        let Some(record) = record else {
            return reject(
                "template_unknown",
                format!(
                    "no template {} in language {} for this account",
                    message.name, message.language.code
                ),
            );
        };
        match record.status.as_deref().unwrap_or("UNKNOWN") {
            "APPROVED" => {}
            "PAUSED" => {
                return reject(
                    "template_paused",
                    format!("template {} is paused for low quality", message.name),
                );
            }
            "DISABLED" => {
                return reject(
                    "template_disabled",
                    format!("template {} is disabled", message.name),
                );
            }
            other => {
                return reject(
                    "template_not_approved",
                    format!("template {} is {other}", message.name),
                );
            }
        }
        let Some(components) = record
            .components
            .as_deref()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        else {
            return reject(
                "template_definition_missing",
                format!(
                    "template {} has no stored definition to check parameters against; sync templates",
                    message.name
                ),
            );
        };
        let shape = TemplateShape::from_definition(
            record.parameter_format.as_deref(),
            record.category.as_deref(),
            &components,
        );
        let problems = check_parameters(&shape, message);
        if !problems.is_empty() {
            let mut o = Outcome::rejected(
                "template_parameters",
                format!(
                    "{} parameter problem(s) against template {}",
                    problems.len(),
                    message.name
                ),
                now_ms,
            );
            o.violations = problems
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect();
            return Ok(Err(o));
        }
        // 5. Messaging limit: a business-initiated message takes a slot of the portfolio's budget.
        if business_initiated {
            let tier = self
                .number_limits(pn)
                .await
                .tier
                .unwrap_or_else(|| self.config.default_tier.clone());
            match self
                .ports
                .control()
                .reach(
                    &home.portfolio_id,
                    &user.user,
                    now,
                    tier.unique_user_limit(),
                )
                .await?
            {
                Reach::AlreadyCounted | Reach::Reserved => {}
                Reach::Refused(r) => {
                    let o = Outcome::rejected(
                        "messaging_limit",
                        format!(
                            "the portfolio reached {} unique users outside a service window in 24 h; room again at {}",
                            r.limit, r.retry_at
                        ),
                        now_ms,
                    );
                    return Ok(Err(o));
                }
            }
        }
        Ok(Ok((user, window)))
    }

    /// Leaves the record in progress until `until_ms` with `checkpoint` for the next holder.
    async fn hold(
        &self,
        key: &str,
        until_ms: i64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let cp = serde_json::to_string(checkpoint).unwrap_or_default();
        self.ports.dedupe().checkpoint(key, until_ms, &cp).await
    }

    /// Gate 6: reserves a throughput slot for every ready record, per number.
    async fn reserve_throughput(&self, steps: &mut [Step], clock: Clock) {
        let mut by_number: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            if let Step::Ready(r) = s {
                by_number
                    .entry(r.job.phone_number_id.clone())
                    .or_default()
                    .push(i);
            }
        }
        for (pn, idx) in by_number {
            let mps = self
                .number_limits(&pn)
                .await
                .mps
                .unwrap_or(self.config.default_mps);
            let now_ms = clock.now_ms();
            let first = slot_of(now_ms);
            let last = slot_of(now_ms + self.config.throughput_max_wait_ms);
            let mut slot = lock(&self.next_slot)
                .get(&pn)
                .copied()
                .filter(|s| (first..=last).contains(s))
                .unwrap_or(first);
            let mut pending = idx.as_slice();
            while !pending.is_empty() && slot <= last {
                let capacity = slot_capacity(mps, slot);
                if capacity == 0 {
                    slot += 1;
                    continue;
                }
                let wanted = u32::try_from(pending.len()).unwrap_or(u32::MAX);
                let got = match self.ports.control().add_to_slot(&pn, slot, wanted).await {
                    Ok(count) => granted(count, wanted, capacity),
                    Err(e) => {
                        tracing::warn!(error = %e, "throughput slot unavailable");
                        break;
                    }
                };
                let (now_taken, rest) = pending.split_at(got as usize);
                for &i in now_taken {
                    if let Step::Ready(r) = &mut steps[i] {
                        r.slot_at_ms = Some(slot * THROUGHPUT_SLOT_MS);
                    }
                }
                pending = rest;
                if !pending.is_empty() || got == capacity {
                    slot += 1;
                }
            }
            lock(&self.next_slot).insert(pn.clone(), slot);
            // No slot within the wait we allow: back to the queue, nothing sent.
            for &i in pending {
                if let Step::Ready(r) = &steps[i] {
                    let cp = Checkpoint {
                        unsent: true,
                        failures: r.failures,
                        ..Checkpoint::default()
                    };
                    let delay = 1_000 + shared::jitter_ms(1_000) as i64;
                    steps[i] = match self.hold(&r.key, clock.now_ms() + delay, &cp).await {
                        Ok(()) => Step::Later {
                            delay_s: Some(delay_seconds(delay)),
                        },
                        Err(_) => Step::Later { delay_s: None },
                    };
                }
            }
        }
    }

    async fn send_step(&self, step: Step, clock: Clock, deadline_ms: i64) -> Step {
        let Step::Ready(ready) = step else {
            return step;
        };
        let key = ready.key.clone();
        let failures = ready.failures;
        match self.send(*ready, clock, deadline_ms).await {
            Ok(step) => step,
            Err(e) => {
                // Nothing was sent: say so, so the retry need not wait for reconciliation.
                tracing::warn!(error = %e, "transient failure before sending; the record will be retried");
                let cp = Checkpoint {
                    unsent: true,
                    failures,
                    ..Checkpoint::default()
                };
                let _ = self.hold(&key, clock.now_ms() + 1_000, &cp).await;
                Step::Later { delay_s: None }
            }
        }
    }

    /// Gate 7 (pair rate), then the Graph call and its classification.
    async fn send(&self, r: Ready, clock: Clock, deadline_ms: i64) -> Result<Step, Transient> {
        if let Some(at) = r.slot_at_ms {
            let wait = at - clock.now_ms();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        let unsent_hold = |failures: u32| Checkpoint {
            unsent: true,
            failures,
            ..Checkpoint::default()
        };
        // Too close to the deadline to finish a call: give it back untouched.
        if deadline_ms - clock.now_ms() < 2_000 {
            self.hold(&r.key, clock.now_ms() + 1_000, &unsent_hold(r.failures))
                .await?;
            return Ok(Step::Later { delay_s: Some(1) });
        }
        // 7. Pair rate: wait through the queue, never in process.
        if let Some(next) = self
            .ports
            .control()
            .take_pair_turn(&r.user, clock.now_ms(), self.config.pair_gap_ms)
            .await?
        {
            let wait = next - clock.now_ms() + shared::jitter_ms(500) as i64;
            self.hold(&r.key, clock.now_ms() + wait, &unsent_hold(r.failures))
                .await?;
            return Ok(Step::Later {
                delay_s: Some(delay_seconds(wait)),
            });
        }

        let Some(request) = SendMessageRequest::for_job(&r.job, Some(&r.callback)) else {
            // Cannot happen: our callback data is 35 bytes.
            return Ok(done(
                stamp(
                    Outcome::rejected("internal", "callback data too long", clock.now_ms()),
                    &r.job,
                    r.failures,
                ),
                None,
            ));
        };
        let secrets = self.ports.secrets().secrets().await?;
        let mut result = self
            .ports
            .graph()
            .send_message(&r.job.phone_number_id, &request, &secrets.access_token)
            .await;
        // 190: the token was rotated or expired. Re-read it once and retry once.
        if matches!(&result, Err(GraphCallError::Api { body, .. }) if body.code == 190) {
            let fresh = self.ports.secrets().refresh().await?;
            if fresh.access_token != secrets.access_token {
                tracing::info!("access token refreshed after 190; retrying once");
                result = self
                    .ports
                    .graph()
                    .send_message(&r.job.phone_number_id, &request, &fresh.access_token)
                    .await;
            }
            if matches!(&result, Err(GraphCallError::Api { body, .. }) if body.code == 190) {
                tracing::error!(
                    alert = true,
                    code = 190,
                    "access token rejected after refresh"
                );
            }
        }
        Ok(self.settle(r, result, clock).await)
    }

    /// What follows a Graph call. Never an error: once the request may have reached Meta, a
    /// failure here must not be mistaken for "nothing was sent".
    async fn settle(
        &self,
        r: Ready,
        result: Result<SendMessageResponse, GraphCallError>,
        clock: Clock,
    ) -> Step {
        let now_ms = clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let ttl = now + self.config.idempotency_ttl_s;
        let ambiguous = matches!(
            &result,
            Err(GraphCallError::Timeout { after_send: true })
                | Err(GraphCallError::Decode {
                    status: 200..=299,
                    ..
                })
        );
        match result {
            Ok(response) => {
                let mut o = Outcome::new(Verdict::Accepted, now_ms);
                o.wamid = response.wamid().map(str::to_owned);
                o.message_status = response
                    .messages
                    .first()
                    .and_then(|m| m.message_status.clone());
                let o = stamp(o, &r.job, r.failures);
                if let Err(e) = self
                    .ports
                    .dedupe()
                    .complete(&r.key, Some(&o.to_json()), ttl)
                    .await
                {
                    // Meta has it; the record stays in progress without a checkpoint, so the
                    // redelivery reconciles through the status webhooks instead of resending.
                    tracing::warn!(error = %e, "commit failed after Meta accepted the message; the redelivery reconciles");
                    return Step::Later { delay_s: None };
                }
                // Our reply within a day of a click-to-WhatsApp referral opens the free entry
                // point window.
                if r.window.last_referral_at.is_some()
                    && r.window.fep_opened_at.is_none()
                    && let Err(e) = self
                        .ports
                        .sessions()
                        .record_business_reply(&r.user, now)
                        .await
                {
                    tracing::warn!(error = %e, "could not record the business reply");
                }
                done(o, None)
            }
            Err(_) if ambiguous => {
                // Meta may have the message: never resend blindly. Status webhooks carrying our
                // callback data will tell; until the reconciliation window passes, wait.
                let cp = Checkpoint {
                    unsent: false,
                    attempted_at_ms: Some(now_ms),
                    failures: r.failures,
                    last_error: Some(OutcomeError {
                        code: 0,
                        message: "no readable answer after the request was sent".into(),
                        details: None,
                        class: "retry".into(),
                    }),
                };
                tracing::warn!(phone_number_id = %r.job.phone_number_id, "send outcome unknown; reconciling through status webhooks");
                match self
                    .hold(&r.key, now_ms + self.config.reconcile_after_ms, &cp)
                    .await
                {
                    Ok(()) => Step::Later {
                        delay_s: Some(delay_seconds(self.config.reconcile_after_ms)),
                    },
                    // Without a checkpoint the next holder reconciles anyway.
                    Err(_) => Step::Later { delay_s: None },
                }
            }
            Err(e) => {
                let key = r.key.clone();
                let failures = r.failures;
                match self.failed(r, &e, clock).await {
                    Ok(step) => step,
                    Err(t) => {
                        // Meta refused the message: nothing was sent.
                        tracing::warn!(error = %t, "could not record a Graph API error; the record will be retried");
                        let cp = Checkpoint {
                            unsent: true,
                            failures,
                            ..Checkpoint::default()
                        };
                        let _ = self.hold(&key, clock.now_ms() + 1_000, &cp).await;
                        Step::Later { delay_s: None }
                    }
                }
            }
        }
    }

    async fn failed(&self, r: Ready, e: &GraphCallError, clock: Clock) -> Result<Step, Transient> {
        let now_ms = clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let ttl = now + self.config.idempotency_ttl_s;
        let c = e.classification();
        let error = outcome_error(e);
        let class = c.class;
        if c.alert {
            tracing::error!(alert = true, code = c.code, action = ?c.action, "Graph API error needs an operator");
        }
        if class == ErrorClass::Terminal {
            let reason = match c.action {
                ErrorAction::RequireTemplate => "window_closed",
                ErrorAction::RecordMarketingOptOut => "marketing_opt_out",
                ErrorAction::MarkUndeliverable => "undeliverable",
                ErrorAction::ResyncTemplate => "template_refused",
                ErrorAction::RefreshToken => "access_token_invalid",
                _ => "graph_error",
            };
            if c.action == ErrorAction::RecordMarketingOptOut {
                self.ports
                    .contacts()
                    .record_consent(&r.user, ConsentEvent::MarketingStop, now)
                    .await?;
            }
            let mut o = Outcome::new(Verdict::Failed, now_ms);
            o.reason = Some(reason.into());
            o.error = Some(error);
            let o = stamp(o, &r.job, r.failures + 1);
            self.ports
                .dedupe()
                .complete(&r.key, Some(&o.to_json()), ttl)
                .await?;
            return Ok(done(o, None));
        }
        // Retryable.
        let failures = r.failures + 1;
        let max = c
            .max_attempts
            .map_or(self.config.max_attempts, u32::from)
            .min(self.config.max_attempts);
        let base_ms = i64::try_from(c.retry_after.as_millis())
            .unwrap_or(0)
            .max(1_000);
        let backoff_ms = match (class, c.action) {
            (ErrorClass::WaitAndRetry, _) => base_ms,
            // Pair rate: 4^n seconds, at least the gap.
            (_, ErrorAction::BackOffRecipient) => (4i64.pow(failures.min(6)) * 1_000).max(base_ms),
            _ => base_ms.saturating_mul(1 << (failures - 1).min(8)),
        }
        // The lease may outlast SQS's 12 h visibility limit: a redelivery before it ends finds
        // the job still held and waits again.
        .min(48 * 3_600_000);
        let backoff_ms = backoff_ms + shared::jitter_ms((backoff_ms as u64 / 5).max(1)) as i64;
        let too_late = r
            .job
            .not_after
            .is_some_and(|t| t.timestamp_millis() < now_ms + backoff_ms);
        if failures >= max || too_late {
            let mut o = Outcome::new(Verdict::Failed, now_ms);
            let reason = if too_late {
                "expired"
            } else {
                "retries_exhausted"
            };
            o.reason = Some(reason.into());
            o.detail = Some(format!(
                "{failures} failed attempt(s); last error {}",
                c.code
            ));
            o.error = Some(error);
            let o = stamp(o, &r.job, failures);
            self.ports
                .dedupe()
                .complete(&r.key, Some(&o.to_json()), ttl)
                .await?;
            return Ok(done(o, Some(reason)));
        }
        let cp = Checkpoint {
            unsent: true,
            attempted_at_ms: None,
            failures,
            last_error: Some(error),
        };
        self.hold(&r.key, now_ms + backoff_ms, &cp).await?;
        tracing::info!(
            code = c.code,
            failures,
            backoff_ms,
            "retryable Graph API error; backing off"
        );
        Ok(Step::Later {
            delay_s: Some(delay_seconds(backoff_ms)),
        })
    }

    /// Phase 4: dead-letter, publish, defer; the batch response lists exactly the records that
    /// must come back.
    async fn finish(&self, records: &[SqsMessage], steps: Vec<Step>) -> SqsBatchResponse {
        let mut retry = vec![false; records.len()];
        let mut publish: Vec<(usize, String)> = Vec::new();
        for (i, (record, step)) in records.iter().zip(steps).enumerate() {
            match step {
                Step::Done {
                    outcome,
                    dead_letter,
                } => {
                    if let Some((reason, detail)) = dead_letter {
                        let body = record.body.as_deref().unwrap_or_default();
                        if let Err(e) = self
                            .ports
                            .dead_letters()
                            .dead_letter(body, &reason, &detail)
                            .await
                        {
                            tracing::warn!(error = %e, "dead-letter failed; the record will be retried");
                            retry[i] = true;
                            continue;
                        }
                        tracing::warn!(reason = %reason, "job dead-lettered");
                    }
                    if !outcome.is_empty() {
                        publish.push((i, outcome));
                    }
                }
                Step::Later { delay_s } => {
                    retry[i] = true;
                    if let (Some(d), Some(handle)) = (delay_s, record.receipt_handle.as_deref())
                        && let Err(e) = self.ports.redelivery().redeliver_in(handle, d).await
                    {
                        tracing::warn!(error = %e, "could not set the redelivery delay");
                    }
                }
                Step::Ready(_) => retry[i] = true,
            }
        }
        let bodies: Vec<String> = publish.iter().map(|(_, b)| b.clone()).collect();
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        shared::metrics::emit(&outcome_metrics(&bodies, at_ms));
        for ((i, _), res) in publish
            .iter()
            .zip(self.ports.outcomes().send_batch(&bodies).await)
        {
            if let Err(e) = res {
                // The verdict is stored: the redelivery publishes it again without sending.
                tracing::warn!(error = %e, "outcome not published; the record will be retried");
                retry[*i] = true;
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = records
            .iter()
            .zip(retry)
            .filter(|(_, r)| *r)
            .filter_map(|(m, _)| m.message_id.clone())
            .filter(|id| !id.is_empty())
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        response
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds to whole seconds of SQS visibility (at least 1, at most 12 h).
fn delay_seconds(ms: i64) -> u32 {
    u32::try_from(((ms + 999) / 1000).clamp(1, 43_200)).unwrap_or(1)
}

fn done(o: Outcome, dead_letter: Option<&str>) -> Step {
    Step::Done {
        dead_letter: dead_letter.map(|r| (r.to_owned(), o.detail.clone().unwrap_or_default())),
        outcome: o.to_json(),
    }
}

/// Fills in the job's identity on an outcome.
fn stamp(mut o: Outcome, job: &SendJob, attempts: u32) -> Outcome {
    o.idempotency_key = Some(job.idempotency_key.clone());
    o.phone_number_id = Some(job.phone_number_id.clone());
    o.correlation = job.correlation.clone();
    o.attempts = attempts;
    o
}

fn rejected_job(body: &str, rejection: &JobRejection, now_ms: i64) -> Step {
    let (reason, mut o) = match rejection {
        JobRejection::Malformed { detail } => (
            "malformed",
            Outcome::rejected("malformed", detail.clone(), now_ms),
        ),
        JobRejection::Invalid { violations } => {
            let mut o = Outcome::rejected(
                "invalid",
                format!("{} contract violation(s)", violations.len()),
                now_ms,
            );
            o.violations = violations
                .iter()
                .filter_map(|v| serde_json::to_value(v).ok())
                .collect();
            ("invalid", o)
        }
    };
    // Keep what identity the body has, so the producer can match the outcome.
    if let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(body) {
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        o.idempotency_key = text("idempotency_key");
        o.phone_number_id = text("phone_number_id");
        if let Some(serde_json::Value::Object(c)) = v.get("correlation") {
            o.correlation = c
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
        }
    }
    done(o, Some(reason))
}

fn outcome_error(e: &GraphCallError) -> OutcomeError {
    let class = match e.classification().class {
        ErrorClass::Retry => "retry",
        ErrorClass::WaitAndRetry => "wait_and_retry",
        ErrorClass::Terminal => "terminal",
    }
    .to_owned();
    match e {
        GraphCallError::Api { body, .. } => OutcomeError {
            code: body.code,
            message: body.message.clone(),
            details: body.error_data.as_ref().and_then(|d| d.details.clone()),
            class,
        },
        other => OutcomeError {
            code: 0,
            message: other.to_string(),
            details: None,
            class,
        },
    }
}

/// Every sender port on AWS and the Graph API.
pub mod aws {
    use shared::adapters::{
        CachedSecrets, DynamoContactStore, DynamoDedupeStore, DynamoMessageStore,
        DynamoSendControl, DynamoSessionStore, DynamoTemplateStore, GraphHttpClient,
        SecretsManagerFetcher, SqsQueue,
    };
    use shared::config::{ConfigError, Env};

    /// Table names and queue URLs (from `SESSIONS_TABLE`, `CONTACTS_TABLE`, `TEMPLATES_TABLE`,
    /// `MESSAGES_TABLE`, `DEDUPE_TABLE`, `SEND_CONTROL_TABLE`, `SEND_QUEUE_URL`,
    /// `SEND_DLQ_URL`, `OUTCOMES_QUEUE_URL`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SenderResources {
        pub sessions_table: String,
        pub contacts_table: String,
        pub templates_table: String,
        pub messages_table: String,
        pub dedupe_table: String,
        pub control_table: String,
        pub send_queue_url: String,
        pub send_dlq_url: String,
        pub outcomes_queue_url: String,
    }

    impl SenderResources {
        pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
            Ok(SenderResources {
                sessions_table: env.required("SESSIONS_TABLE")?,
                contacts_table: env.required("CONTACTS_TABLE")?,
                templates_table: env.required("TEMPLATES_TABLE")?,
                messages_table: env.required("MESSAGES_TABLE")?,
                dedupe_table: env.required("DEDUPE_TABLE")?,
                control_table: env.required("SEND_CONTROL_TABLE")?,
                send_queue_url: env.required("SEND_QUEUE_URL")?,
                send_dlq_url: env.required("SEND_DLQ_URL")?,
                outcomes_queue_url: env.required("OUTCOMES_QUEUE_URL")?,
            })
        }
    }

    /// The sender's ports on AWS.
    pub struct AwsSenderPorts<G = GraphHttpClient> {
        pub sessions: DynamoSessionStore,
        pub contacts: DynamoContactStore,
        pub templates: DynamoTemplateStore,
        pub messages: DynamoMessageStore,
        pub dedupe: DynamoDedupeStore,
        pub control: DynamoSendControl,
        pub graph: G,
        pub secrets: CachedSecrets<SecretsManagerFetcher>,
        pub outcomes: SqsQueue,
        pub dead_letters: SqsQueue,
        pub send_queue: SqsQueue,
    }

    impl<G> AwsSenderPorts<G> {
        pub fn new(
            aws: &aws_config::SdkConfig,
            r: &SenderResources,
            graph: G,
            secrets: CachedSecrets<SecretsManagerFetcher>,
        ) -> Self {
            let ddb = aws_sdk_dynamodb::Client::new(aws);
            let sqs = aws_sdk_sqs::Client::new(aws);
            AwsSenderPorts {
                sessions: DynamoSessionStore::new(ddb.clone(), &r.sessions_table),
                contacts: DynamoContactStore::new(ddb.clone(), &r.contacts_table),
                templates: DynamoTemplateStore::new(ddb.clone(), &r.templates_table),
                messages: DynamoMessageStore::new(ddb.clone(), &r.messages_table),
                dedupe: DynamoDedupeStore::new(ddb.clone(), &r.dedupe_table),
                control: DynamoSendControl::new(ddb, &r.control_table),
                graph,
                secrets,
                outcomes: SqsQueue::new(sqs.clone(), &r.outcomes_queue_url),
                dead_letters: SqsQueue::new(sqs.clone(), &r.send_dlq_url),
                send_queue: SqsQueue::new(sqs, &r.send_queue_url),
            }
        }
    }

    impl<G: shared::ports::GraphApi> super::SenderPorts for AwsSenderPorts<G> {
        type Sessions = DynamoSessionStore;
        type Contacts = DynamoContactStore;
        type Templates = DynamoTemplateStore;
        type Messages = DynamoMessageStore;
        type Dedupe = DynamoDedupeStore;
        type Control = DynamoSendControl;
        type Graph = G;
        type Secrets = CachedSecrets<SecretsManagerFetcher>;
        type Outcomes = SqsQueue;
        type DeadLetters = SqsQueue;
        type Redelivery = SqsQueue;

        fn sessions(&self) -> &Self::Sessions {
            &self.sessions
        }
        fn contacts(&self) -> &Self::Contacts {
            &self.contacts
        }
        fn templates(&self) -> &Self::Templates {
            &self.templates
        }
        fn messages(&self) -> &Self::Messages {
            &self.messages
        }
        fn dedupe(&self) -> &Self::Dedupe {
            &self.dedupe
        }
        fn control(&self) -> &Self::Control {
            &self.control
        }
        fn graph(&self) -> &Self::Graph {
            &self.graph
        }
        fn secrets(&self) -> &Self::Secrets {
            &self.secrets
        }
        fn outcomes(&self) -> &Self::Outcomes {
            &self.outcomes
        }
        fn dead_letters(&self) -> &Self::DeadLetters {
            &self.dead_letters
        }
        fn redelivery(&self) -> &Self::Redelivery {
            &self.send_queue
        }
    }
}

/// EMF documents for a batch's verdicts: `Sends` (accepted), and `Rejects` (refused by policy or
/// contract) and `Failures` (Meta or transport errors) by reason.
pub fn outcome_metrics(outcomes: &[String], now_ms: i64) -> Vec<serde_json::Value> {
    use shared::metrics::{Unit, document};
    use std::collections::BTreeMap;
    let mut sends = 0usize;
    let mut by_reason: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    for body in outcomes {
        let Ok(o) = serde_json::from_str::<serde_json::Value>(body) else {
            continue;
        };
        let reason = o["reason"].as_str().unwrap_or("unknown").to_owned();
        match o["outcome"].as_str() {
            Some("accepted") => sends += 1,
            Some("rejected") => *by_reason.entry(("Rejects", reason)).or_default() += 1,
            Some(_) => *by_reason.entry(("Failures", reason)).or_default() += 1,
            None => {}
        }
    }
    let mut docs = Vec::new();
    if sends > 0 {
        docs.push(document(
            "sender",
            &[],
            &[("Sends", Unit::Count, sends as f64)],
            now_ms,
        ));
    }
    for ((metric, reason), n) in by_reason {
        docs.push(document(
            "sender",
            &[("Reason", reason.as_str())],
            &[(metric, Unit::Count, n as f64)],
            now_ms,
        ));
    }
    docs
}

#[cfg(test)]
mod metrics_tests {
    use super::*;

    #[test]
    fn verdicts_become_sends_rejects_and_failures_by_reason() {
        let bodies: Vec<String> = [
            r#"{"outcome":"accepted"}"#,
            r#"{"outcome":"accepted"}"#,
            r#"{"outcome":"rejected","reason":"window_closed"}"#,
            r#"{"outcome":"rejected","reason":"window_closed"}"#,
            r#"{"outcome":"rejected","reason":"marketing_opted_out"}"#,
            r#"{"outcome":"failed","reason":"retries_exhausted"}"#,
        ]
        .map(String::from)
        .to_vec();
        let docs = outcome_metrics(&bodies, 1);
        let find = |metric: &str, reason: Option<&str>| {
            docs.iter()
                .find(|d| {
                    d.get(metric).is_some() && d.get("Reason").and_then(|r| r.as_str()) == reason
                })
                .map(|d| d[metric].as_f64().unwrap())
        };
        assert_eq!(find("Sends", None), Some(2.0));
        assert_eq!(find("Rejects", Some("window_closed")), Some(2.0));
        assert_eq!(find("Rejects", Some("marketing_opted_out")), Some(1.0));
        assert_eq!(find("Failures", Some("retries_exhausted")), Some(1.0));
        assert_eq!(docs.len(), 4);
    }
}
