//! The quality poller, run on a schedule: for every configured number it reads quality, status,
//! name status, throughput level and the portfolio's messaging limit; stores the current state
//! (which is also what the sender enforces: cap, tier, marketing pause) and an append-only
//! history; publishes an alert on every change with a projection of the tier; and syncs every
//! account's templates, the backstop for missed webhooks. A rate-limited or failing number never
//! stops the others: it is retried on a later run.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;
use whatsapp_core::config::NumberHome;
use whatsapp_core::graph::{ErrorClass, PhoneNumberInfo};
use whatsapp_core::policy::{
    HealthChange, NumberHealth, TierProjection, health_changes, project_tier, quality_score,
};
use whatsapp_core::ports::{
    AlertSink, GraphApi, GraphCallError, NumberState, NumberStateStore, SecretSource, TemplateApi,
    TemplateStore, with_access_token,
};
use whatsapp_core::template_sync::{SyncError, sync_templates};

/// Settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollerConfig {
    /// `PHONE_NUMBERS`, as for the sender.
    pub numbers: BTreeMap<String, NumberHome>,
    /// `PAUSE_MARKETING_ON` (default `RED,FLAGGED`): quality ratings or statuses that pause
    /// marketing sends on a number until it clears. Empty: never pause.
    pub pause_on: Vec<String>,
    /// `SYNC_TEMPLATES` (default `true`).
    pub sync_templates: bool,
}

/// What happened to one number in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum NumberResult {
    Polled {
        changes: usize,
        marketing_paused: bool,
        /// The quality rating fell since the last run (GREEN → YELLOW → RED).
        quality_dropped: bool,
    },
    /// Waiting out an earlier rate limit until `until` (epoch s).
    BackingOff {
        until: i64,
    },
    /// Meta's rate limit (4, 80007): polled again after `until`.
    RateLimited {
        until: i64,
        code: i64,
    },
    Failed {
        reason: String,
    },
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PollReport {
    pub numbers: BTreeMap<String, NumberResult>,
    /// Each polled number's health as read in this run.
    pub health: BTreeMap<String, NumberHealth>,
    /// Per account: `{seen, updated, pages}` or the error.
    pub templates: BTreeMap<String, serde_json::Value>,
}

/// The poller, generic over its ports.
pub struct Poller<G, C, T, A, K> {
    pub graph: G,
    pub control: C,
    pub templates: T,
    pub alerts: A,
    pub secrets: K,
    pub config: PollerConfig,
}

/// The alert event's shape (documented in the README).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthAlert<'a> {
    pub version: u32,
    pub kind: &'static str,
    pub phone_number_id: &'a str,
    pub waba_id: &'a str,
    pub changes: &'a [whatsapp_core::policy::HealthChange],
    pub health: &'a NumberHealth,
    pub marketing_paused: bool,
    pub mps: u32,
    pub tier_projection: &'a TierProjection,
    pub at_ms: i64,
}

