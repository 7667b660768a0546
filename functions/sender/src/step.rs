//! Where a record stands between the pipeline's stages, and the invocation's clock.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use whatsapp_core::job::{JobRejection, SendJob};
use whatsapp_core::policy::WindowState;
use whatsapp_core::ports::UserKey;

use crate::outcome::{Outcome, OutcomeError};

/// The clock of one invocation: the `now` the entry point injected, plus the real time elapsed
/// since (the sender waits for throughput slots within an invocation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start_ms: i64,
    started: Instant,
}

impl Clock {
    pub(crate) fn starting_at(start_ms: i64) -> Self {
        Clock {
            start_ms,
            started: Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.start_ms + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn now_s(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// What a holder leaves in the idempotency record when it gives the job back to the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Nothing was sent: the next holder may send at once.
    #[serde(default)]
    pub unsent: bool,
    /// A send whose outcome is unknown was made at this time (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at_ms: Option<i64>,
    /// Failed attempts so far.
    #[serde(default)]
    pub failures: u32,
    /// The last failure's error, for the final outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<OutcomeError>,
    /// Some earlier attempt's outcome is unknown (it may have reached Meta): every later holder
    /// asks the status webhooks before it sends again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
    /// The pair-rate turn this job reserved (epoch ms): the next holder sends in it without
    /// taking another, while it is usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_turn_at_ms: Option<i64>,
    /// Meta refused the business-scoped id for this message (131062): the next holder sends
    /// to the user's phone number.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_phone: bool,
    /// The Cloud API refused this marketing template with 131063: the next holder sends it
    /// through the Marketing Messages API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub via_marketing_messages: bool,
}

impl Checkpoint {
    /// Nothing was sent by this holder: the next may send at once (after asking the status
    /// webhooks, if an earlier attempt was `uncertain`).
    pub(crate) fn unsent(failures: u32, uncertain: bool) -> Self {
        Checkpoint {
            unsent: true,
            failures,
            uncertain,
            ..Checkpoint::default()
        }
    }
}

/// Where a record stands between stages.
pub(crate) enum Step {
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

/// A job that passed every gate that can refuse it.
pub(crate) struct Ready {
    pub job: SendJob,
    pub key: String,
    /// Our fencing token on the idempotency record.
    pub owner: String,
    pub callback: String,
    pub user: UserKey,
    pub window: WindowState,
    pub failures: u32,
    /// An earlier attempt's outcome is unknown (see [`Checkpoint::uncertain`]).
    pub uncertain: bool,
    /// When the throughput slot starts (epoch ms).
    pub slot_at_ms: Option<i64>,
    /// A pair-rate turn reserved by an earlier holder (see [`Checkpoint::pair_turn_at_ms`]).
    pub pair_turn_at_ms: Option<i64>,
    /// The message goes to the user's phone number, not the business-scoped id the job named
    /// (see [`Checkpoint::by_phone`]).
    pub by_phone: bool,
    /// A marketing template (by its stored category): the one kind of message the Marketing
    /// Messages API takes.
    pub marketing: bool,
    /// Send through the Marketing Messages API (see [`Checkpoint::via_marketing_messages`]).
    pub via_marketing_messages: bool,
}

impl Ready {
    /// The checkpoint that gives this job back with nothing sent.
    pub(crate) fn unsent(&self) -> Checkpoint {
        Checkpoint {
            by_phone: self.by_phone,
            via_marketing_messages: self.via_marketing_messages,
            ..Checkpoint::unsent(self.failures, self.uncertain)
        }
    }
}

/// The longest visibility asked of SQS: its 12 h cap counts from the receive, so keep a margin
/// for the time between the receive and our call. A longer wait takes more than one receive:
/// the record stays held, and the redelivery before the hold ends waits again.
pub(crate) const MAX_VISIBILITY_S: u32 = 43_200 - 300;
const _: () = assert!(MAX_VISIBILITY_S < 43_200);

/// Milliseconds to whole seconds of SQS visibility (at least 1, at most [`MAX_VISIBILITY_S`]).
pub(crate) fn delay_seconds(ms: i64) -> u32 {
    u32::try_from(((ms + 999) / 1000).clamp(1, i64::from(MAX_VISIBILITY_S))).unwrap_or(1)
}

/// How a record that must come back later is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveBack {
    /// Left on the queue, visible again in this many seconds (`None`: the queue's own
    /// visibility timeout).
    Visibility(Option<u32>),
    /// Replaced by a fresh copy visible in this many seconds (≤ 900), and acknowledged.
    Requeue(u32),
}

/// The queue's limits the sender keeps clear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueLimits {
    /// The queue's message retention (s).
    pub retention_s: i64,
    /// The redrive policy's `maxReceiveCount`.
    pub max_receives: u32,
    /// The queue's visibility timeout (s): what a record without a delay waits.
    pub visibility_s: u32,
}

/// Whether a record received `receives` times, first sent at `sent_at_ms`, can wait `delay_s`
/// on the queue, or must be replaced by a fresh copy: the queue would drop it (retention, with
/// an hour's margin) or dead-letter it (one receive before the redrive count) before its verdict.
pub(crate) fn give_back(
    delay_s: Option<u32>,
    sent_at_ms: Option<i64>,
    receives: Option<u32>,
    now_ms: i64,
    limits: QueueLimits,
) -> GiveBack {
    let wait_s = i64::from(delay_s.unwrap_or(limits.visibility_s));
    let near_redrive = receives.is_some_and(|n| n + 1 >= limits.max_receives);
    let outlives = sent_at_ms
        .is_some_and(|sent| sent + (limits.retention_s - 3_600) * 1000 < now_ms + wait_s * 1000);
    if near_redrive || outlives {
        GiveBack::Requeue(u32::try_from(wait_s.clamp(0, 900)).unwrap_or(900))
    } else {
        GiveBack::Visibility(delay_s)
    }
}

/// A verdict, dead-lettered with `dead_letter` as its reason when set.
pub(crate) fn done(o: Outcome, dead_letter: Option<&str>) -> Step {
    Step::Done {
        dead_letter: dead_letter.map(|r| (r.to_owned(), o.detail.clone().unwrap_or_default())),
        outcome: o.to_json(),
    }
}

/// Fills in the job's identity on an outcome.
pub(crate) fn stamp(mut o: Outcome, job: &SendJob, attempts: u32) -> Outcome {
    o.idempotency_key = Some(job.idempotency_key.clone());
    o.phone_number_id = Some(job.phone_number_id.clone());
    o.correlation = job.correlation.clone();
    o.attempts = attempts;
    o
}

/// The verdict of a body that is not a valid job (gate 0, the contract).
pub(crate) fn rejected_job(body: &str, rejection: &JobRejection, now_ms: i64) -> Step {
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
    // Keep what identity the body has, so the producer can match the outcome, marked as not
    // the verdict of whatever job owns that key.
    o.foreign = true;
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QueueLimits = QueueLimits {
        retention_s: 4 * 86_400,
        max_receives: 20,
        visibility_s: 180,
    };

    #[test]
    fn no_visibility_asked_exceeds_what_sqs_allows_after_the_receive() {
        assert_eq!(delay_seconds(24 * 3_600 * 1000), MAX_VISIBILITY_S);
        assert_eq!(delay_seconds(1), 1);
    }

    #[test]
    fn a_wait_the_queue_would_not_survive_is_a_fresh_copy() {
        let now = 1_790_812_800_000;
        let day = 86_400;
        // Young, few receives: left on the queue.
        assert_eq!(
            give_back(Some(day), Some(now - 3_600_000), Some(1), now, LIMITS),
            GiveBack::Visibility(Some(day))
        );
        // A 24 h wait on a message sent 3.5 days ago outlives the 4-day retention.
        assert_eq!(
            give_back(Some(day), Some(now - 302_400_000), Some(3), now, LIMITS),
            GiveBack::Requeue(900)
        );
        // One receive before the redrive count: a fresh copy, whatever the wait.
        assert_eq!(
            give_back(Some(5), Some(now), Some(19), now, LIMITS),
            GiveBack::Requeue(5)
        );
        assert_eq!(
            give_back(None, None, Some(19), now, LIMITS),
            GiveBack::Requeue(180)
        );
        // Without attributes (not from SQS): left on the queue.
        assert_eq!(
            give_back(None, None, None, now, LIMITS),
            GiveBack::Visibility(None)
        );
    }
}
