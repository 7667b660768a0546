//! One deployment, several Meta apps and business accounts: the real webhook, reading its
//! secret from Secrets Manager on ministack, takes the signed webhooks of two simulated apps
//! (each Meta app signs with its own app secret) and refuses a third it was not given; and the
//! sender, poller and template submitter use each account's own access token.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use simulator::{InboundSpec, SimConfig, Simulator, Tier};

use crate::support::{APP_SECRET, VERIFY_TOKEN, ingest_stack};
use crate::webhook::{PHONE, WABA, eventually, front, webhook};

const WABA_2: &str = "102290129340399";
const PHONE_2: &str = "106540352242999";

const SECOND_APP_SECRET: &str = "second-app-secret-for-the-support-bot";

/// A Meta app with its own secret, business account and number.
async fn app(secret: &str, url: &str, waba: &str, phone: &str) -> simulator::RunningSimulator {
    let cfg = SimConfig {
        app_secret: secret.into(),
        callback_url: Some(url.to_owned()),
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    sim.sim.create_waba(waba, Tier::T10K);
    sim.sim.create_phone_number(phone, waba, "15550783881");
    sim
}

/// A user writes to `phone`; returns the HTTP status the webhook answered.
async fn user_writes(sim: &simulator::RunningSimulator, phone: &str, wa_id: &str) -> Option<u16> {
    let user = sim.sim.add_user(Some(wa_id), None, true);
    let spec = InboundSpec {
        phone_number_id: phone.into(),
        message: json!({"type": "text", "text": {"body": "hello"}}),
        referral: None,
        context: None,
        hide_phone_number: false,
        media: None,
    };
    sim.sim.user_sends(&user, spec).unwrap();
    let mut status = None;
    eventually("the webhook's answer", || {
        status = sim.sim.deliveries().last().and_then(|d| d.status);
        async move { status.is_some() }
    })
    .await;
    sim.sim.deliveries().last().and_then(|d| d.status)
}

#[tokio::test]
async fn the_webhook_takes_every_configured_app_and_no_other() {
    let stack = ingest_stack().await;
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(&stack.secret_id)
        .secret_string(
            json!({
                "app_secret": APP_SECRET,
                "apps": [{"name": "support-app", "app_secret": SECOND_APP_SECRET}],
                "verify_token": VERIFY_TOKEN,
                "access_token": "tok",
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let url = front(Arc::new(webhook(&stack))).await;
    let first = app(APP_SECRET, &url, WABA, PHONE).await;
    let second = app(SECOND_APP_SECRET, &url, WABA_2, PHONE_2).await;
    let stranger = app("an-app-this-deployment-never-met", &url, WABA_2, PHONE_2).await;
    assert_eq!(user_writes(&first, PHONE, "447700900301").await, Some(200));
    assert_eq!(
        user_writes(&second, PHONE_2, "447700900302").await,
        Some(200)
    );
    assert_eq!(
        user_writes(&stranger, PHONE_2, "447700900303").await,
        Some(401)
    );
}

/// The second app's business account and number, in the sender rig's simulator.
const WABA_B: &str = "102290129340377";
const PHONE_B: &str = "106540352242977";

/// The deployment's secret: both apps, and a token per account (no shared token).
async fn put_tokens(rig: &crate::sender::Rig, first: &str, second: &str) {
    aws_sdk_secretsmanager::Client::new(&rig.stack.aws)
        .put_secret_value()
        .secret_id(&rig.stack.secret_id)
        .secret_string(
            json!({
                "app_secret": APP_SECRET,
                "apps": [{"name": "support-app", "app_secret": SECOND_APP_SECRET}],
                "verify_token": VERIFY_TOKEN,
                "access_token": "",
                "access_tokens": {WABA: first, WABA_B: second},
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
}

/// A text job from `phone`.
fn job_from(phone: &str, key: &str, to: &str) -> String {
    let mut job: serde_json::Value =
        serde_json::from_str(&crate::sender::job(key, to, crate::sender::text("hi"))).unwrap();
    job["phone_number_id"] = json!(phone);
    job.to_string()
}

/// The Graph requests the simulator answered with 190 on `phone`'s sends since `from`.
fn rejected_on(rig: &crate::sender::Rig, phone: &str, from: usize) -> usize {
    rig.sim.sim.requests()[from..]
        .iter()
        .filter(|r| r.path.contains(&format!("/{phone}/")) && r.error_code == Some(190))
        .count()
}

/// Two Meta apps, each with its business account, number and system user whose token reaches
/// only that account: the webhook takes both apps' signed webhooks; the sender, the poller and
/// the template submitter each use the right account's token (the simulator answers 100/33 to
/// the wrong one); a rotation of one account's token costs that account one 190 and one
/// re-read of the secret, and the other account none.
#[tokio::test]
async fn two_apps_and_two_accounts_each_with_its_own_token() {
    use crate::sender::{config, enqueue_and_receive, graph, invoke, outcomes, rig, sender_with};
    use sender::Verdict;
    use whatsapp_core::config::NumberHome;

    let rig = rig(|c| c.pair_rate_gap_ms = 0).await;
    let sim = &rig.sim.sim;
    sim.create_waba(WABA_B, Tier::T2K);
    sim.create_phone_number(PHONE_B, WABA_B, "15550783877");
    sim.subscribe_app(WABA_B, SECOND_APP_SECRET);
    // The rig's "tok" now reaches the first account only; "tok-b" the second only.
    sim.add_scoped_token("tok", None, &[WABA]);
    sim.add_scoped_token("tok-b", None, &[WABA_B]);
    put_tokens(&rig, "tok", "tok-b").await;

    // Inbound through both apps: each opens its number's window.
    let (a, b) = ("447700900311", "447700900312");
    crate::sender::user_on(&rig, PHONE, a, true).await;
    crate::sender::user_on(&rig, PHONE_B, b, true).await;
    assert!(
        sim.deliveries().iter().all(|d| d.status == Some(200)),
        "both apps' webhooks taken"
    );

    // Sends from both numbers, each with its account's token.
    let mut cfg = config();
    cfg.numbers =
        sender::config::parse_numbers(&format!("{PHONE}:{WABA},{PHONE_B}:{WABA_B}")).unwrap();
    let sender = sender_with(&rig, graph(&rig), cfg);
    let records = enqueue_and_receive(
        &rig,
        &[job_from(PHONE, "acc-a1", a), job_from(PHONE_B, "acc-b1", b)],
    )
    .await;
    let response = invoke(&rig, &sender, &records, crate::support::now_ms()).await;
    assert!(response.batch_item_failures.is_empty());
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 2);
    assert!(
        out.iter().all(|o| o.outcome == Verdict::Accepted),
        "{out:#?}"
    );

    // The first account's token is rotated; the sender still holds the old one.
    sim.add_scoped_token("tok-a2", None, &[WABA]);
    sim.add_scoped_token("tok", Some(crate::support::now() - 1), &[WABA]);
    put_tokens(&rig, "tok-a2", "tok-b").await;
    let seen = sim.requests().len();
    let records = enqueue_and_receive(
        &rig,
        &[job_from(PHONE, "acc-a2", a), job_from(PHONE_B, "acc-b2", b)],
    )
    .await;
    let later = crate::support::now_ms() + 7_000;
    assert!(
        invoke(&rig, &sender, &records, later)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert!(
        out.iter().all(|o| o.outcome == Verdict::Accepted),
        "{out:#?}"
    );
    assert_eq!(
        rejected_on(&rig, PHONE, seen),
        1,
        "one 190, then the new token"
    );
    assert_eq!(
        rejected_on(&rig, PHONE_B, seen),
        0,
        "the other account untouched"
    );

    // The poller reads each number with its account's token.
    let homes = [(PHONE, WABA), (PHONE_B, WABA_B)].map(|(pn, waba)| {
        let home = NumberHome {
            waba_id: waba.into(),
            portfolio_id: waba.into(),
        };
        (pn.to_owned(), home)
    });
    let (poller, _alerts) = crate::poller::poller_for(&rig, homes.into_iter().collect()).await;
    let report = poller.run(crate::support::now_ms()).await;
    for pn in [PHONE, PHONE_B] {
        assert!(
            matches!(
                report.numbers[pn],
                quality_poller::NumberResult::Polled { .. }
            ),
            "{pn}: {:?}",
            report.numbers[pn]
        );
    }
    for waba in [WABA, WABA_B] {
        assert!(
            report.templates[waba].get("error").is_none(),
            "{waba}: {}",
            report.templates[waba]
        );
    }

    // The submitter creates a template in each account with that account's token.
    let submitter = template_submitter::Submitter {
        api: graph(&rig),
        store: whatsapp_aws::DynamoTemplateStore::new(
            aws_sdk_dynamodb::Client::new(&rig.stack.aws),
            &rig.stack.resources.templates_table,
        ),
        secrets: whatsapp_aws::CachedSecrets::new(
            whatsapp_aws::SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&rig.stack.aws),
                &rig.stack.secret_id,
            ),
            std::time::Duration::from_secs(300),
        ),
        wabas: [WABA, WABA_B].map(str::to_owned).into(),
    };
    for waba in [WABA, WABA_B] {
        let body = json!({
            "name": "order_ready", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Your order {{1}} is ready.",
                            "example": {"body_text": [["A-1"]]}}],
        });
        let r = submitter
            .handle(
                "POST",
                &format!("/templates/{waba}"),
                body.to_string().as_bytes(),
                crate::support::now(),
            )
            .await;
        assert_eq!(r.status, 201, "{waba}: {}", r.body);
    }
}