impl<G, C, T, A, K> Poller<G, C, T, A, K>
where
    G: GraphApi + TemplateApi,
    C: NumberStateStore,
    T: TemplateStore,
    A: AlertSink,
    K: SecretSource,
{
    pub async fn run(&self, now_ms: i64) -> PollReport {
        let mut report = PollReport::default();
        // Each account's own token is read per call (from the cache); an unreadable secret
        // fails every number at once.
        match self.secrets.secrets().await {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "secret unavailable; nothing polled");
                for pn in self.config.numbers.keys() {
                    report.numbers.insert(
                        pn.clone(),
                        NumberResult::Failed {
                            reason: "secret_unavailable".into(),
                        },
                    );
                }
                return report;
            }
        }
        let mut limited_wabas = BTreeSet::new();
        for (pn, home) in &self.config.numbers {
            let (result, health) = self.poll_number(pn, home, now_ms).await;
            if let Some(health) = health {
                report.health.insert(pn.clone(), health);
            }
            if matches!(result, NumberResult::RateLimited { code: 80007, .. }) {
                limited_wabas.insert(home.waba_id.clone());
            }
            report.numbers.insert(pn.clone(), result);
        }
        if self.config.sync_templates {
            let wabas: BTreeSet<&String> =
                self.config.numbers.values().map(|h| &h.waba_id).collect();
            for waba in wabas {
                let out = if limited_wabas.contains(waba) {
                    json!({"skipped": "rate_limited"})
                } else {
                    let synced = with_access_token(
                        &self.secrets,
                        waba,
                        async |token: &str| {
                            sync_templates(&self.graph, &self.templates, waba, token, now_ms / 1000)
                                .await
                        },
                        |r| matches!(r, Err(SyncError::Graph(e)) if e.token_rejected()),
                        || true,
                    )
                    .await;
                    match synced {
                        Err(e) => {
                            tracing::warn!(error = %e, "template sync not started");
                            json!({"error": e.to_string()})
                        }
                        Ok(Ok(r)) => serde_json::to_value(r).unwrap_or_default(),
                        Ok(Err(SyncError::Graph(e))) => {
                            tracing::warn!(error = %e, "template sync stopped");
                            json!({"error": e.to_string(), "graph_code": graph_code(&e)})
                        }
                        Ok(Err(SyncError::Store(e))) => {
                            tracing::warn!(error = %e, "template sync stopped");
                            json!({"error": e.to_string()})
                        }
                    }
                };
                report.templates.insert(waba.clone(), out);
            }
        }
        report
    }

    async fn poll_number(
        &self,
        pn: &str,
        home: &NumberHome,
        now_ms: i64,
    ) -> (NumberResult, Option<NumberHealth>) {
        let now = now_ms / 1000;
        let failed = |reason: String| (NumberResult::Failed { reason }, None);
        let old = match self.control.number_state(pn).await {
            Ok(o) => o,
            Err(e) => return failed(e.to_string()),
        };
        if let Some(until) = old.as_ref().and_then(|o| o.backoff_until)
            && until > now
        {
            return (NumberResult::BackingOff { until }, None);
        }
        let info = match self.fetch(pn, home, now).await {
            Ok(info) => info,
            Err(result) => return (result, None),
        };
        let health = NumberHealth::from_info(&info);
        let previous = old.as_ref().filter(|o| o.polled_at > 0).map(|o| &o.health);
        let changes = health_changes(previous, &health);
        // A rating Meta stops reporting (UNKNOWN) is not a drop.
        let score = quality_score(&health.quality);
        let quality_dropped =
            previous.is_some_and(|p| score > 0 && score < quality_score(&p.quality));
        let paused = health.pauses_marketing(&self.config.pause_on);
        let state = NumberState {
            health: health.clone(),
            marketing_paused: paused,
            polled_at: now,
            backoff_until: None,
        };
        // The sender's limits change at once: cap, tier, marketing pause.
        if let Err(e) = self.control.put_number_state(pn, &state).await {
            return failed(e.to_string());
        }
        if !changes.is_empty() {
            self.report(pn, home, &health, &changes, paused, now_ms)
                .await;
        }
        let result = NumberResult::Polled {
            changes: changes.len(),
            marketing_paused: paused,
            quality_dropped,
        };
        (result, Some(health))
    }

    /// The number's node from the Graph API, with its account's token (re-read once after a
    /// 190); a rate limit (4, 80007) stores a back-off.
    async fn fetch(
        &self,
        pn: &str,
        home: &NumberHome,
        now: i64,
    ) -> Result<PhoneNumberInfo, NumberResult> {
        let fetched = with_access_token(
            &self.secrets,
            &home.waba_id,
            async |token: &str| self.graph.phone_number(pn, token).await,
            |r| matches!(r, Err(e) if e.token_rejected()),
            || true,
        )
        .await;
        let e = match fetched {
            Ok(Ok(info)) => return Ok(info),
            Ok(Err(e)) => e,
            Err(e) => {
                tracing::error!(alert = true, error = %e, "no access token to poll a number with");
                return Err(NumberResult::Failed {
                    reason: "secret_unavailable".into(),
                });
            }
        };
        let c = e.classification();
        let code = graph_code(&e);
        if matches!(code, 4 | 80007) {
            let until = now + i64::try_from(c.retry_after.as_secs()).unwrap_or(120);
            if let Err(err) = self.control.set_backoff(pn, until).await {
                tracing::warn!(error = %err, "could not store the back-off");
            }
            tracing::warn!(code, until, "Graph rate limit while polling; backing off");
            return Err(NumberResult::RateLimited { until, code });
        }
        if c.alert || c.class == ErrorClass::Terminal {
            tracing::error!(alert = true, code, "polling a number failed");
        }
        Err(NumberResult::Failed {
            reason: format!("graph error {code}"),
        })
    }

    /// A change: appended to the history, and published with the tier projection.
    async fn report(
        &self,
        pn: &str,
        home: &NumberHome,
        health: &NumberHealth,
        changes: &[HealthChange],
        paused: bool,
        now_ms: i64,
    ) {
        let now = now_ms / 1000;
        if let Err(e) = self.control.append_history(pn, now_ms, changes).await {
            tracing::warn!(error = %e, "could not append the history");
        }
        let reached = self
            .control
            .reached_7d(&home.portfolio_id, now)
            .await
            .unwrap_or(0);
        let projection = project_tier(health, reached);
        let alert = HealthAlert {
            version: 1,
            kind: "number_health_changed",
            phone_number_id: pn,
            waba_id: &home.waba_id,
            changes,
            health,
            marketing_paused: paused,
            mps: health.mps(),
            tier_projection: &projection,
            at_ms: now_ms,
        };
        let event = serde_json::to_value(&alert).unwrap_or_default();
        let subject = format!(
            "WhatsApp number {pn}: {}",
            changes
                .iter()
                .map(|c| format!("{} {}", c.field, c.to))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Err(e) = self.alerts.publish(&subject, &event).await {
            tracing::warn!(error = %e, "alert not published");
        }
        tracing::info!(
            phone_number_id = pn,
            changes = changes.len(),
            marketing_paused = paused,
            "number health changed"
        );
    }
}

