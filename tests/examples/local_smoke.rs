//! Exercises a stack deployed into the local ministack: sets the secret, verifies and posts a
//! signed webhook through the HTTP API to the webhook function (a real Lambda process), checks
//! the service window and the bots' queue, validates and enqueues the sample send jobs, and
//! claims a dedupe key. Run by `scripts/local-up` with the stack outputs in `STACK_OUTPUTS`.
//!
//! Prints what it did; never prints a secret, a phone number or message text.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::adapters::{
    CachedSecrets, DynamoDedupeStore, DynamoSessionStore, SecretsManagerFetcher, SqsQueue,
    aws_sdk_config,
};
use shared::job::SendJob;
use shared::ports::{Claim, DedupeStore, MessageQueue, SecretSource, SessionStore, UserKey};

type Error = Box<dyn std::error::Error>;

fn output<'a>(outputs: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str, Error> {
    outputs
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("stack output {key} missing").into())
}

fn fixture(path: &str) -> Result<String, Error> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Ok(std::fs::read_to_string(root.join(path))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let path =
        std::env::var("STACK_OUTPUTS").map_err(|_| "set STACK_OUTPUTS to the outputs JSON")?;
    let outputs: BTreeMap<String, String> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let aws = aws_sdk_config().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;

    // The secret: generated verify token; then what an operator does after the first deploy,
    // setting the Meta app secret and access token.
    let secret_id = output(&outputs, "WhatsAppSecretArn")?;
    let sm = aws_sdk_secretsmanager::Client::new(&aws);
    let secrets = CachedSecrets::new(
        SecretsManagerFetcher::new(sm.clone(), secret_id),
        Duration::from_secs(300),
    );
    let s = secrets.secrets().await?;
    println!(
        "secret      : readable; generated verify_token of {} characters",
        s.verify_token.len()
    );
    let app_secret = "local-app-secret";
    let value = serde_json::json!({"app_secret": app_secret, "verify_token": s.verify_token, "access_token": "local-token"});
    sm.put_secret_value()
        .secret_id(secret_id)
        .secret_string(value.to_string())
        .send()
        .await?;

    // Meta's verification GET, a signed inbound message and a forged one, through the HTTP API
    // to the webhook function.
    let endpoint = std::env::var("AWS_ENDPOINT_URL")?;
    let api = output(&outputs, "WebhookApiId")?;
    let url = format!("{endpoint}/_aws/execute-api/{api}/webhook");
    let http = reqwest::Client::new();
    // Meta URL-encodes the query; the generated token may contain punctuation.
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.verify_token", &s.verify_token)
        .append_pair("hub.challenge", "4242")
        .finish();
    let verify = format!("{url}?{query}");
    let r = http.get(verify).send().await?;
    let (status, body) = (r.status().as_u16(), r.text().await?);
    println!(
        "webhook GET : {status}, challenge echoed = {}",
        body == "4242"
    );
    if (status, body.as_str()) != (200, "4242") {
        return Err("the verification GET failed".into());
    }
    let inbound = fixture("events/meta/inbound-text.json")?
        .replace("1749416383", &now.to_string())
        .replace(
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRB",
            &format!("wamid.local{now}"),
        );
    let sig = shared::signature::sign(app_secret.as_bytes(), inbound.as_bytes());
    let post = |sig: String, body: String| {
        http.post(&url)
            .header("x-hub-signature-256", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post(sig, inbound.clone()).await?;
    println!("webhook POST: {} (signed)", r.status().as_u16());
    if !r.status().is_success() {
        return Err(format!("the webhook POST failed: {}", r.text().await?).into());
    }
    let r = post("sha256=00".into(), inbound).await?;
    println!("webhook POST: {} (forged signature)", r.status().as_u16());
    if r.status().as_u16() != 401 {
        return Err("a forged signature was not refused".into());
    }

    // Its effects: the bots' queue and the service window.
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let got = sqs
        .receive_message()
        .queue_url(output(&outputs, "InboundQueueUrl")?)
        .wait_time_seconds(5)
        .send()
        .await?;
    let first = got.messages.unwrap_or_default();
    let body = first
        .first()
        .and_then(|m| m.body.as_deref())
        .ok_or("no inbound event reached the bots' queue")?;
    let event: shared::ingest::InboundEvent = serde_json::from_str(body)?;
    println!(
        "bots' queue : inbound {} message, window closes in {} s",
        event.message.content.type_name(),
        event.window_closes_at.unwrap_or(now) - now
    );
    let sessions = DynamoSessionStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        output(&outputs, "SessionsTableName")?,
    );
    let key = UserKey {
        phone_number_id: "106540352242922".into(),
        user: "US.13491208655302741918".into(),
    };
    let open = sessions.window(&key).await?.csw_open(now);
    println!("sessions    : window open = {open} (written by the webhook function)");
    if !open {
        return Err("the webhook did not open the window".into());
    }

    // The send contract: every sample job validates and is enqueued.
    let queue = SqsQueue::new(sqs, output(&outputs, "SendQueueUrl")?);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/jobs/valid");
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in &names {
        let job = SendJob::parse(&std::fs::read_to_string(p)?)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        queue.send(&serde_json::to_string(&job)?, None).await?;
    }
    println!(
        "send queue  : {} sample jobs validated against the contract and enqueued",
        names.len()
    );

    let dedupe = DynamoDedupeStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        output(&outputs, "DedupeTableName")?,
    );
    let first = dedupe.claim(&format!("smoke#{now}"), now, now + 60).await?;
    let second = dedupe.claim(&format!("smoke#{now}"), now, now + 60).await?;
    println!("dedupe      : first claim {first:?}, second {second:?}");
    if first != Claim::First || second != Claim::Duplicate {
        return Err("dedupe did not hold".into());
    }
    Ok(())
}
