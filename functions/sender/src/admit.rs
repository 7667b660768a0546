//! Stage 1, per record: parse the job (gate 0), gate 1, take its idempotency record, reconcile
//! a send a previous holder may have made, and only then check the deadline (gate 1b), before
//! the policy gates run.

use aws_lambda_events::event::sqs::SqsMessage;
use whatsapp_core::gates::{self, Refusal};
use whatsapp_core::job::SendJob;
use whatsapp_core::ports::{Begin, DedupeStore, MessageStore, PreviousHold, StoreError};

use crate::config::NumberHome;
use crate::keys::{callback_data, payload_hash, record_key};
use crate::outcome::{Outcome, Verdict};
use crate::step::{Checkpoint, Clock, Step, delay_seconds, done, rejected_job, stamp};
use crate::{Sender, SenderPorts, Transient};

/// Whose record this is now, and what the previous holder left.
pub(crate) struct Taken {
    pub job: SendJob,
    /// Our fencing token on the record: every write to it carries this.
    pub owner: String,
    /// Where the job's number belongs (gate 1 found it configured).
    pub home: NumberHome,
    pub key: String,
    pub previous: Option<PreviousHold>,
    pub checkpoint: Checkpoint,
    /// The record's generation: part of the callback data (see [`callback_data`]).
    pub generation: Option<String>,
}

impl<P: SenderPorts> Sender<P> {
    /// Stage 1 for one record: a verdict, a deferral, or a job ready for throughput.
    pub(crate) async fn gate(&self, record: &SqsMessage, clock: Clock, deadline_ms: i64) -> Step {
        let body = record.body.as_deref().unwrap_or_default();
        let job = match SendJob::parse(body) {
            Ok(job) => job,
            Err(rejection) => return rejected_job(body, &rejection, clock.now_ms()),
        };
        match self.take(job, clock, deadline_ms).await {
            Ok(Ok(taken)) => self.gate_taken(taken, clock).await,
            Ok(Err(step)) => step,
            Err(e) => {
                tracing::warn!(error = %e, "transient failure; the record will be retried");
                Step::Later { delay_s: None }
            }
        }
    }

    /// Gate 1, then one conditional write takes the job's idempotency record.
    async fn take(
        &self,
        job: SendJob,
        clock: Clock,
        deadline_ms: i64,
    ) -> Result<Result<Taken, Step>, StoreError> {
        let now_ms = clock.now_ms();
        let home = self.config.numbers.get(&job.phone_number_id).cloned();
        if let Err(refusal) = gates::admit(home.is_some()) {
            return Ok(Err(refuse(&refusal, &job, now_ms)));
        }
        let Some(home) = home else {
            return Ok(Err(refuse(&Refusal::UnknownPhoneNumber, &job, now_ms)));
        };
        let key = record_key(&job);
        let owner = whatsapp_core::unique_token();
        let begin = self
            .ports
            .dedupe()
            .begin(
                &key,
                &payload_hash(&job),
                &owner,
                now_ms,
                deadline_ms.max(now_ms + 1_000),
                clock.now_s() + self.config.idempotency_ttl_s,
            )
            .await?;
        let (previous, generation) = match begin {
            Begin::Started {
                previous,
                generation,
            } => (previous, generation),
            Begin::InProgress { until_ms } => {
                return Ok(Err(Step::Later {
                    delay_s: Some(delay_seconds(until_ms - now_ms)),
                }));
            }
            // Answered before: publish the same verdict again, never send again.
            Begin::Completed { result } => {
                return Ok(Err(Step::Done {
                    outcome: result.unwrap_or_default(),
                    dead_letter: None,
                }));
            }
            Begin::PayloadMismatch => {
                let mut o = stamp(
                    Outcome::refused(&Refusal::IdempotencyKeyReused, now_ms),
                    &job,
                    0,
                );
                o.foreign = true;
                return Ok(Err(done(o, Some(Refusal::IdempotencyKeyReused.reason()))));
            }
        };
        let checkpoint = previous
            .as_ref()
            .and_then(|p| p.checkpoint.as_deref())
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        Ok(Ok(Taken {
            job,
            owner,
            home,
            key,
            previous,
            checkpoint,
            generation,
        }))
    }

    /// The record is ours: a failure from here must leave it in a state the next holder can
    /// trust (nothing sent, or an attempt still to reconcile).
    async fn gate_taken(&self, taken: Taken, clock: Clock) -> Step {
        let on_error = match &taken.previous {
            Some(prev) if !taken.checkpoint.unsent => Checkpoint {
                unsent: false,
                attempted_at_ms: Some(
                    taken
                        .checkpoint
                        .attempted_at_ms
                        .unwrap_or(prev.held_until_ms),
                ),
                ..taken.checkpoint.clone()
            },
            _ => Checkpoint {
                unsent: true,
                ..taken.checkpoint.clone()
            },
        };
        let key = taken.key.clone();
        let owner = taken.owner.clone();
        let result = match self.reconcile(&taken, clock).await {
            Ok(Some(step)) => Ok(step),
            Ok(None) => match self.expire(&taken, clock).await {
                Ok(Some(step)) => Ok(step),
                Ok(None) => self.apply_policy(taken, clock).await,
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(error = %e, "transient failure; the record will be retried");
                let _ = self
                    .hold(&key, &owner, clock.now_ms() + 1_000, &on_error)
                    .await;
                Step::Later { delay_s: None }
            }
        }
    }

