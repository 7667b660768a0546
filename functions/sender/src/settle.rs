//! Stage 3, continued: what follows a Graph call. Accepted: commit the verdict. Ambiguous (the
//! request may have reached Meta): reconcile through status webhooks, never resend blindly.
//! Refused by Meta: classify with the shared table, then fail or back off.

use whatsapp_core::graph::{ErrorAction, ErrorClass, SendMessageResponse};
use whatsapp_core::job::Recipient;
use whatsapp_core::ports::{ConsentEvent, ContactStore, GraphCallError, SessionStore};

use crate::outcome::{Outcome, OutcomeError, Verdict};
use crate::step::{Checkpoint, Clock, Ready, Step, delay_seconds, done, stamp};
use crate::{Sender, SenderPorts, Transient};

impl<P: SenderPorts> Sender<P> {
    /// Never an error: once the request may have reached Meta, a failure here must not be
    /// mistaken for "nothing was sent".
    pub(crate) async fn settle(
        &self,
        r: Ready,
        result: Result<SendMessageResponse, GraphCallError>,
        clock: Clock,
    ) -> Step {
        let ambiguous = matches!(
            &result,
            Err(GraphCallError::Timeout { after_send: true })
                | Err(GraphCallError::Decode {
                    status: 200..=299,
                    ..
                })
        );
        match result {
            Ok(response) => self.accepted(r, &response, clock).await,
            Err(_) if ambiguous => self.ambiguous(r, clock).await,
            Err(e) => self.refused(r, &e, clock).await,
        }
    }

    /// A conversation action's answer. A lost answer is retried like a refusal: marking a
    /// message read twice changes nothing, so there is nothing to reconcile.
    pub(crate) async fn settle_action(
        &self,
        r: Ready,
        result: Result<(), GraphCallError>,
        clock: Clock,
    ) -> Step {
        let Err(e) = result else {
            let o = stamp(
                Outcome::new(Verdict::Accepted, clock.now_ms()),
                &r.job,
                r.failures,
            );
            if let Err(e) = self.complete(&r.key, &r.owner, &o, clock).await {
                // Done at Meta; the redelivery marks it again, harmlessly.
                tracing::warn!(error = %e, "commit failed after a conversation action");
                return Step::Later { delay_s: None };
            }
            return done(o, None);
        };
        self.refused(r, &e, clock).await
    }

    /// Meta refused the request: classify, then fail or back off.
    async fn refused(&self, r: Ready, e: &GraphCallError, clock: Clock) -> Step {
        let key = r.key.clone();
        let owner = r.owner.clone();
        let unsent = r.unsent();
        match self.failed(r, e, clock).await {
            Ok(step) => step,
            Err(t) => {
                // Meta refused the message: nothing was sent.
                tracing::warn!(error = %t, "could not record a Graph API error; the record will be retried");
                let _ = self
                    .hold(&key, &owner, clock.now_ms() + 1_000, &unsent)
                    .await;
                Step::Later { delay_s: None }
            }
        }
    }

    async fn accepted(&self, r: Ready, response: &SendMessageResponse, clock: Clock) -> Step {
        let mut o = Outcome::new(Verdict::Accepted, clock.now_ms());
        o.wamid = response.wamid().map(str::to_owned);
        o.message_status = response
            .messages
            .first()
            .and_then(|m| m.message_status.clone());
        let o = stamp(o, &r.job, r.failures);
        if let Err(e) = self.complete(&r.key, &r.owner, &o, clock).await {
            // Meta has it; the record stays in progress without a checkpoint, so the redelivery
            // reconciles through the status webhooks instead of resending.
            tracing::warn!(error = %e, "commit failed after Meta accepted the message; the redelivery reconciles");
            return Step::Later { delay_s: None };
        }
        // Our reply within a day of a click-to-WhatsApp referral opens the free entry point
        // window.
        if r.window.last_referral_at.is_some()
            && r.window.fep_opened_at.is_none()
            && let Err(e) = self
                .ports
                .sessions()
                .record_business_reply(&r.user, clock.now_s())
                .await
        {
            tracing::warn!(error = %e, "could not record the business reply");
        }
        done(o, None)
    }

