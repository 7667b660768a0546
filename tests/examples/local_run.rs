//! The local run: one real conversation through the stack `scripts/local-up` deployed into
//! ministack, with the Cloud API simulator playing Meta. Every function runs as a real Lambda
//! process in ministack: the webhook behind its function URL, the sender on the send queue, the
//! event processor on the events queue, the template submitter and the usage aggregator when
//! invoked.
//!
//! 1. the operator's first step after a deploy: the secret's app secret and access token;
//! 2. Meta's verification GET, and a forged POST refused;
//! 3. a utility template submitted through the template submitter, approved by the simulator's
//!    review, its status webhook landing in the templates table;
//! 4. a customer writes: the simulator signs and posts the webhook, the webhook function opens
//!    the 24 h window and hands the message to the bots' queue;
//! 5. a sample bot reads it and answers with two send jobs (a free-form reply and the template);
//! 6. the sender delivers both through the simulator; one outcome each on the outcomes queue;
//! 7. the simulator's sent, delivered and read statuses come back through the webhook;
//! 8. the fallback path: a customer message on the events queue, as the webhook leaves what it
//!    could not process inline (DynamoDB throttling, say), reaches the bots' queue through the
//!    event processor, a real Lambda process on its SQS event source;
//! 9. the usage aggregator counts them into the usage table, priced from the example rate card;
//! 10. media both ways: the customer sends a photo, which the media fetcher keeps in the media
//!     bucket before the bots get the message (with the object's key); the bot answers with an
//!     image from its own bucket, which the sender uploads to Meta once and sends by id.
//!
//! It prints progress, then a summary. It never prints a secret, a phone number or message text.
//! Settings: `STACK_OUTPUTS` (the stack outputs as JSON), `SIM_URL`, `SIM_APP_SECRET`,
//! `SIM_ACCESS_TOKEN`, `WEBHOOK_URL`, `MEDIA_SOURCE_BUCKET` (the bucket the stack's sender may
//! read, `MediaSourceBuckets`), and `COUNTS_URL` when the AWS requests are counted (set by
//! `scripts/local-up`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use finance::rates::{RateCard, parse_csv};
use finance::report::{self, Dimension, Format};
use finance::store::{RateTable, UsageTable};
use finance::{Period, UsageRow};
use serde_json::{Value, json};
use whatsapp_aws::{
    CachedSecrets, DynamoMessageStore, DynamoSessionStore, DynamoTemplateStore,
    SecretsManagerFetcher, aws_sdk_config,
};
use whatsapp_core::job::SendJob;
use whatsapp_core::ports::{MessageStore, SecretSource, SessionStore, TemplateStore, UserKey};
use whatsapp_core::webhook::TemplateStatus;

type Error = Box<dyn std::error::Error>;

const STEPS: usize = 10;
const WABA: &str = "102290129340398";
const PHONE: &str = "106540352242922";

fn step(n: usize, what: &str) {
    println!("[{n}/{STEPS}] {what}");
}

fn detail(what: impl std::fmt::Display) {
    println!("      {what}");
}

/// Waits for a message on `url` whose body `pick` accepts (within 60 s), deleting every
/// message it reads.
async fn receive_until<T>(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    what: &str,
    pick: impl Fn(&str) -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let pick = &pick;
    wait_for(what, 60, || async move {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        let mut found = None;
        for m in got.messages.unwrap_or_default() {
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await?;
            }
            if let Some(t) = pick(m.body().unwrap_or_default())? {
                found = Some(t);
            }
        }
        Ok(found)
    })
    .await
}

/// Waits for the bots' queue to deliver `user_id`'s text message `text`, deleting what it reads.
async fn bot_receives(
    sqs: &aws_sdk_sqs::Client,
    inbound_url: &str,
    user_id: &str,
    text: &str,
) -> Result<whatsapp_core::ingest::InboundEvent, Error> {
    receive_until(sqs, inbound_url, "the inbound event", |body| {
        let e: whatsapp_core::ingest::InboundEvent = serde_json::from_str(body)?;
        let same_text = matches!(&e.message.content,
            whatsapp_core::webhook::MessageContent::Text(t) if t.body == text);
        Ok((e.user.user_id.as_deref() == Some(user_id) && same_text).then_some(e))
    })
    .await
}

