//! Stage 3, per record: wait for the throughput slot, gate 7 (the pair rate, through the
//! queue), and the Graph call, with one token refresh after a 190.

use std::time::Duration;

use whatsapp_core::graph::{
    MarkReadRequest, SendEndpoint, SendMessageRequest, SendMessageResponse,
};
use whatsapp_core::policy::{PAIR_TURN_MARGIN_MS, reserved_turn_usable};
use whatsapp_core::ports::{GraphApi, GraphCallError, SendControl, Turn};

use crate::outcome::Outcome;
use crate::step::{Checkpoint, Clock, MAX_VISIBILITY_S, Ready, Step, done, stamp};

/// A reserved pair-rate turn at most this far away is waited for in process; a later one
/// through the queue.
const IN_PROCESS_TURN_WAIT_MS: i64 = 1_500;
use crate::{Sender, SenderPorts, Transient};

impl<P: SenderPorts> Sender<P> {
    pub(crate) async fn send_step(&self, step: Step, clock: Clock, deadline_ms: i64) -> Step {
        let Step::Ready(ready) = step else {
            return step;
        };
        let key = ready.key.clone();
        let owner = ready.owner.clone();
        let unsent = ready.unsent();
        match self.send(*ready, clock, deadline_ms).await {
            Ok(step) => step,
            Err(e) => {
                // Nothing was sent: say so, so the retry need not wait for reconciliation.
                tracing::warn!(error = %e, "transient failure before sending; the record will be retried");
                let _ = self
                    .hold(&key, &owner, clock.now_ms() + 1_000, &unsent)
                    .await;
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
        let unsent = r.unsent();
        // Too close to the deadline to finish a call: give it back untouched.
        if call_budget(deadline_ms, clock.now_ms()).is_none() {
            self.hold(&r.key, &r.owner, clock.now_ms() + 1_000, &unsent)
                .await?;
            return Ok(Step::Later { delay_s: Some(1) });
        }
        // A conversation action reaches no one: no pair-rate turn, and Meta's mark-as-read.
        if let Some(action) = r.job.message.as_mark_read() {
            let request = MarkReadRequest::new(action.message_id.clone(), action.typing_indicator);
            let pn = r.job.phone_number_id.clone();
            let graph = self.ports.graph();
            let result = self
                .with_token(&pn, clock, deadline_ms, async |token: &str, _budget| {
                    graph.mark_read(&pn, &request, token).await
                })
                .await?;
            return Ok(self.settle_action(r, result, clock).await);
        }
        // 7. Pair rate: our reserved turn if we hold one still usable, else take or reserve one.
        // A turn more than a moment away is waited for through the queue, never in process.
        let reserved = r
            .pair_turn_at_ms
            .filter(|&at| reserved_turn_usable(at, clock.now_ms()));
        let turn_at = match reserved {
            Some(at) => Some(at),
            None => {
                let asked_at = clock.now_ms();
                match self
                    .ports
                    .control()
                    .take_pair_turn(&r.user, asked_at, self.config.pair_gap_ms)
                    .await?
                {
                    // Meta measures from our request's arrival: a store slow to answer ate the
                    // turn's margin, and sending now could crowd the next holder. Come back.
                    Turn::Now if clock.now_ms() - asked_at > PAIR_TURN_MARGIN_MS / 2 => {
                        self.hold(&r.key, &r.owner, clock.now_ms() + 1_000, &unsent)
                            .await?;
                        return Ok(Step::Later { delay_s: Some(1) });
                    }
                    Turn::Now => None,
                    Turn::Reserved { at_ms } => Some(at_ms),
                }
            }
        };
        if let Some(at) = turn_at {
            let wait = at - clock.now_ms();
            if wait > IN_PROCESS_TURN_WAIT_MS {
                // Back a little before the turn starts (whole seconds, rounded down), and wait
                // the rest in process then.
                let delay_s = u32::try_from(wait / 1000)
                    .unwrap_or(MAX_VISIBILITY_S)
                    .clamp(1, MAX_VISIBILITY_S);
                let cp = Checkpoint {
                    pair_turn_at_ms: Some(at),
                    ..unsent
                };
                // Held until a second before the redelivery, so that the redelivery finds the
                // record free whatever the clocks' skew.
                let until = clock.now_ms() + i64::from(delay_s - 1) * 1000;
                self.hold(&r.key, &r.owner, until, &cp).await?;
                return Ok(Step::Later {
                    delay_s: Some(delay_s),
                });
            }
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            // Woken too late (a busy host): the turn has lapsed; take another next time.
            if !reserved_turn_usable(at, clock.now_ms()) {
                self.hold(&r.key, &r.owner, clock.now_ms() + 1_000, &unsent)
                    .await?;
                return Ok(Step::Later { delay_s: Some(1) });
            }
            if call_budget(deadline_ms, clock.now_ms()).is_none() {
                let cp = Checkpoint {
                    pair_turn_at_ms: Some(at),
                    ..unsent
                };
                self.hold(&r.key, &r.owner, clock.now_ms() + 1_000, &cp)
                    .await?;
                return Ok(Step::Later { delay_s: Some(1) });
            }
        }
        let Some(mut request) = SendMessageRequest::for_job(&r.job, Some(&r.callback)) else {
            // Cannot happen: our callback data is 35 bytes.
            let o = Outcome::rejected("internal", "callback data too long", clock.now_ms());
            return Ok(done(stamp(o, &r.job, r.failures), None));
        };
        if r.via_marketing_messages {
            request.endpoint = SendEndpoint::MarketingMessages;
        }
        let result = self.call_graph(&r, &request, clock, deadline_ms).await?;
        Ok(self.settle(r, result, clock).await)
    }

    /// The Graph call, bounded by the time the invocation has left.
    async fn call_graph(
        &self,
        r: &Ready,
        request: &SendMessageRequest<'_>,
        clock: Clock,
        deadline_ms: i64,
    ) -> Result<Result<SendMessageResponse, GraphCallError>, Transient> {
        let pn = &r.job.phone_number_id;
        let graph = self.ports.graph();
        self.with_token(pn, clock, deadline_ms, async |token: &str, budget| {
            graph.send_message_within(pn, request, token, budget).await
        })
        .await
    }

    /// `call` with the access token of `phone_number_id`'s account and the time the invocation
    /// has left for it. A 190 means the token was rotated or expired: re-read it once and call
    /// once more, if there is still time.
    async fn with_token<T>(
        &self,
        phone_number_id: &str,
        clock: Clock,
        deadline_ms: i64,
        call: impl AsyncFn(&str, Duration) -> Result<T, GraphCallError>,
    ) -> Result<Result<T, GraphCallError>, Transient> {
        self.refreshing_on_190(
            phone_number_id,
            async |token: &str| {
                // Checked by the caller; a zero budget only if the clock jumped meanwhile.
                let budget = call_budget(deadline_ms, clock.now_ms()).unwrap_or_default();
                Ok(call(token, budget).await)
            },
            || call_budget(deadline_ms, clock.now_ms()).is_some(),
        )
        .await
    }

    /// `call` with the access token of the account `phone_number_id` belongs to. On a 190 (the
    /// token was rotated or expired), the secret is re-read once and, if that account's token
    /// changed and `again()` still allows, `call` is made once more with the fresh one.
    pub(crate) async fn refreshing_on_190<T>(
        &self,
        phone_number_id: &str,
        call: impl AsyncFn(&str) -> Result<Result<T, GraphCallError>, Transient>,
        again: impl Fn() -> bool,
    ) -> Result<Result<T, GraphCallError>, Transient> {
        // Gate 1 refused jobs for numbers not configured, so every number here has a home.
        let waba_id = self
            .config
            .numbers
            .get(phone_number_id)
            .map_or("", |home| home.waba_id.as_str());
        let is_190 = |res: &Result<Result<T, GraphCallError>, Transient>| matches!(res, Ok(Err(e)) if e.token_rejected());
        whatsapp_core::ports::with_access_token(self.ports.secrets(), waba_id, call, is_190, again)
            .await?
    }
}

/// What a Graph call must leave of the invocation to settle after it: store the verdict or the
/// checkpoint, publish the outcome.
pub(crate) const SETTLE_MARGIN_MS: i64 = 1_500;
/// The least time worth starting a call with.
pub(crate) const MIN_CALL_MS: i64 = 500;

/// How long a Graph call started at `now_ms` may take so that the invocation still settles
/// before `deadline_ms`; `None` when too little is left to start one.
pub(crate) fn call_budget(deadline_ms: i64, now_ms: i64) -> Option<Duration> {
    let left = deadline_ms - now_ms - SETTLE_MARGIN_MS;
    (left >= MIN_CALL_MS).then(|| Duration::from_millis(left as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_may_take_only_what_the_invocation_has_left_to_settle() {
        assert_eq!(call_budget(10_000, 0), Some(Duration::from_millis(8_500)));
        assert_eq!(call_budget(2_500, 0), Some(Duration::from_millis(1_000)));
        assert_eq!(call_budget(2_000, 0), Some(Duration::from_millis(500)));
        assert_eq!(call_budget(1_999, 0), None);
        assert_eq!(call_budget(0, 1_000), None);
    }
}
