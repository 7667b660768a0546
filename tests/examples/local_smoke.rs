//! Exercises a stack deployed into the local ministack through the shared adapters: reads the
//! secret, validates and enqueues the sample send jobs, opens a service window and claims a
//! dedupe key. Run by `scripts/local-up` with the stack outputs in `STACK_OUTPUTS`.
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

#[tokio::main]
async fn main() -> Result<(), Error> {
    let path =
        std::env::var("STACK_OUTPUTS").map_err(|_| "set STACK_OUTPUTS to the outputs JSON")?;
    let outputs: BTreeMap<String, String> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let aws = aws_sdk_config().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;

    let secrets = CachedSecrets::new(
        SecretsManagerFetcher::new(
            aws_sdk_secretsmanager::Client::new(&aws),
            output(&outputs, "WhatsAppSecretArn")?,
        ),
        Duration::from_secs(300),
    );
    let s = secrets.secrets().await?;
    println!(
        "secret      : readable; generated verify_token of {} characters",
        s.verify_token.len()
    );

    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        output(&outputs, "SendQueueUrl")?,
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/jobs/valid");
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut enqueued = 0;
    for p in &names {
        let body = std::fs::read_to_string(p)?;
        let job = SendJob::parse(&body).map_err(|e| format!("{}: {e}", p.display()))?;
        queue.send(&serde_json::to_string(&job)?, None).await?;
        enqueued += 1;
    }
    println!("send queue  : {enqueued} sample jobs validated against the contract and enqueued");

    let sessions = DynamoSessionStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        output(&outputs, "SessionsTableName")?,
    );
    let key = UserKey {
        phone_number_id: "106540352242922".into(),
        user: "US.13491208655302741918".into(),
    };
    let w = sessions.record_inbound(&key, now, false).await?;
    println!(
        "sessions    : window open = {}, closes in {} s",
        w.csw_open(now),
        w.csw_expires_at().unwrap_or(now) - now
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
