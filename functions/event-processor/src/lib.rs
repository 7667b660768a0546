//! The `event-processor` function: webhook items from the events queue (one item per message,
//! put there by the webhook when it could not process them inline), processed with the same
//! exactly-once code as the webhook. Reports partial batch failures: only the records that
//! failed are retried, and a record that keeps failing reaches the DLQ after the redrive count.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use tracing::{info, warn};
use whatsapp_core::foreign::ForeignKind;
use whatsapp_core::ingest::{self, IngestConfig, IngestPorts, Outcome};
use whatsapp_core::webhook::Envelope;

/// The handler, generic over its ports.
pub struct Processor<P> {
    pub ports: P,
    pub ingest: IngestConfig,
    /// Records processed at once.
    pub concurrency: usize,
}

/// Why a record was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Not an envelope: a bug upstream; retried, then dead-lettered for inspection.
    Unreadable,
    /// A store or queue failed, or another delivery holds the item: retry later.
    Retry,
}

impl<P: IngestPorts> Processor<P> {
    pub async fn handle(&self, records: &[SqsMessage], now_ms: i64) -> SqsBatchResponse {
        let quarantined = AtomicUsize::new(0);
        let response = whatsapp_aws::sqs_batch::each_record(records, self.concurrency, |r| {
            self.record(r, now_ms, &quarantined)
        })
        .await;
        if let Some(doc) = quarantine_metric(quarantined.into_inner(), now_ms) {
            whatsapp_core::metrics::emit(&[doc]);
        }
        response
    }

    async fn record(
        &self,
        record: &SqsMessage,
        now_ms: i64,
        quarantined: &AtomicUsize,
    ) -> Result<(), Failure> {
        let body = record.body.as_deref().unwrap_or("");
        let envelope = Envelope::from_slice(body.as_bytes()).map_err(|_| Failure::Unreadable)?;
        for (ctx, item) in envelope.items() {
            match ingest::process(&self.ports, &self.ingest, ctx, item, now_ms).await {
                Ok(Outcome::InFlight) => return Err(Failure::Retry),
                Ok(Outcome::Published(kind)) => {
                    if kind == ForeignKind::Malformed.label() {
                        quarantined.fetch_add(1, Ordering::Relaxed);
                    }
                    info!(kind, "item published for others");
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "item failed");
                    return Err(Failure::Retry);
                }
            }
        }
        Ok(())
    }
}

