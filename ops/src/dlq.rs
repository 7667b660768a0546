//! Dead-letter queues for operators: what is on one and why, one message in full, and moving
//! messages back to their source queue by reason.
//!
//! Reading a queue receives its messages under a visibility timeout and gives them back
//! (visibility 0) when done, so a `list` leaves the queue as it found it. The sender's own dead
//! letters carry `reason` and `detail` message attributes; a message SQS moved after the
//! queue's `maxReceiveCount` has none and reads as reason [`REDRIVE_POLICY`].
//!
//! A redrive sends each chosen message to the target, then deletes it from the DLQ; a message
//! is moved at most once per run (by message id, however often SQS hands it out). A crash
//! between the send and the delete leaves the message on the DLQ as well: the sender's
//! idempotency record makes a job redriven twice one send.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
};
use serde::Serialize;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The reason of a message SQS dead-lettered itself (no `reason` attribute).
pub const REDRIVE_POLICY: &str = "max_receives_exceeded";

/// How long a read holds the messages it has seen (seconds): longer than any listing takes,
/// so SQS does not hand the same message out twice within it.
const HOLD_S: i32 = 300;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub reason: String,
    pub detail: String,
    /// When it was sent to the DLQ (epoch ms).
    pub sent_at_ms: i64,
    pub receives: u32,
    pub body: String,
    #[serde(skip)]
    receipt: String,
}

/// A queue URL from a URL or a queue name.
pub async fn queue_url(sqs: &Client, queue: &str) -> Result<String, Error> {
    if queue.starts_with("http://") || queue.starts_with("https://") {
        return Ok(queue.to_owned());
    }
    let out = sqs.get_queue_url().queue_name(queue).send().await?;
    out.queue_url
        .ok_or_else(|| format!("no queue named {queue}").into())
}

