//! The quality poller on ministack against the simulator: a quality drop to RED (alert on SNS,
//! marketing paused in the sender, limits lowered), recovery, a tier upgrade, a Graph rate limit
//! during polling that stops one number and not the other, and a missed template webhook caught
//! by the sync.

use std::collections::BTreeMap;
use std::time::Duration;

use quality_poller::{NumberResult, PollReport, Poller, PollerConfig};
use serde_json::Value;
use simulator::{Fault, FaultRoute, PhoneChange, Tier};
use whatsapp_aws::{
    CachedSecrets, DynamoSendControl, DynamoTemplateStore, GraphHttpClient, SecretsManagerFetcher,
    SnsAlerts,
};
use whatsapp_core::config::NumberHome;
use whatsapp_core::ports::{ConsentEvent, NumberStateStore, SendControl, TemplateStore};

use crate::sender::{
    Rig, config, consent, enqueue_and_receive, graph, invoke, job, outcomes, rig, seed_template,
    sender_with, template, user,
};
use crate::support::{now, queue, unique};
use crate::webhook::{PHONE, WABA};

const PHONE_2: &str = "106540352242923";

type AwsPoller = Poller<
    GraphHttpClient,
    DynamoSendControl,
    DynamoTemplateStore,
    SnsAlerts,
    CachedSecrets<SecretsManagerFetcher>,
>;

/// The poller of `numbers` (all in the rig's account), and a queue subscribed to its alert
/// topic.
async fn poller(rig: &Rig, numbers: &[&str]) -> (AwsPoller, String) {
    let home = NumberHome {
        waba_id: WABA.into(),
        portfolio_id: WABA.into(),
    };
    let numbers = numbers.iter().map(|n| ((*n).to_owned(), home.clone()));
    poller_for(rig, numbers.collect()).await
}

/// The poller of `numbers`, each with its account, and a queue subscribed to its alert topic.
pub(crate) async fn poller_for(
    rig: &Rig,
    numbers: BTreeMap<String, NumberHome>,
) -> (AwsPoller, String) {
    let sns = aws_sdk_sns::Client::new(&rig.stack.aws);
    let sqs = aws_sdk_sqs::Client::new(&rig.stack.aws);
    let topic = sns
        .create_topic()
        .name(unique("alerts"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let alerts_url = queue(&sqs, "alerts").await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&alerts_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&rig.stack.aws);
    let p = Poller {
        graph: graph(rig),
        control: DynamoSendControl::new(ddb.clone(), &rig.resources.control_table),
        templates: DynamoTemplateStore::new(ddb, &rig.stack.resources.templates_table),
        alerts: SnsAlerts::new(sns, topic),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&rig.stack.aws),
                &rig.stack.secret_id,
            ),
            Duration::from_secs(300),
        ),
        config: PollerConfig {
            numbers,
            pause_on: vec!["RED".into(), "FLAGGED".into()],
            sync_templates: true,
        },
    };
    (p, alerts_url)
}