    /// Meta may have the message: status webhooks carrying our callback data will tell; until
    /// the reconciliation window passes, wait.
    async fn ambiguous(&self, r: Ready, clock: Clock) -> Step {
        let now_ms = clock.now_ms();
        // The attempt counts: a job whose sends keep timing out must still end in a verdict.
        let cp = Checkpoint {
            unsent: false,
            attempted_at_ms: Some(now_ms),
            failures: r.failures + 1,
            uncertain: true,
            last_error: Some(OutcomeError {
                code: 0,
                message: "no readable answer after the request was sent".into(),
                details: None,
                class: "retry".into(),
            }),
            // The turn was used; a resend takes a new one.
            pair_turn_at_ms: None,
            by_phone: r.by_phone,
            via_marketing_messages: r.via_marketing_messages,
        };
        tracing::warn!(phone_number_id = %r.job.phone_number_id, "send outcome unknown; reconciling through status webhooks");
        let wait = self.config.reconcile_after_ms;
        match self.hold(&r.key, &r.owner, now_ms + wait, &cp).await {
            Ok(()) => Step::Later {
                delay_s: Some(delay_seconds(wait)),
            },
            // Without a checkpoint the next holder reconciles anyway.
            Err(_) => Step::Later { delay_s: None },
        }
    }