/// Every message on the queue (up to `max`), held for [`HOLD_S`]; give them back with
/// [`release`].
pub async fn read(sqs: &Client, url: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut empty = 0;
    while out.len() < max && empty < 2 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_S)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = got.messages.unwrap_or_default();
        // An empty answer from a short poll may come from a subset of SQS's hosts: ask twice.
        empty = if messages.is_empty() { empty + 1 } else { 0 };
        for m in messages {
            let id = m.message_id.clone().unwrap_or_default();
            if !seen.insert(id.clone()) {
                continue;
            }
            let attr = |name: &str| {
                m.message_attributes
                    .as_ref()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value.clone())
            };
            let system = |name: MessageSystemAttributeName| {
                m.attributes
                    .as_ref()
                    .and_then(|a| a.get(&name))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            out.push(DeadLetter {
                message_id: id,
                reason: attr("reason").unwrap_or_else(|| REDRIVE_POLICY.into()),
                detail: attr("detail").unwrap_or_default(),
                sent_at_ms: system(MessageSystemAttributeName::SentTimestamp),
                receives: u32::try_from(system(
                    MessageSystemAttributeName::ApproximateReceiveCount,
                ))
                .unwrap_or(0),
                body: m.body.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// Makes held messages visible again at once.
pub async fn release(sqs: &Client, url: &str, letters: &[DeadLetter]) -> Result<(), Error> {
    for chunk in letters.chunks(10) {
        let mut req = sqs.change_message_visibility_batch().queue_url(url);
        for (i, l) in chunk.iter().enumerate() {
            req = req.entries(
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&l.receipt)
                    .visibility_timeout(0)
                    .build()?,
            );
        }
        req.send().await?;
    }
    Ok(())
}

/// Counts by reason.
pub fn by_reason(letters: &[DeadLetter]) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for l in letters {
        *out.entry(l.reason.as_str()).or_default() += 1;
    }
    out
}

/// The queue a DLQ belongs to, when exactly one queue dead-letters into it: the queue whose
/// redrive policy targets the DLQ's ARN. (Found by reading the queues' policies, as SQS's
/// `ListDeadLetterSourceQueues` does, which ministack does not implement.)
pub async fn source_queue(sqs: &Client, dlq_url: &str) -> Result<String, Error> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attribute = |url: String, name: QueueAttributeName| async move {
        let out = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(name.clone())
            .send()
            .await?;
        Ok::<_, Error>(out.attributes.and_then(|mut a| a.remove(&name)))
    };
    let arn = attribute(dlq_url.to_owned(), QueueAttributeName::QueueArn)
        .await?
        .ok_or("the queue has no ARN")?;
    let mut sources = Vec::new();
    let mut token = None;
    loop {
        let page = sqs
            .list_queues()
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await?;
        for url in page.queue_urls.unwrap_or_default() {
            let Some(policy) = attribute(url.clone(), QueueAttributeName::RedrivePolicy).await?
            else {
                continue;
            };
            let policy: serde_json::Value = serde_json::from_str(&policy).unwrap_or_default();
            if policy["deadLetterTargetArn"] == arn.as_str() {
                sources.push(url);
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    match sources.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("no queue names this one as its dead-letter queue: give --to".into()),
        _ => Err("several queues dead-letter into this one: give --to".into()),
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Redriven {
    pub moved: usize,
    /// Messages left on the DLQ because their reason was not chosen.
    pub kept: usize,
    pub target: String,
}

/// Moves the letters whose reason is in `reasons` (all of them when `None`) to `target`.
/// `progress` is called after each message moved.
pub async fn redrive(
    sqs: &Client,
    dlq_url: &str,
    target: &str,
    letters: Vec<DeadLetter>,
    reasons: Option<&[String]>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Redriven, Error> {
    let (chosen, kept): (Vec<_>, Vec<_>) = letters
        .into_iter()
        .partition(|l| reasons.is_none_or(|r| r.contains(&l.reason)));
    release(sqs, dlq_url, &kept).await?;
    let mut done = Redriven {
        kept: kept.len(),
        target: target.to_owned(),
        ..Redriven::default()
    };
    for l in &chosen {
        let from = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&l.message_id)
            .build()?;
        sqs.send_message()
            .queue_url(target)
            .message_body(&l.body)
            .message_attributes("redriven_from", from)
            .send()
            .await?;
        sqs.delete_message()
            .queue_url(dlq_url)
            .receipt_handle(&l.receipt)
            .send()
            .await?;
        done.moved += 1;
        progress(done.moved, chosen.len());
    }
    Ok(done)
}

/// The table `dlq list` prints.
pub fn table(letters: &[DeadLetter]) -> String {
    let mut out = format!(
        "{:<38} {:<28} {:>8} {:<20} {}\n",
        "message_id", "reason", "receives", "sent", "detail"
    );
    for l in letters {
        let sent = chrono::DateTime::from_timestamp_millis(l.sent_at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let detail: String = l.detail.chars().take(80).collect();
        out.push_str(&format!(
            "{:<38} {:<28} {:>8} {:<20} {}\n",
            l.message_id, l.reason, l.receives, sent, detail
        ));
    }
    for (reason, n) in by_reason(letters) {
        out.push_str(&format!("{n} × {reason}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str, reason: &str) -> DeadLetter {
        DeadLetter {
            message_id: id.into(),
            reason: reason.into(),
            detail: "d".into(),
            sent_at_ms: 1_795_435_200_000,
            receives: 1,
            body: "{}".into(),
            receipt: String::new(),
        }
    }

    #[test]
    fn the_table_counts_by_reason_and_never_prints_a_body() {
        let mut secret = letter("1", "invalid_job");
        secret.body = r#"{"to":"+447700900123","text":"hello"}"#.into();
        let t = table(&[
            secret,
            letter("2", "invalid_job"),
            letter("3", REDRIVE_POLICY),
        ]);
        assert!(t.contains("2 × invalid_job") && t.contains("1 × max_receives_exceeded"));
        assert!(!t.contains("447700900123") && !t.contains("hello"));
        assert!(t.contains("2026-11-"), "{t}");
    }
}
