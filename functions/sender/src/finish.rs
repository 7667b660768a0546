//! Stage 4: dead-letter and publish the verdicts, defer what must wait, and answer SQS with
//! exactly the records that must come back.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use whatsapp_core::ports::{DeadLetters, MessageQueue, Redelivery};

use crate::step::{Clock, GiveBack, QueueLimits, Step, give_back};
use crate::{Sender, SenderPorts};

impl<P: SenderPorts> Sender<P> {
    /// Gives a record back for later. Returns whether it was replaced by a fresh copy (then the
    /// original is acknowledged); otherwise it stays on the queue with its delay.
    async fn give_back(&self, record: &SqsMessage, delay_s: Option<u32>, clock: Clock) -> bool {
        let attribute = |name: &str| record.attributes.get(name).and_then(|v| v.parse().ok());
        let limits = QueueLimits {
            retention_s: self.config.queue_retention_s,
            max_receives: self.config.queue_max_receives,
            visibility_s: self.config.queue_visibility_s,
        };
        let plan = give_back(
            delay_s,
            attribute("SentTimestamp"),
            attribute("ApproximateReceiveCount").and_then(|n: i64| u32::try_from(n).ok()),
            clock.now_ms(),
            limits,
        );
        let redelivery = self.ports.redelivery();
        if let GiveBack::Requeue(delay) = plan {
            let body = record.body.as_deref().unwrap_or_default();
            match redelivery.requeue(body, delay).await {
                Ok(()) => {
                    tracing::info!(
                        delay,
                        "job put back as a fresh copy: the queue would have dropped or dead-lettered it while it waits"
                    );
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not requeue; leaving the record on the queue")
                }
            }
        }
        if let (Some(d), Some(handle)) = (delay_s, record.receipt_handle.as_deref())
            && let Err(e) = redelivery.redeliver_in(handle, d).await
        {
            tracing::warn!(error = %e, "could not set the redelivery delay");
        }
        false
    }

    /// Phase 4: dead-letter, publish, defer; the batch response lists exactly the records that
    /// must come back.
    pub(crate) async fn finish(
        &self,
        records: &[SqsMessage],
        steps: Vec<Step>,
        clock: Clock,
    ) -> SqsBatchResponse {
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
                    retry[i] = !self.give_back(record, delay_s, clock).await;
                }
                Step::Ready(_) => retry[i] = true,
            }
        }
        let bodies: Vec<String> = publish.iter().map(|(_, b)| b.clone()).collect();
        whatsapp_core::metrics::emit(&outcome_metrics(&bodies, clock.now_ms()));
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

/// EMF documents for a batch's verdicts: `Sends` (accepted), and `Rejects` (refused by policy or
/// contract) and `Failures` (Meta or transport errors) by reason.
pub fn outcome_metrics(outcomes: &[String], now_ms: i64) -> Vec<serde_json::Value> {
    use std::collections::BTreeMap;
    use whatsapp_core::metrics::{Metric, catalog, document};
    let mut sends = 0usize;
    let mut by_reason: BTreeMap<(&'static str, String), (Metric, usize)> = BTreeMap::new();
    for body in outcomes {
        let Ok(o) = serde_json::from_str::<serde_json::Value>(body) else {
            continue;
        };
        let reason = o["reason"].as_str().unwrap_or("unknown").to_owned();
        match o["outcome"].as_str() {
            Some("accepted") => sends += 1,
            Some("rejected") => {
                by_reason
                    .entry(("Rejects", reason))
                    .or_insert((catalog::REJECTS, 0))
                    .1 += 1;
            }
            Some(_) => {
                by_reason
                    .entry(("Failures", reason))
                    .or_insert((catalog::FAILURES, 0))
                    .1 += 1;
            }
            None => {}
        }
    }
    let mut docs = Vec::new();
    if sends > 0 {
        docs.push(document(&[], &[(catalog::SENDS, sends as f64)], now_ms));
    }
    for ((_, reason), (metric, n)) in by_reason {
        docs.push(document(
            &[("Reason", reason.as_str())],
            &[(metric, n as f64)],
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

#[cfg(test)]
mod alarm_tests {
    use super::*;

    #[test]
    fn the_dead_token_alarm_watches_the_metric_a_190_emits() {
        let failed = r#"{"outcome":"failed","reason":"access_token_invalid"}"#.to_owned();
        let docs = outcome_metrics(&[failed], 1);
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        let alarm = whatsapp_fakes::template_resource("AccessTokenInvalidAlarm");
        assert!(alarm.contains(&format!("Namespace: {}", cw["Namespace"].as_str().unwrap())));
        assert!(alarm.contains(&format!(
            "MetricName: {}",
            cw["Metrics"][0]["Name"].as_str().unwrap()
        )));
        for dim in cw["Dimensions"][0].as_array().unwrap() {
            let name = dim.as_str().unwrap();
            let value = doc[name].as_str().unwrap();
            assert!(
                alarm.contains(&format!("- Name: {name}\n          Value: {value}")),
                "{name}={value} in {alarm}"
            );
        }
        assert!(alarm.contains("Threshold: 0") && alarm.contains("EvaluationPeriods: 1"));
    }
}