fn output<'a>(outputs: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str, Error> {
    outputs
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("stack output {key} missing").into())
}

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// Polls `check` every 250 ms until it yields a value, or fails after `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {secs} s waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Invokes a deployed function and returns its JSON answer.
async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    payload: Value,
) -> Result<Value, Error> {
    let out = lambda
        .invoke()
        .function_name(name)
        .payload(Blob::new(serde_json::to_vec(&payload)?))
        .send()
        .await?;
    let body = out.payload.map(|p| p.into_inner()).unwrap_or_default();
    if let Some(e) = out.function_error {
        return Err(format!("{name} failed ({e}): {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// A function URL request (payload 2.0) as Lambda hands it to the template submitter.
fn function_url_event(method: &str, path: &str, body: &Value) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "local-run"}, "routeKey": "$default",
            "stage": "$default", "requestId": "local-run", "timeEpoch": now() * 1000,
            "accountId": "000000000000", "apiId": "local", "domainName": "local", "domainPrefix": "local",
            "time": "now"},
        "body": body.to_string(), "isBase64Encoded": false
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let outputs: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(env("STACK_OUTPUTS")?)?)?;
    let sim = env("SIM_URL")?;
    let app_secret = env("SIM_APP_SECRET")?;
    let access_token = env("SIM_ACCESS_TOKEN")?;
    let aws = aws_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let lambda = aws_sdk_lambda::Client::new(&aws);
    let http = reqwest::Client::new();
    let run = now();
    // The deployed functions reach ministack through scripts/local-up's counting proxy, so
    // every AWS request they make is counted; COUNTS_URL reads the counts.
    let counts_url = std::env::var("COUNTS_URL").ok();
    let snapshot = || async {
        match &counts_url {
            Some(u) => Ok::<_, Error>(
                http.get(u)
                    .send()
                    .await?
                    .json::<BTreeMap<String, usize>>()
                    .await?,
            ),
            None => Ok(BTreeMap::new()),
        }
    };
    // Webhook POSTs the simulator made and got answers to, once there are at least `n`.
    let (http_ref, sim_ref) = (&http, &sim);
    let deliveries = |n: usize| async move {
        let (http, sim) = (http_ref, sim_ref);
        wait_for("the webhook POSTs to be answered", 30, || async move {
            let d: Vec<Value> = http
                .get(format!("{sim}/_sim/deliveries"))
                .send()
                .await?
                .json()
                .await?;
            Ok((d.len() >= n && d.iter().all(|d| !d["status"].is_null())).then_some(d.len()))
        })
        .await
    };

    step(
        1,
        "secret: the app secret and access token an operator sets after the first deploy",
    );
    let secret_id = output(&outputs, "WhatsAppSecretArn")?;
    let sm = aws_sdk_secretsmanager::Client::new(&aws);
    let secrets = CachedSecrets::new(
        SecretsManagerFetcher::new(sm.clone(), secret_id),
        Duration::from_secs(300),
    );
    let verify_token = secrets.secrets().await?.verify_token.clone();
    sm.put_secret_value()
        .secret_id(secret_id)
        .secret_string(
            json!({"app_secret": app_secret, "verify_token": verify_token, "access_token": access_token})
                .to_string(),
        )
        .send()
        .await?;
    detail(format!(
        "generated verify_token of {} characters kept",
        verify_token.len()
    ));

    step(
        2,
        "webhook: Meta's verification GET and a forged POST, through its function URL",
    );
    // The webhook's function URL as ministack serves it (scripts/local-up derives it from the
    // WebhookUrl output).
    let url = env("WEBHOOK_URL")?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.verify_token", &verify_token)
        .append_pair("hub.challenge", "4242")
        .finish();
    let r = http.get(format!("{url}?{query}")).send().await?;
    let (status, body) = (r.status().as_u16(), r.text().await?);
    detail(format!(
        "GET {status}, challenge echoed: {}",
        body == "4242"
    ));
    if (status, body.as_str()) != (200, "4242") {
        return Err("the verification GET failed".into());
    }
    let r = http
        .post(&url)
        .header("x-hub-signature-256", "sha256=00")
        .header("content-type", "application/json")
        .body(r#"{"object":"whatsapp_business_account","entry":[]}"#)
        .send()
        .await?;
    detail(format!("forged POST {}", r.status().as_u16()));
    if r.status().as_u16() != 401 {
        return Err("a forged signature was not refused".into());
    }

    step(
        3,
        "template: order_update submitted through the template submitter, reviewed by Meta",
    );
    let definition = json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped.",
                        "example": {"body_text": [["Ann", "A-1001"]]}}]});
    let answer = invoke(
        &lambda,
        output(&outputs, "TemplateSubmitterFunctionName")?,
        function_url_event("POST", &format!("/templates/{WABA}"), &definition),
    )
    .await?;
    let code = answer["statusCode"].as_u64().unwrap_or(0);
    detail(format!("submitter answered {code}"));
    if !(200..300).contains(&code) {
        return Err(format!("template refused: {}", answer["body"]).into());
    }
    let templates = DynamoTemplateStore::new(ddb.clone(), output(&outputs, "TemplatesTableName")?);
    wait_for("the template's approval webhook", 30, || async {
        let t = templates.template(WABA, "order_update", "en_US").await?;
        Ok(t.and_then(|t| t.status)
            .filter(|s| *s == TemplateStatus::Approved))
    })
    .await?;
    detail("APPROVED (status webhook → webhook function → templates table)");

    let posts_0 = deliveries(0).await?;
    let calls_0 = snapshot().await?;
    step(
        4,
        "a customer writes; the webhook opens the 24 h window and feeds the bots' queue",
    );
    // A new customer each run, so that the run can be repeated against the same stack.
    let wa_id = format!("55119{:08}", run % 100_000_000);
    let user: Value = http
        .post(format!("{sim}/_sim/users"))
        .json(&json!({"wa_id": wa_id}))
        .send()
        .await?
        .json()
        .await?;
    let user_id = user["user_id"].as_str().ok_or("no user id")?.to_owned();
    let inbound_url = output(&outputs, "InboundQueueUrl")?;
    // The customer writes; returns the event the bots receive for that text.
    let (sqs_ref, user_ref) = (&sqs, &user_id);
    let writes = |text: &'static str| async move {
        let (sqs, user_id) = (sqs_ref, user_ref);
        http_ref
            .post(format!("{sim_ref}/_sim/users/{user_id}/messages"))
            .json(&json!({"phone_number_id": PHONE,
                          "message": {"type": "text", "text": {"body": text}}}))
            .send()
            .await?
            .error_for_status()?;
        bot_receives(sqs, inbound_url, user_id, text).await
    };
    let event = writes("Hi, where is my order?").await?;
    let closes = event.window_closes_at.unwrap_or_default();
    detail(format!(
        "inbound {} message on the bots' queue; window closes in {} s",
        event.message.content.type_name(),
        closes - now()
    ));
    let posts_first = deliveries(posts_0 + 1).await?;
    let calls_first = snapshot().await?;
    // A second message: the common case, a customer already known (their phone number is
    // already an alias of their business-scoped id, so nothing to write for it).
    let event = writes("It is order A-1001").await?;
    let closes = event.window_closes_at.unwrap_or_default();
    detail(format!(
        "a second message on the bots' queue; window extended, closes in {} s",
        closes - now()
    ));

    let posts_1 = deliveries(posts_first + 1).await?;
    let calls_1 = snapshot().await?;
    step(
        5,
        "the sample bot answers: a free-form reply and the order_update template",
    );
    let to = json!({"user_id": user_id});
    let jobs = [
        json!({"version": 1, "idempotency_key": format!("local-{run}-reply"), "phone_number_id": PHONE,
               "to": to, "message": {"type": "text", "text": {"body": "Let me check that for you."}},
               "correlation": {"conversation": "local-run"}}),
        json!({"version": 1, "idempotency_key": format!("local-{run}-update"), "phone_number_id": PHONE,
               "to": to, "message": {"type": "template", "template": {"name": "order_update",
                   "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [
                   {"type": "text", "text": "Ann"}, {"type": "text", "text": "A-1001"}]}]}},
               "correlation": {"conversation": "local-run"}}),
    ];
    let send_url = output(&outputs, "SendQueueUrl")?;
    for job in &jobs {
        // What a producer does: validate against the contract, then enqueue.
        SendJob::parse(&job.to_string())?;
        sqs.send_message()
            .queue_url(send_url)
            .message_body(job.to_string())
            .send()
            .await?;
    }
    detail(format!("{} jobs on the send queue", jobs.len()));

    step(
        6,
        "the sender delivers them through the simulator; outcomes on the outcomes queue",
    );
    let outcomes_url = output(&outputs, "OutcomesQueueUrl")?;
    let mut outcomes: BTreeMap<String, Value> = BTreeMap::new();
    let prefix = format!("local-{run}-");
    let deadline = Instant::now() + Duration::from_secs(60);
    while outcomes.len() < jobs.len() {
        if Instant::now() > deadline {
            return Err("timed out after 60 s waiting for both outcomes".into());
        }
        let got = sqs
            .receive_message()
            .queue_url(outcomes_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for m in got.messages.unwrap_or_default() {
            let o: Value = serde_json::from_str(m.body().unwrap_or_default())?;
            if let Some(k) = o["idempotency_key"].as_str()
                && k.starts_with(&prefix)
            {
                outcomes.insert(k.to_owned(), o);
            }
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(outcomes_url)
                    .receipt_handle(h)
                    .send()
                    .await?;
            }
        }
    }
    for (k, o) in &outcomes {
        detail(format!(
            "{}: {}{}",
            k.trim_start_matches(&format!("local-{run}-")),
            o["outcome"].as_str().unwrap_or("?"),
            o["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    let wamids: Vec<String> = outcomes
        .values()
        .filter_map(|o| o["wamid"].as_str().map(str::to_owned))
        .collect();
    if wamids.len() != jobs.len() {
        return Err("not every job was accepted by Meta".into());
    }

    step(
        7,
        "statuses come back: sent, delivered, read, with Meta's pricing",
    );
    let messages = DynamoMessageStore::new(ddb.clone(), output(&outputs, "MessagesTableName")?);
    let records = wait_for("the read statuses", 60, || async {
        let mut out = Vec::new();
        for w in &wamids {
            match messages.message(w).await? {
                Some(m)
                    if m.status.as_ref().map(|s| s.as_str()) == Some("read")
                        && m.priced_at.is_some() =>
                {
                    out.push((w.clone(), m))
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    })
    .await?;
    for (w, m) in &records {
        detail(format!(
            "…{}: {} · {} / {}",
            &w[w.len().saturating_sub(8)..],
            m.status.as_ref().map_or("?", |s| s.as_str()),
            m.pricing_category.as_deref().unwrap_or("?"),
            m.pricing_type.as_deref().unwrap_or("?")
        ));
    }

    let posts_2 = deliveries(posts_1 + 3 * jobs.len()).await?;
    let calls_2 = snapshot().await?;
    step(
        8,
        "fallback: an item the webhook could not process inline, through the event processor",
    );
    // What the webhook enqueues when an item fails inline: an envelope holding that one item.
    let fallback_text = "Thanks, that is all";
    let envelope = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA,
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": event.display_phone_number, "phone_number_id": PHONE},
            "contacts": [{"profile": {"name": "Local run"}, "wa_id": wa_id, "user_id": user_id}],
            "messages": [{"from": wa_id, "id": format!("wamid.local-{run}-fallback"),
                "timestamp": now().to_string(), "type": "text", "text": {"body": fallback_text}}]}}]}]});
    sqs.send_message()
        .queue_url(output(&outputs, "EventsQueueUrl")?)
        .message_body(envelope.to_string())
        .send()
        .await?;
    let fallback = bot_receives(&sqs, inbound_url, &user_id, fallback_text).await?;
    detail(format!(
        "queued item processed: the message reached the bots' queue; window closes in {} s",
        fallback.window_closes_at.unwrap_or_default() - now()
    ));

    step(
        9,
        "usage: the usage aggregator counts them; priced from the example rate card",
    );
    let stats = invoke(
        &lambda,
        output(&outputs, "UsageAggregatorFunctionName")?,
        json!({"lookback_days": 1}),
    )
    .await?;
    detail(format!(
        "aggregator read {} priced messages, wrote {} counters",
        stats["messages"], stats["rows_written"]
    ));
    let rates = RateTable::new(ddb.clone(), output(&outputs, "RateCardTableName")?);
    let card_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../finance/rates.example.csv");
    for r in parse_csv(std::fs::File::open(card_file)?)? {
        rates.import(&r, "rates.example.csv", now()).await?;
    }
    let usage = UsageTable::new(ddb.clone(), output(&outputs, "UsageTableName")?);
    let today = whatsapp_core::usage::usage_day(now());
    let period = Period::day(today);
    let rows: Vec<UsageRow> = usage
        .days(&period)
        .await?
        .into_iter()
        .filter(|r| r.key.phone_number_id == PHONE)
        .collect();
    let card = RateCard::new(rates.load().await?);
    let usage_report = report::build(
        period,
        &rows,
        &[Dimension::Category, Dimension::PricingType],
        Some(&card),
    )?;
    if usage_report.total.counts.messages < jobs.len() as u64 {
        return Err("the usage table does not count this run's messages".into());
    }

    step(
        10,
        "media both ways: a customer's photo kept in S3 for the bots; an image sent from S3",
    );
    let photo: Value = http
        .post(format!("{sim}/_sim/users/{user_id}/messages"))
        .json(
            &json!({"phone_number_id": PHONE, "message": {"type": "image", "image": {}},
                      "media": {"mime_type": "image/png", "size_bytes": 48_000}}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let photo_id = photo["id"].as_str().ok_or("no wamid")?.to_owned();
    let photo_event = receive_until(&sqs, inbound_url, "the photo's inbound event", |body| {
        let e: whatsapp_core::ingest::InboundEvent = serde_json::from_str(body)?;
        Ok((e.message.id == photo_id).then_some(e))
    })
    .await?;
    let kept = photo_event.media.as_ref().ok_or_else(|| {
        format!(
            "the photo came without its file: {:?}",
            photo_event.media_error
        )
    })?;
    let s3 = whatsapp_aws::s3_client(&aws, true);
    let stored = s3
        .head_object()
        .bucket(&kept.bucket)
        .key(&kept.key)
        .send()
        .await?;
    if stored.content_length != Some(48_000) {
        return Err("the kept photo has the wrong size".into());
    }
    detail(format!(
        "inbound photo kept at s3://{}/{} ({} bytes, {}, sha256 {}…); the bots' event names it",
        kept.bucket,
        kept.key,
        kept.size_bytes,
        kept.mime_type,
        &kept.sha256[..12]
    ));
    // The bot's own bucket (MediaSourceBuckets), holding an image it sends.
    let outbound_bucket = env("MEDIA_SOURCE_BUCKET")?;
    let _ = s3.create_bucket().bucket(&outbound_bucket).send().await;
    let mut picture = b"\x89PNG\r\n\x1a\n".to_vec();
    picture.extend((0..200_000u32).map(|i| (i % 251) as u8));
    let picture_key = format!("images/local-{run}.png");
    s3.put_object()
        .bucket(&outbound_bucket)
        .key(&picture_key)
        .content_type("image/png")
        .body(picture.clone().into())
        .send()
        .await?;
    let uploads_before = uploads(&http, &sim).await?;
    let key = format!("local-{run}-picture");
    let job = json!({"version": 1, "idempotency_key": key, "phone_number_id": PHONE, "to": to,
        "message": {"type": "image", "image": {"s3": {"bucket": outbound_bucket, "key": picture_key},
                    "caption": "The one you asked about"}},
        "correlation": {"conversation": "local-run"}});
    SendJob::parse(&job.to_string())?;
    sqs.send_message()
        .queue_url(send_url)
        .message_body(job.to_string())
        .send()
        .await?;
    let sent = receive_until(&sqs, outcomes_url, "the image's outcome", |body| {
        let o: Value = serde_json::from_str(body)?;
        Ok((o["idempotency_key"] == key.as_str()).then_some(o))
    })
    .await?;
    if sent["outcome"] != "accepted" {
        return Err(format!("the image was not sent: {sent}").into());
    }
    let uploaded = uploads(&http, &sim).await? - uploads_before;
    detail(format!(
        "outbound image s3://{outbound_bucket}/{picture_key} ({} bytes): uploaded to Meta {uploaded} time(s), sent by id: {}",
        picture.len(),
        sent["outcome"].as_str().unwrap_or("?")
    ));
    if uploaded != 1 {
        return Err("the image was not uploaded exactly once".into());
    }

    let sessions = DynamoSessionStore::new(ddb, output(&outputs, "SessionsTableName")?);
    let window = sessions
        .window(&UserKey {
            phone_number_id: PHONE.into(),
            user: user_id.clone(),
        })
        .await?;
    println!();
    println!("== summary ==");
    println!(
        "session window : open = {}, closes at {} (in {} s)",
        window.csw_open(now()),
        chrono::DateTime::from_timestamp(closes, 0).map_or_else(String::new, |t| t.to_rfc3339()),
        closes - now()
    );
    println!("messages       :");
    for ((k, o), (w, m)) in outcomes.iter().zip(&records) {
        println!(
            "  {:<7} outcome {:<8} wamid …{}  status {:<5} pricing {} / {}",
            k.trim_start_matches(&format!("local-{run}-")),
            o["outcome"].as_str().unwrap_or("?"),
            &w[w.len().saturating_sub(8)..],
            m.status.as_ref().map_or("?", |s| s.as_str()),
            m.pricing_category.as_deref().unwrap_or("?"),
            m.pricing_type.as_deref().unwrap_or("?")
        );
    }
    println!("usage table    : today, this number, by category (all runs against this stack)");
    for line in usage_report.render(Format::Table).lines() {
        println!("  {line}");
    }
    if counts_url.is_some() {
        let first = delta(&calls_0, &calls_first);
        let second = delta(&calls_first, &calls_1);
        let outbound = delta(&calls_1, &calls_2);
        println!(
            "AWS requests   : made by the functions, counted by the proxy (cold starts included)"
        );
        print_calls(
            &format!(
                "a new customer's first message ({} webhook POST)",
                posts_first - posts_0
            ),
            &first,
            1.0,
        );
        print_calls(
            &format!(
                "their second message ({} webhook POST)",
                posts_1 - posts_first
            ),
            &second,
            1.0,
        );
        print_calls(
            &format!(
                "{} outbound messages ({} status webhook POSTs)",
                jobs.len(),
                posts_2 - posts_1
            ),
            &outbound,
            jobs.len() as f64,
        );
    }
    Ok(())
}

/// How many media uploads (`POST /{phone}/media`) the simulator has answered with 200.
async fn uploads(http: &reqwest::Client, sim: &str) -> Result<usize, Error> {
    let requests: Vec<Value> = http
        .get(format!("{sim}/_sim/requests"))
        .send()
        .await?
        .json()
        .await?;
    Ok(requests
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().is_some_and(|p| p.ends_with("/media"))
                && r["status"] == 200
        })
        .count())
}

/// Calls made between two snapshots, by operation.
fn delta(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn print_calls(what: &str, calls: &BTreeMap<String, usize>, per: f64) {
    let total: usize = calls.values().sum();
    println!(
        "  {what}: {total} requests, {:.1} per message",
        total as f64 / per
    );
    for (op, n) in calls {
        println!("    {n:>3}  {op}");
    }
}