async fn alerts(rig: &Rig, url: &str) -> Vec<Value> {
    crate::support::drain(&rig.stack.aws, url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

fn change(alert: &Value, field: &str) -> Option<String> {
    alert["changes"]
        .as_array()?
        .iter()
        .find(|c| c["field"] == field)
        .map(|c| c["to"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_drop_to_red_alerts_pauses_marketing_lowers_limits_and_recovers() {
    let rig = rig(|c| c.pair_rate_gap_ms = 0).await;
    rig.sim
        .sim
        .set_phone_state(
            PHONE,
            PhoneChange {
                throughput_level: Some("HIGH".into()),
                tier: Some(Tier::T10K),
                ..PhoneChange::default()
            },
        )
        .unwrap();
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    for w in ["447700900901", "447700900902"] {
        user(&rig, w, false).await;
        consent(&rig, w, ConsentEvent::OptIn).await;
    }
    let (p, alerts_url) = poller(&rig, &[PHONE]).await;
    let t0 = now() * 1000;
    let r = p.run(t0).await;
    assert!(
        matches!(
            r.numbers[PHONE],
            NumberResult::Polled {
                marketing_paused: false,
                ..
            }
        ),
        "{r:?}"
    );
    let first = alerts(&rig, &alerts_url).await;
    assert_eq!(first.len(), 1, "the first poll reports the whole state");
    let limits = p.control.number_limits(PHONE).await.unwrap();
    assert_eq!(
        (limits.mps, limits.tier.map(|t| t.as_str().to_owned())),
        (Some(1_000), Some("TIER_10K".into()))
    );

    // Quality drops to RED; Meta also takes the throughput upgrade and a tier back.
    rig.sim
        .sim
        .set_phone_state(
            PHONE,
            PhoneChange {
                quality_rating: Some("RED".into()),
                throughput_level: Some("STANDARD".into()),
                tier: Some(Tier::T2K),
                ..PhoneChange::default()
            },
        )
        .unwrap();
    let r = p.run(t0 + 300_000).await;
    assert!(
        matches!(
            r.numbers[PHONE],
            NumberResult::Polled {
                changes: 3,
                marketing_paused: true,
                quality_dropped: true,
            }
        ),
        "{r:?}"
    );
    // The dashboard's and alarms' figures for the run.
    let docs = r.metrics(t0 + 300_000);
    let number = docs.iter().find(|d| d["PhoneNumberId"] == PHONE).unwrap();
    assert_eq!(number["Function"], "quality-poller");
    assert_eq!(number["QualityScore"], 1.0);
    assert_eq!(number["ThroughputMps"], 80.0);
    assert_eq!(number["ThroughputShare"], 1.0);
    assert_eq!(number["MessagingLimit"], 2_000.0);
    assert_eq!(number["MarketingPaused"], 1.0);
    let run = docs
        .iter()
        .find(|d| d.get("QualityDrops").is_some())
        .unwrap();
    assert_eq!(
        (
            run["QualityDrops"].as_f64(),
            run["NumbersMarketingPaused"].as_f64()
        ),
        (Some(1.0), Some(1.0))
    );
    let alert = alerts(&rig, &alerts_url).await.remove(0);
    assert_eq!(alert["kind"], "number_health_changed");
    assert_eq!(change(&alert, "quality").as_deref(), Some("RED"));
    assert_eq!(change(&alert, "tier").as_deref(), Some("TIER_2K"));
    assert_eq!(
        (alert["marketing_paused"].as_bool(), alert["mps"].as_u64()),
        (Some(true), Some(80))
    );
    // RED blocks the upgrade; since 7 Oct 2025 it no longer lowers the limit.
    assert_eq!(alert["tier_projection"]["upgrade_on_track"], false);
    assert!(alert["tier_projection"].get("downgrade_risk").is_none());
    let limits = p.control.number_limits(PHONE).await.unwrap();
    assert_eq!(
        (
            limits.mps,
            limits.tier.map(|t| t.as_str().to_owned()),
            limits.marketing_paused
        ),
        (Some(80), Some("TIER_2K".into()), true)
    );
    // The sender refuses marketing on this number, and still sends utility.
    let sender = sender_with(&rig, graph(&rig), config());
    let jobs = [
        job(
            "q-marketing",
            "447700900901",
            template("spring_sale", &["Ann", "1"]),
        ),
        job(
            "q-utility",
            "447700900902",
            template("order_ready", &["Ann", "1"]),
        ),
    ];
    let records = enqueue_and_receive(&rig, &jobs).await;
    invoke(&rig, &sender, &records, now() * 1000).await;
    let out = outcomes(&rig).await;
    let reason = |k: &str| {
        out.iter()
            .find(|o| o.idempotency_key.as_deref() == Some(k))
            .map(|o| (o.outcome, o.reason.clone()))
    };
    assert_eq!(
        reason("q-marketing"),
        Some((sender::Verdict::Rejected, Some("marketing_paused".into())))
    );
    assert_eq!(
        reason("q-utility"),
        Some((sender::Verdict::Accepted, None)),
        "{out:#?}"
    );

    // Recovery: GREEN again, marketing resumes.
    rig.sim
        .sim
        .set_phone_state(
            PHONE,
            PhoneChange {
                quality_rating: Some("GREEN".into()),
                ..PhoneChange::default()
            },
        )
        .unwrap();
    let r = p.run(t0 + 600_000).await;
    assert!(matches!(
        r.numbers[PHONE],
        NumberResult::Polled {
            changes: 1,
            marketing_paused: false,
            quality_dropped: false,
        }
    ));
    let recovered = alerts(&rig, &alerts_url).await.remove(0);
    assert_eq!(change(&recovered, "quality").as_deref(), Some("GREEN"));
    // Our own reach so far (the utility template outside the window) feeds the projection.
    assert_eq!(recovered["tier_projection"]["reached_7d"], 1);
    assert_eq!(recovered["tier_projection"]["needed_7d"], 1_000);
    let sender = sender_with(&rig, graph(&rig), config());
    let records = enqueue_and_receive(
        &rig,
        &[job(
            "q-marketing-2",
            "447700900901",
            template("spring_sale", &["Ann", "2"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &records, now() * 1000).await;
    assert_eq!(outcomes(&rig).await[0].outcome, sender::Verdict::Accepted);
    // Every change is in the history, in order.
    let history = p.control.history(PHONE).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1].1.len(), 3);
    assert_eq!(history[2].1[0].to, "GREEN");
}

#[tokio::test]
async fn a_rate_limit_stops_one_number_not_the_others_and_the_sync_catches_missed_webhooks() {
    // No webhooks: template decisions reach us only through the sync.
    let rig = rig(|c| c.callback_url = None).await;
    rig.sim
        .sim
        .create_phone_number(PHONE_2, WABA, "15550783882");
    let (p, alerts_url) = poller(&rig, &[PHONE, PHONE_2]).await;
    rig.sim.sim.inject_fault(Fault {
        route: FaultRoute::PhoneNumbers,
        latency_ms: 0,
        error: Some((429, 80007)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(1),
    });
    let t0 = now() * 1000;
    let r: PollReport = p.run(t0).await;
    let limited = r
        .numbers
        .values()
        .filter(|n| matches!(n, NumberResult::RateLimited { code: 80007, .. }))
        .count();
    let polled = r
        .numbers
        .values()
        .filter(|n| matches!(n, NumberResult::Polled { .. }))
        .count();
    assert_eq!((limited, polled), (1, 1), "{r:?}");
    assert_eq!(
        r.templates[WABA]["skipped"], "rate_limited",
        "the account's sync waits too"
    );
    // Within the back-off the limited number is left alone; after it, polled again.
    let r = p.run(t0 + 60_000).await;
    assert!(
        r.numbers
            .values()
            .any(|n| matches!(n, NumberResult::BackingOff { .. })),
        "{r:?}"
    );
    let r = p.run(t0 + 121_000).await;
    assert!(
        r.numbers
            .values()
            .all(|n| matches!(n, NumberResult::Polled { .. })),
        "{r:?}"
    );

    // A tier upgrade.
    rig.sim
        .sim
        .set_phone_state(
            PHONE,
            PhoneChange {
                tier: Some(Tier::T10K),
                ..PhoneChange::default()
            },
        )
        .unwrap();
    alerts(&rig, &alerts_url).await;
    let r = p.run(t0 + 400_000).await;
    assert!(
        matches!(r.numbers[PHONE], NumberResult::Polled { changes: 1, .. }),
        "{r:?}"
    );
    let got = alerts(&rig, &alerts_url).await;
    // The tier is the portfolio's: both numbers report it.
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|a| change(a, "tier").as_deref() == Some("TIER_10K"))
    );
    assert_eq!(got[0]["tier_projection"]["next"], "TIER_100K");
    assert_eq!(got[0]["tier_projection"]["needed_7d"], 5_000);
    assert_eq!(
        p.control
            .number_limits(PHONE_2)
            .await
            .unwrap()
            .tier
            .map(|t| t.as_str().to_owned()),
        Some("TIER_10K".into())
    );

    // A template approved by Meta whose webhook never came: the next poll's sync stores it.
    rig.sim
        .sim
        .seed_template(
            WABA,
            serde_json::json!({"name": "silent_approval", "language": "en_US", "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Your visit is on {{1}}.",
                                "example": {"body_text": [["Monday"]]}}]}),
        )
        .unwrap();
    assert!(
        p.templates
            .template(WABA, "silent_approval", "en_US")
            .await
            .unwrap()
            .is_none()
    );
    let r = p.run(t0 + 700_000).await;
    assert_eq!(r.templates[WABA]["updated"], 1, "{r:?}");
    let t = p
        .templates
        .template(WABA, "silent_approval", "en_US")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.status.as_ref().map(|s| s.as_str()), Some("APPROVED"));
    assert!(t.components.unwrap().contains("Your visit"));
}