    async fn failed(&self, r: Ready, e: &GraphCallError, clock: Clock) -> Result<Step, Transient> {
        let now_ms = clock.now_ms();
        let c = e.classification();
        let error = outcome_error(e);
        if let Some(doc) = throttle_metric(c.code, now_ms) {
            whatsapp_core::metrics::emit(&[doc]);
        }
        if c.alert {
            tracing::error!(alert = true, code = c.code, action = ?c.action, "Graph API error needs an operator");
        }
        if c.action == ErrorAction::SendToPhoneNumber
            && let Some(step) = self.send_by_phone(&r, clock).await?
        {
            return Ok(step);
        }
        if c.action == ErrorAction::UseMarketingMessages
            && self.config.marketing_messages_fallback
            && r.marketing
            && !r.via_marketing_messages
        {
            let cp = Checkpoint {
                via_marketing_messages: true,
                ..r.unsent()
            };
            self.hold(&r.key, &r.owner, now_ms + 1_000, &cp).await?;
            tracing::info!(
                phone_number_id = %r.job.phone_number_id,
                "marketing is disabled on the Cloud API for this account (131063); sending through the Marketing Messages API"
            );
            return Ok(Step::Later { delay_s: Some(1) });
        }
        if c.class == ErrorClass::Terminal {
            if c.action == ErrorAction::RecordMarketingOptOut {
                self.ports
                    .contacts()
                    .record_consent(&r.user, ConsentEvent::MarketingStop, clock.now_s())
                    .await?;
            }
            let mut o = Outcome::new(Verdict::Failed, now_ms);
            o.reason = Some(c.reason().into());
            o.error = Some(error);
            let o = stamp(o, &r.job, r.failures + 1);
            self.complete(&r.key, &r.owner, &o, clock).await?;
            return Ok(done(o, None));
        }
        // Meta counts resends of marketing to this user within 24 h against the account: hold
        // every marketing job to them, not only this one.
        if c.action == ErrorAction::HoldUserMarketing {
            self.ports
                .contacts()
                .record_consent(&r.user, ConsentEvent::MarketingHeld, clock.now_s())
                .await?;
        }
        // Retryable.
        let failures = r.failures + 1;
        let max = c
            .max_attempts
            .map_or(self.config.max_attempts, u32::from)
            .min(self.config.max_attempts);
        let backoff_ms = backoff_ms(c.class, c.action, failures, c.retry_after);
        let backoff_ms = self
            .config
            .backoff_cap_ms
            .map_or(backoff_ms, |cap| backoff_ms.min(cap));
        let backoff_ms =
            backoff_ms + whatsapp_core::jitter_ms((backoff_ms as u64 / 5).max(1)) as i64;
        let too_late = r
            .job
            .not_after
            .is_some_and(|t| t.timestamp_millis() < now_ms + backoff_ms);
        if failures >= max || too_late {
            let reason = if too_late {
                "expired"
            } else {
                "retries_exhausted"
            };
            let mut o = Outcome::new(Verdict::Failed, now_ms);
            o.reason = Some(reason.into());
            o.detail = Some(format!(
                "{failures} failed attempt(s); last error {}",
                c.code
            ));
            o.error = Some(error);
            let o = stamp(o, &r.job, failures);
            self.complete(&r.key, &r.owner, &o, clock).await?;
            return Ok(done(o, Some(reason)));
        }
        let cp = Checkpoint {
            unsent: true,
            attempted_at_ms: None,
            failures,
            last_error: Some(error),
            uncertain: r.uncertain,
            pair_turn_at_ms: None,
            by_phone: r.by_phone,
            via_marketing_messages: r.via_marketing_messages,
        };
        self.hold(&r.key, &r.owner, now_ms + backoff_ms, &cp)
            .await?;
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
}

impl<P: SenderPorts> Sender<P> {
    /// Meta takes this message only by phone number (131062): when the job named a
    /// business-scoped id whose phone number we know, the next holder sends it there at once.
    /// `None` when there is no number to fall back on (the job fails).
    async fn send_by_phone(&self, r: &Ready, clock: Clock) -> Result<Option<Step>, Transient> {
        let Recipient::UserId(user_id) = &r.job.to else {
            return Ok(None);
        };
        if r.by_phone
            || self
                .ports
                .contacts()
                .phone_of(&r.job.phone_number_id, user_id)
                .await?
                .is_none()
        {
            return Ok(None);
        }
        let cp = Checkpoint {
            by_phone: true,
            ..r.unsent()
        };
        self.hold(&r.key, &r.owner, clock.now_ms() + 1_000, &cp)
            .await?;
        tracing::info!(
            phone_number_id = %r.job.phone_number_id,
            "Meta refused the business-scoped id for this message (131062); sending to the phone number"
        );
        Ok(Some(Step::Later { delay_s: Some(1) }))
    }
}

/// How long a retryable error waits before the `failures`-th retry (before jitter): what Meta
/// asks for a wait-and-retry error; 4^n seconds for the pair rate; else doubling from the
/// table's base. At most 48 h: the lease may outlast SQS's 12 h visibility limit, and a
/// redelivery before it ends finds the job still held and waits again.
fn backoff_ms(
    class: ErrorClass,
    action: ErrorAction,
    failures: u32,
    retry_after: std::time::Duration,
) -> i64 {
    let base_ms = i64::try_from(retry_after.as_millis())
        .unwrap_or(0)
        .max(1_000);
    match (class, action) {
        (ErrorClass::WaitAndRetry, _) => base_ms,
        (_, ErrorAction::BackOffRecipient) => (4i64.pow(failures.min(6)) * 1_000).max(base_ms),
        _ => base_ms.saturating_mul(1 << (failures.saturating_sub(1)).min(8)),
    }
    .min(48 * 3_600_000)
}

/// `GraphThrottled` for Meta's rate limits that an alarm watches (130429: the number's
/// throughput; 131056: too many messages to one recipient), by code.
pub(crate) fn throttle_metric(code: i64, now_ms: i64) -> Option<serde_json::Value> {
    let reason = match code {
        130429 => "130429",
        131056 => "131056",
        _ => return None,
    };
    Some(whatsapp_core::metrics::document(
        &[("Reason", reason)],
        &[(whatsapp_core::metrics::catalog::GRAPH_THROTTLED, 1.0)],
        now_ms,
    ))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn backoff_follows_the_class_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(
            backoff_ms(ErrorClass::WaitAndRetry, ErrorAction::None, 3, s(60)),
            60_000
        );
        assert_eq!(
            backoff_ms(ErrorClass::Retry, ErrorAction::BackOffRecipient, 2, s(0)),
            16_000
        );
        assert_eq!(
            backoff_ms(ErrorClass::Retry, ErrorAction::None, 1, s(2)),
            2_000
        );
        assert_eq!(
            backoff_ms(ErrorClass::Retry, ErrorAction::None, 3, s(2)),
            8_000
        );
        assert_eq!(
            backoff_ms(ErrorClass::Retry, ErrorAction::None, 30, s(3_600)),
            48 * 3_600_000
        );
    }

    #[test]
    fn the_two_rate_limits_the_alarms_watch_are_counted_by_code() {
        for code in ["130429", "131056"] {
            let doc = throttle_metric(code.parse().unwrap(), 1).unwrap();
            assert_eq!(doc["Function"], "sender");
            assert_eq!(doc["Reason"], code);
            assert_eq!(doc["GraphThrottled"], 1.0);
        }
        assert!(throttle_metric(131047, 1).is_none());
        assert!(throttle_metric(80007, 1).is_none());
    }
}
