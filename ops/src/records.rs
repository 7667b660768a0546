//! The records operators ask about, read straight from the tables: one send job (its
//! idempotency record, verdict, checkpoint and message), each number's health and history, the
//! templates. Read-only; values are shown as stored, except a recipient's phone number, which
//! is masked.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value, json};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A DynamoDB item as JSON: numbers as numbers, string attributes holding JSON (a verdict, a
/// checkpoint) parsed, lists and maps recursively.
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    let mut out = Map::new();
    for k in keys {
        let v = attribute_json(&item[k]);
        out.insert(k.clone(), if k == "recipient" { mask(&v) } else { v });
    }
    Value::Object(out)
}

fn attribute_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
            _ => Value::String(s.clone()),
        },
        AttributeValue::N(n) => serde_json::from_str(n).unwrap_or_else(|_| json!(n)),
        AttributeValue::Bool(b) => json!(b),
        AttributeValue::L(l) => Value::Array(l.iter().map(attribute_json).collect()),
        AttributeValue::M(m) => item_json(m),
        AttributeValue::Ss(s) => json!(s),
        AttributeValue::Ns(n) => json!(n),
        AttributeValue::Null(_) => Value::Null,
        _ => json!("<binary>"),
    }
}

/// All but the last four characters replaced: enough to tell two recipients apart.
fn mask(v: &Value) -> Value {
    let Some(s) = v.as_str() else {
        return json!("<masked>");
    };
    let keep = s.chars().count().saturating_sub(4);
    json!(
        s.chars()
            .enumerate()
            .map(|(i, c)| if i < keep { '•' } else { c })
            .collect::<String>()
    )
}

async fn get(client: &Client, table: &str, pk: &str) -> Result<Option<Value>, Error> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.item.as_ref().map(item_json))
}

/// Where a job's records live.
pub struct JobTables<'a> {
    pub dedupe: &'a str,
    pub messages: &'a str,
}

/// One job: `None` when no idempotency record holds its key (never received, or expired).
pub async fn job(
    client: &Client,
    tables: &JobTables<'_>,
    phone_number_id: &str,
    idempotency_key: &str,
) -> Result<Option<Value>, Error> {
    let key = format!("send#{phone_number_id}#{idempotency_key}");
    let Some(record) = get(client, tables.dedupe, &key).await? else {
        return Ok(None);
    };
    let wamid = record["result"]["wamid"].as_str().map(str::to_owned);
    let message = match &wamid {
        Some(w) => get(client, tables.messages, w).await?,
        None => None,
    };
    let statuses = message.as_ref().map(statuses).unwrap_or_default();
    let outcome = &record["result"];
    let state = record["record_state"].as_str().unwrap_or("CLAIMED");
    Ok(Some(json!({
        "key": key,
        "state": state,
        "verdict": outcome.get("outcome"),
        "reason": outcome.get("reason"),
        "detail": outcome.get("detail"),
        "wamid": wamid,
        "in_progress_until_ms": record.get("in_progress_until"),
        "expires_at": record.get("expires_at"),
        // Why it waits: the deferral or back-off an in-progress holder left.
        "checkpoint": record.get("checkpoint"),
        "outcome": record.get("result"),
        // Every status the message had, with its time, in order.
        "statuses": statuses,
        "message": message,
    })))
}

/// The statuses a message item records (`at_sent`, `at_delivered`, …), in time order.
fn statuses(message: &Value) -> Vec<Value> {
    whatsapp_core::ports::status_times(|a| message.get(a)?.as_i64())
        .into_iter()
        .map(|(status, at)| json!({"status": status.as_str(), "at": at}))
        .collect()
}

/// Each number's stored health and limits, and its history of changes.
pub async fn numbers(
    client: &Client,
    control_table: &str,
    phone_number_ids: &[String],
) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for pn in phone_number_ids {
        let state = get(client, control_table, &format!("NUM#{pn}")).await?;
        let history = get(client, control_table, &format!("HISTORY#{pn}")).await?;
        out.push(json!({
            "phone_number_id": pn,
            "state": state,
            "history": history.and_then(|h| h.get("changes").cloned()).unwrap_or(json!([])),
        }));
    }
    Ok(out)
}

/// Every template of the table (of one account with `waba`), sorted by key.
pub async fn templates(
    client: &Client,
    table: &str,
    waba: Option<&str>,
) -> Result<Vec<Value>, Error> {
    let prefix = match waba {
        Some(w) => format!("TPL#{w}#"),
        None => "TPL#".to_owned(),
    };
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        out.extend(page.items().iter().map(item_json));
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| a["pk"].as_str().cmp(&b["pk"].as_str()));
    Ok(out)
}

/// One template by account, name and language.
pub async fn template(
    client: &Client,
    table: &str,
    waba: &str,
    name: &str,
    language: &str,
) -> Result<Option<Value>, Error> {
    get(client, table, &format!("TPL#{waba}#{name}#{language}")).await
}

/// `key: value` lines of an object, nested values as compact JSON: the table format.
pub fn lines(v: &Value) -> String {
    let mut out = String::new();
    if let Some(map) = v.as_object() {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in map {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            out.push_str(&format!("{k:<width$}  {shown}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_as_json_with_the_recipient_masked() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("wamid.1".into())),
            ("status_rank".to_owned(), AttributeValue::N("3".into())),
            (
                "recipient".to_owned(),
                AttributeValue::S("447700900123".into()),
            ),
            (
                "result".to_owned(),
                AttributeValue::S(r#"{"outcome":"accepted"}"#.into()),
            ),
        ]);
        let v = item_json(&item);
        assert_eq!(v["status_rank"], 3);
        assert_eq!(v["result"]["outcome"], "accepted");
        assert_eq!(v["recipient"], "••••••••0123");
        assert!(!v.to_string().contains("447700900"));
    }

    #[test]
    fn a_messages_statuses_read_in_time_order() {
        let message = json!({"msg_status": "read", "at_read": 30, "at_sent": 10,
                             "at_delivered": 20, "at_failed": null, "status_at": 30});
        assert_eq!(
            statuses(&message),
            [
                json!({"status": "sent", "at": 10}),
                json!({"status": "delivered", "at": 20}),
                json!({"status": "read", "at": 30}),
            ]
        );
        assert!(statuses(&json!({"msg_status": "sent"})).is_empty());
    }
}