    /// A previous holder may have reached Meta: the status webhooks, found by our callback
    /// data, tell. Asked before every send that follows an attempt whose outcome stayed unknown,
    /// not only the first. While the last attempt's reconciliation window lasts, wait; after it,
    /// send again, unless the attempts are used up.
    async fn reconcile(&self, t: &Taken, clock: Clock) -> Result<Option<Step>, Transient> {
        let Some(prev) = &t.previous else {
            return Ok(None);
        };
        let last_unknown = !t.checkpoint.unsent;
        if !last_unknown && !t.checkpoint.uncertain {
            return Ok(None);
        }
        let now_ms = clock.now_ms();
        let callback = callback_data(&t.key, t.generation.as_deref());
        // Any attempt of this generation may be the one that reached Meta: look from the oldest
        // a job can be (the store bounds it) to now.
        let found = self
            .ports
            .messages()
            .find_by_callback(&t.job.phone_number_id, &callback, 0, now_ms / 1000)
            .await?;
        if let Some(wamid) = found {
            let mut o = Outcome::new(Verdict::Accepted, now_ms);
            o.wamid = Some(wamid);
            o.reconciled = true;
            let o = stamp(o, &t.job, t.checkpoint.failures);
            self.complete(&t.key, &t.owner, &o, clock).await?;
            tracing::info!(phone_number_id = %t.job.phone_number_id, "send reconciled from status webhooks");
            return Ok(Some(done(o, None)));
        }
        if last_unknown {
            let since = t.checkpoint.attempted_at_ms.unwrap_or(prev.held_until_ms);
            let wait = since + self.config.reconcile_after_ms - now_ms;
            if wait > 0 {
                let cp = Checkpoint {
                    unsent: false,
                    attempted_at_ms: Some(since),
                    ..t.checkpoint.clone()
                };
                self.hold(&t.key, &t.owner, now_ms + wait, &cp).await?;
                return Ok(Some(Step::Later {
                    delay_s: Some(delay_seconds(wait)),
                }));
            }
        }
        if t.checkpoint.failures >= self.config.max_attempts {
            return Ok(Some(self.exhausted(t, clock).await?));
        }
        tracing::warn!(
            phone_number_id = %t.job.phone_number_id,
            "no status for an earlier attempt within the reconciliation window; sending again"
        );
        Ok(None)
    }

    /// The attempts are used up and no status ever arrived for the unknown ones: the verdict.
    async fn exhausted(&self, t: &Taken, clock: Clock) -> Result<Step, StoreError> {
        let failures = t.checkpoint.failures;
        let mut o = Outcome::new(Verdict::Failed, clock.now_ms());
        o.reason = Some("retries_exhausted".into());
        o.detail = Some(format!(
            "{failures} attempt(s) failed or timed out; no status webhook arrived for those whose outcome is unknown"
        ));
        o.error = t.checkpoint.last_error.clone();
        let o = stamp(o, &t.job, failures);
        self.complete(&t.key, &t.owner, &o, clock).await?;
        Ok(done(o, Some("retries_exhausted")))
    }

    /// Gate 1b, once the record shows no send: a job past its `not_after` gets its verdict,
    /// stored in the record so that every redelivery answers the same.
    async fn expire(&self, t: &Taken, clock: Clock) -> Result<Option<Step>, StoreError> {
        let not_after = t.job.not_after.map(|n| n.timestamp_millis());
        let attempted = t.previous.is_some() && (!t.checkpoint.unsent || t.checkpoint.uncertain);
        let Err(refusal) = gates::deadline(not_after, clock.now_ms(), attempted) else {
            return Ok(None);
        };
        let o = stamp(
            Outcome::refused(&refusal, clock.now_ms()),
            &t.job,
            t.checkpoint.failures,
        );
        self.complete(&t.key, &t.owner, &o, clock).await?;
        Ok(Some(done(o, Some(refusal.reason()))))
    }

    /// Leaves the record in progress until `until_ms` with `checkpoint` for the next holder.
    pub(crate) async fn hold(
        &self,
        key: &str,
        owner: &str,
        until_ms: i64,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let cp = serde_json::to_string(checkpoint).unwrap_or_default();
        self.ports
            .dedupe()
            .checkpoint(key, owner, until_ms, &cp)
            .await
    }

    /// Stores the verdict in the idempotency record, for every later duplicate.
    pub(crate) async fn complete(
        &self,
        key: &str,
        owner: &str,
        outcome: &Outcome,
        clock: Clock,
    ) -> Result<(), StoreError> {
        let ttl = clock.now_s() + self.config.idempotency_ttl_s;
        self.ports
            .dedupe()
            .complete(key, owner, Some(&outcome.to_json()), ttl)
            .await
    }
}

/// A refusal before the record was taken: dead-lettered, and not stored (there is no record).
fn refuse(refusal: &Refusal, job: &SendJob, now_ms: i64) -> Step {
    let o = stamp(Outcome::refused(refusal, now_ms), job, 0);
    done(o, Some(refusal.reason()))
}
