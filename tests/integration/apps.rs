//! One deployment, several Meta apps: the real webhook, reading its secret from Secrets
//! Manager on ministack, takes the signed webhooks of two simulated apps (each Meta app signs
//! with its own app secret) and refuses a third it was not given.

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