impl PollReport {
    /// The run's EMF documents: per number its quality, messaging limit, throughput cap and
    /// share, and marketing pause (dimension `PhoneNumberId`, the business's own number); per
    /// run the numbers paused, the quality drops, and the numbers not polled by reason.
    pub fn metrics(&self, now_ms: i64) -> Vec<serde_json::Value> {
        use whatsapp_core::metrics::{catalog as c, document};
        let total_mps: f64 = self.health.values().map(|h| f64::from(h.mps())).sum();
        let mut docs = Vec::new();
        for (pn, h) in &self.health {
            let paused = matches!(
                self.numbers.get(pn),
                Some(NumberResult::Polled {
                    marketing_paused: true,
                    ..
                })
            );
            let mut values = vec![
                (c::QUALITY_SCORE, f64::from(quality_score(&h.quality))),
                (c::THROUGHPUT_MPS, f64::from(h.mps())),
                (c::THROUGHPUT_SHARE, f64::from(h.mps()) / total_mps),
                (c::MARKETING_PAUSED, if paused { 1.0 } else { 0.0 }),
            ];
            if let Some(limit) = h.messaging_tier().unique_user_limit() {
                values.push((c::MESSAGING_LIMIT, f64::from(limit)));
            }
            docs.push(document(&[("PhoneNumberId", pn)], &values, now_ms));
        }
        let (mut paused, mut drops) = (0usize, 0usize);
        let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
        for result in self.numbers.values() {
            match result {
                NumberResult::Polled {
                    marketing_paused,
                    quality_dropped,
                    ..
                } => {
                    paused += usize::from(*marketing_paused);
                    drops += usize::from(*quality_dropped);
                }
                NumberResult::BackingOff { .. } => {}
                NumberResult::RateLimited { .. } => {
                    *failures.entry("rate_limited").or_default() += 1
                }
                NumberResult::Failed { reason } => {
                    *failures.entry(failure_label(reason)).or_default() += 1;
                }
            }
        }
        if !self.numbers.is_empty() {
            docs.push(document(
                &[],
                &[
                    (c::NUMBERS_MARKETING_PAUSED, paused as f64),
                    (c::QUALITY_DROPS, drops as f64),
                ],
                now_ms,
            ));
        }
        for (reason, n) in failures {
            docs.push(document(
                &[("Reason", reason)],
                &[(c::POLL_FAILURES, n as f64)],
                now_ms,
            ));
        }
        docs
    }
}

/// A fixed label for a failure's free-text reason (the metric's dimension).
fn failure_label(reason: &str) -> &'static str {
    if reason == "secret_unavailable" {
        "secret_unavailable"
    } else if reason == "graph error 190" {
        "access_token_invalid"
    } else if reason.starts_with("graph error") {
        "graph_error"
    } else {
        "store_error"
    }
}

fn graph_code(e: &GraphCallError) -> i64 {
    match e {
        GraphCallError::Api { body, .. } => body.code,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_not_polled_are_counted_by_a_fixed_reason() {
        let mut report = PollReport::default();
        for (pn, result) in [
            (
                "1",
                NumberResult::Failed {
                    reason: "graph error 190".into(),
                },
            ),
            (
                "2",
                NumberResult::Failed {
                    reason: "graph error 131000".into(),
                },
            ),
            (
                "3",
                NumberResult::RateLimited {
                    until: 9,
                    code: 80007,
                },
            ),
            (
                "4",
                NumberResult::Failed {
                    reason: "dynamodb: throttled".into(),
                },
            ),
            ("5", NumberResult::BackingOff { until: 9 }),
        ] {
            report.numbers.insert(pn.into(), result);
        }
        let docs = report.metrics(1);
        let failures = |reason: &str| {
            docs.iter()
                .find(|d| d["Reason"] == reason)
                .and_then(|d| d["PollFailures"].as_f64())
        };
        assert_eq!(failures("access_token_invalid"), Some(1.0));
        assert_eq!(failures("graph_error"), Some(1.0));
        assert_eq!(failures("rate_limited"), Some(1.0));
        assert_eq!(failures("store_error"), Some(1.0));
        let run = docs
            .iter()
            .find(|d| d.get("QualityDrops").is_some())
            .unwrap();
        assert_eq!(run["NumbersMarketingPaused"], 0.0);
        assert!(docs.iter().all(|d| d.get("PhoneNumberId").is_none()));
    }
}