/// `EventsQuarantined` for a batch that kept malformed values, else nothing.
pub fn quarantine_metric(quarantined: usize, now_ms: i64) -> Option<serde_json::Value> {
    (quarantined > 0).then(|| {
        whatsapp_core::metrics::document(
            &[],
            &[(
                whatsapp_core::metrics::catalog::PROCESSOR_QUARANTINED,
                quarantined as f64,
            )],
            now_ms,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_fakes::MemoryPorts;

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../events/meta/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn reports_exactly_the_failed_records() {
        let p = Processor {
            ports: MemoryPorts::default(),
            ingest: IngestConfig::default(),
            concurrency: 4,
        };
        let records = [
            record("1", &fixture("inbound-text.json")),
            record("2", "not json"),
            record("3", &fixture("status-delivered-pmp.json")),
            record("4", "{}"),
            record("5", &fixture("unknown-field.json")),
        ];
        let resp = p.handle(&records, 1_751_234_567_000).await;
        let ids: Vec<&str> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["2", "4"]);
        assert_eq!(p.ports.inbound.bodies().len(), 1);
        assert_eq!(
            p.ports.meta_events.events()[0]["field"],
            "flows",
            "the unhandled change is published, not dropped"
        );
        assert!(
            p.ports
                .messages
                .items
                .lock()
                .unwrap()
                .contains_key("wamid.HBgNSTATUS1")
        );
    }

    #[tokio::test]
    async fn every_inbound_event_follows_the_bots_contract() {
        let schema: serde_json::Value = serde_json::from_str(&fixture(
            "../../shared/core/schema/inbound-event.schema.json",
        ))
        .unwrap();
        let contract = jsonschema::validator_for(&schema).unwrap();
        let p = Processor {
            ports: MemoryPorts::default(),
            ingest: IngestConfig::default(),
            concurrency: 4,
        };
        let names = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/meta"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("inbound-") || n.starts_with("batched-"));
        let records: Vec<SqsMessage> = names.map(|n| record(&n, &fixture(&n))).collect();
        assert!(records.len() >= 5);
        p.handle(&records, 1_751_234_567_000).await;
        let mut bodies = p.ports.inbound.bodies();
        bodies.extend(p.ports.media_fetch.bodies());
        assert!(
            !p.ports.media_fetch.bodies().is_empty(),
            "the fixtures hold media"
        );
        for b in bodies {
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            let errors: Vec<String> = contract.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?} in {v}");
        }
    }

    #[tokio::test]
    async fn a_failing_store_retries_only_that_record() {
        let p = Processor {
            ports: MemoryPorts::default(),
            ingest: IngestConfig::default(),
            concurrency: 4,
        };
        p.ports
            .inbound
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let records = [
            record("a", &fixture("inbound-text.json")),
            record("b", &fixture("status-sent-cbp.json")),
        ];
        let resp = p.handle(&records, 1_751_234_567_000).await;
        let ids: Vec<&str> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["a"]);
        // The retry succeeds once the queue is back, and forwards exactly once.
        p.ports
            .inbound
            .fail
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let resp = p.handle(&records[..1], 1_751_234_568_000).await;
        assert!(resp.batch_item_failures.is_empty());
        p.handle(&records[..1], 1_751_234_569_000).await;
        assert_eq!(p.ports.inbound.bodies().len(), 1);
    }

    #[tokio::test]
    async fn a_topic_outage_retries_the_record_until_the_event_is_published() {
        let p = Processor {
            ports: MemoryPorts::default(),
            ingest: IngestConfig::default(),
            concurrency: 4,
        };
        let meta_events = &p.ports.meta_events;
        meta_events
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let records = [record("u", &fixture("unknown-field.json"))];
        let resp = p.handle(&records, 1_751_234_567_000).await;
        assert_eq!(resp.batch_item_failures.len(), 1);
        meta_events
            .fail
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let resp = p.handle(&records, 1_751_234_568_000).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(meta_events.events().len(), 1);
    }

    fn status(id: &str, status: &str, at: i64, recipient: bool, error: Option<i64>) -> String {
        let mut st = serde_json::json!({"id": id, "status": status, "timestamp": at.to_string()});
        if recipient {
            st["recipient_user_id"] = "US.13491208655302741918".into();
        }
        if let Some(code) = error {
            st["errors"] = serde_json::json!([{"code": code, "title": "limited"}]);
        }
        serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": [st]}}]}]})
        .to_string()
    }

    #[tokio::test]
    async fn a_failed_status_naming_no_recipient_holds_marketing_for_the_recorded_one() {
        let p = Processor {
            ports: MemoryPorts::default(),
            ingest: IngestConfig::default(),
            concurrency: 1,
        };
        let records = [
            record("s", &status("wamid.X", "sent", 1_780_000_000, true, None)),
            record(
                "f",
                &status("wamid.X", "failed", 1_780_000_005, false, Some(131_049)),
            ),
        ];
        assert!(
            p.handle(&records, 1_780_000_010_000)
                .await
                .batch_item_failures
                .is_empty()
        );
        let key = whatsapp_core::ports::UserKey {
            phone_number_id: "106540352242922".into(),
            user: "US.13491208655302741918".into(),
        };
        let consent = p.ports.contacts.consent.lock().unwrap()[&key];
        assert_eq!(consent.marketing_held_at, Some(1_780_000_005));
    }

    #[tokio::test]
    async fn identity_changes_move_state_and_still_reach_the_bots_once() {
        use whatsapp_core::ports::{SessionStore, UserKey};
        let p = Processor {
            ports: MemoryPorts::default(),
            ingest: IngestConfig::default(),
            concurrency: 1,
        };
        let key = |u: &str| UserKey {
            phone_number_id: "106540352242922".into(),
            user: u.into(),
        };
        p.ports
            .sessions
            .record_inbound(&key("US.13491208655302741918"), 1_779_999_000, false)
            .await
            .unwrap();
        let records = [
            record("n", &fixture("inbound-user-changed-number.json")),
            record("u", &fixture("inbound-user-changed-user-id.json")),
        ];
        for _ in 0..2 {
            // Twice: a redelivery moves nothing twice and forwards nothing twice.
            let resp = p.handle(&records, 1_780_000_200_000).await;
            assert!(resp.batch_item_failures.is_empty());
        }
        // Two hops: the first id → the second → the third, which holds the window.
        let last = p
            .ports
            .sessions
            .window(&key("US.5520093311200071"))
            .await
            .unwrap();
        assert_eq!(last.last_inbound_at, Some(1_779_999_000));
        let first = p
            .ports
            .sessions
            .window_record(&key("US.13491208655302741918"))
            .await
            .unwrap();
        assert_eq!(first.moved_to.unwrap().user, "US.8812093321700093");
        assert_eq!(p.ports.inbound.bodies().len(), 2);
    }

    #[tokio::test]
    async fn malformed_values_are_counted_for_the_quarantine_alarm() {
        let doc = quarantine_metric(2, 1).unwrap();
        assert_eq!(
            (doc["Function"].as_str(), doc["EventsQuarantined"].as_f64()),
            (Some("event-processor"), Some(2.0))
        );
        assert!(quarantine_metric(0, 1).is_none());
    }
}
