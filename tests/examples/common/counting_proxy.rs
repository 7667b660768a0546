//! A counting proxy in front of ministack, for the examples that measure AWS calls: every
//! request is forwarded unchanged and counted by operation (`X-Amz-Target`, or the query
//! protocol's `Action`). `GET /_counts` answers the counts so far as JSON. `GET /_calls` answers
//! who called what on which resource: the caller's SDK app id (`app/<id>` in its user agent,
//! from `AWS_SDK_UA_APP_ID`), the operation, and the tables, indexes, queues or secrets its JSON
//! body names, with counts: what `scripts/check_iam.py` checks against the template's policies.
//! `GET /_keys` answers the DynamoDB writes by partition key (the hot-key report); `GET /_units`
//! the capacity units each table consumed (the proxy asks DynamoDB for them on every request).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// AWS calls by operation, by caller, operation and resource, DynamoDB writes by the partition
/// key they land on, the writes whose condition failed by key, and capacity units by table.
#[derive(Default)]
pub struct Counts(
    Mutex<BTreeMap<String, usize>>,
    Mutex<BTreeMap<(String, String, String), usize>>,
    Mutex<BTreeMap<String, usize>>,
    Mutex<BTreeMap<String, usize>>,
    Mutex<BTreeMap<String, Units>>,
);

/// DynamoDB capacity units one table consumed, as DynamoDB reports them
/// (`ReturnConsumedCapacity: INDEXES`, which the proxy asks for on every request), plus the
/// writes that failed (a condition, a cancelled transaction), which DynamoDB charges but does
/// not report: 1 write unit per item (items here are under 1 KB), 2 in a transaction.
#[derive(Debug, Default, Clone, Copy)]
pub struct Units {
    pub read: f64,
    pub write: f64,
    /// Of `write`: the global secondary indexes' share.
    pub index_write: f64,
    /// Of `write`: the failed writes' estimate.
    pub failed_write: f64,
}

impl Counts {
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    /// DynamoDB writes by partition key: `<table> <pk>` for an item (a transaction's and a
    /// batch's items each count), and `<table>/index/<index> <value>` for the index entries an
    /// update writes (`usage_pk` of `by_usage_day`, `callback_unpriced` of `by_callback`).
    pub fn key_writes(&self) -> BTreeMap<String, usize> {
        self.2.lock().unwrap().clone()
    }

    /// The writes whose condition failed (or whose transaction was cancelled), by key as in
    /// [`Counts::key_writes`]: the retries of contended counters.
    #[allow(dead_code)] // read by send-load, not by every example that runs the proxy
    pub fn failed_writes(&self) -> BTreeMap<String, usize> {
        self.3.lock().unwrap().clone()
    }

    /// Forgets everything counted so far (a run's warm-up is not its cost).
    #[allow(dead_code)] // used by send-load, not by every example that runs the proxy
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
        self.1.lock().unwrap().clear();
        self.2.lock().unwrap().clear();
        self.3.lock().unwrap().clear();
        self.4.lock().unwrap().clear();
    }

    /// Capacity units by table.
    pub fn units(&self) -> BTreeMap<String, Units> {
        self.4.lock().unwrap().clone()
    }

    /// Adds what one DynamoDB answer says it consumed (or, for a failed write, what it is
    /// charged).
    fn record_units(&self, op: &str, status: StatusCode, answer: &[u8], keys: &[String]) {
        use serde_json::Value;
        let name = op.rsplit('.').next().unwrap_or(op);
        let read = matches!(
            name,
            "GetItem" | "BatchGetItem" | "Query" | "Scan" | "TransactGetItems"
        );
        let mut units = self.4.lock().unwrap();
        if !status.is_success() {
            if !read {
                let each = if name == "TransactWriteItems" {
                    2.0
                } else {
                    1.0
                };
                let mut failed = self.3.lock().unwrap();
                for k in keys.iter().filter(|k| !k.contains("/index/")) {
                    let table = k.split_once(' ').map_or(k.as_str(), |(t, _)| t);
                    let u = units.entry(table.to_owned()).or_default();
                    u.write += each;
                    u.failed_write += each;
                    *failed.entry(k.clone()).or_default() += 1;
                }
            }
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(answer) else {
            return;
        };
        let entries: Vec<&Value> = match v.get("ConsumedCapacity") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => Vec::new(),
        };
        for e in entries {
            let table = e.get("TableName").and_then(Value::as_str).unwrap_or("?");
            let total = e
                .get("CapacityUnits")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let index: f64 = e
                .get("GlobalSecondaryIndexes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(_, c)| c.get("CapacityUnits").and_then(Value::as_f64))
                .sum();
            let u = units.entry(table.to_owned()).or_default();
            if read {
                u.read += total;
            } else {
                u.write += total;
                u.index_write += index;
            }
        }
    }

    fn calls(&self) -> Vec<serde_json::Value> {
        self.1
            .lock()
            .unwrap()
            .iter()
            .map(|((app, op, resource), n)| {
                serde_json::json!({"app": app, "op": op, "resource": resource, "count": n})
            })
            .collect()
    }
}

/// The SDK app id in a request's user agent (`app/<id>`), or `-`.
fn app_id(headers: &HeaderMap) -> String {
    ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok())
        .flat_map(str::split_whitespace)
        .find_map(|part| part.strip_prefix("app/"))
        .unwrap_or("-")
        .to_owned()
}

/// The partition keys a DynamoDB write request writes (see [`Counts::key_writes`]).
fn written_keys(op: &str, body: &[u8]) -> Vec<String> {
    use serde_json::Value;
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let pk = |item: &Value| {
        item.get("pk")
            .and_then(|k| k.get("S"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let one = |inner: &Value, kind: &str| -> Vec<String> {
        let table = inner
            .get("TableName")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let key = inner.get("Key").or_else(|| inner.get("Item"));
        let mut out: Vec<String> = key
            .and_then(pk)
            .map(|k| format!("{table} {k}"))
            .into_iter()
            .collect();
        if kind == "Update" {
            let values = inner.get("ExpressionAttributeValues");
            for (placeholder, index) in [(":upk", "by_usage_day"), (":cbu", "by_callback")] {
                if let Some(value) = values
                    .and_then(|vs| vs.get(placeholder))
                    .and_then(|x| x.get("S"))
                    .and_then(Value::as_str)
                {
                    out.push(format!("{table}/index/{index} {value}"));
                }
            }
        }
        out
    };
    let name = op.rsplit('.').next().unwrap_or(op);
    match name {
        "UpdateItem" => one(&v, "Update"),
        "PutItem" => one(&v, "Put"),
        "DeleteItem" => one(&v, "Delete"),
        "TransactWriteItems" => v
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.iter().next())
            .filter(|(kind, _)| kind.as_str() != "ConditionCheck")
            .flat_map(|(kind, inner)| one(inner, kind))
            .collect(),
        "BatchWriteItem" => v
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(table, requests)| {
                requests
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| {
                        let item = r
                            .get("PutRequest")
                            .and_then(|p| p.get("Item"))
                            .or_else(|| r.get("DeleteRequest").and_then(|d| d.get("Key")))?;
                        Some(format!("{table} {}", pk(item)?))
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The resources a JSON request names: `table:<name>` (or `table:<name>/index/<index>`),
/// `queue:<name>`, `secret:<id>`; `-` when it names none. A transaction's items carry their
/// kind (`table:<name>#Put`): IAM authorises each item's action.
fn resources(body: &[u8]) -> Vec<String> {
    use serde_json::Value;
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return vec!["-".into()];
    };
    let mut out = Vec::new();
    let table = |v: &Value| {
        v.get("TableName").and_then(Value::as_str).map(|t| {
            match v.get("IndexName").and_then(Value::as_str) {
                Some(i) => format!("table:{t}/index/{i}"),
                None => format!("table:{t}"),
            }
        })
    };
    out.extend(table(&v));
    for item in v
        .get("TransactItems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some((kind, inner)) = item.as_object().and_then(|o| o.iter().next()) {
            out.extend(table(inner).map(|t| format!("{t}#{kind}")));
        }
    }
    for t in v
        .get("RequestItems")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.push(format!("table:{}", t.0));
    }
    if let Some(q) = v.get("QueueUrl").and_then(Value::as_str) {
        out.push(format!("queue:{}", q.rsplit('/').next().unwrap_or(q)));
    }
    if let Some(s) = v.get("SecretId").and_then(Value::as_str) {
        out.push(format!("secret:{s}"));
    }
    if out.is_empty() {
        out.push("-".into());
    }
    out.sort();
    out.dedup();
    out
}

async fn forward(
    State((counts, upstream, http)): State<(Arc<Counts>, String, reqwest::Client)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    if method == Method::GET && uri.path() == "/_counts" {
        let json = serde_json::to_vec(&counts.snapshot()).unwrap_or_default();
        return (StatusCode::OK, HeaderMap::new(), Bytes::from(json));
    }
    if method == Method::GET && uri.path() == "/_keys" {
        let json = serde_json::to_vec(&counts.key_writes()).unwrap_or_default();
        return (StatusCode::OK, HeaderMap::new(), Bytes::from(json));
    }
    if method == Method::GET && uri.path() == "/_units" {
        let units: serde_json::Map<String, serde_json::Value> = counts
            .units()
            .into_iter()
            .map(|(t, u)| {
                let v = serde_json::json!({"read": u.read, "write": u.write,
                    "index_write": u.index_write, "failed_write": u.failed_write});
                (t, v)
            })
            .collect();
        let json = serde_json::to_vec(&units).unwrap_or_default();
        return (StatusCode::OK, HeaderMap::new(), Bytes::from(json));
    }
    if method == Method::GET && uri.path() == "/_calls" {
        let json = serde_json::to_vec(&counts.calls()).unwrap_or_default();
        return (StatusCode::OK, HeaderMap::new(), Bytes::from(json));
    }
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            form_urlencoded::parse(&body)
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| format!("{method} {}", uri.path()));
    {
        let app = app_id(&headers);
        let mut calls = counts.1.lock().unwrap();
        for resource in resources(&body) {
            *calls
                .entry((app.clone(), op.clone(), resource))
                .or_default() += 1;
        }
    }
    let written = written_keys(&op, &body);
    {
        let mut keys = counts.2.lock().unwrap();
        for k in &written {
            *keys.entry(k.clone()).or_default() += 1;
        }
    }
    *counts.0.lock().unwrap().entry(op.clone()).or_default() += 1;
    if !op.starts_with("DynamoDB_") {
        return relay(&http, &upstream, method, &uri, &headers, body).await;
    }
    let body = asking_consumed_capacity(body);
    let (status, h, answer) = relay(&http, &upstream, method, &uri, &headers, body).await;
    counts.record_units(&op, status, &answer, &written);
    (status, h, answer)
}

/// A DynamoDB request body that also asks for the capacity it consumes (per table and index),
/// unless it already asks. The emulator does not check signatures, so the changed body goes
/// through; the SDKs ignore the extra field in the answer unless they asked for it.
fn asking_consumed_capacity(body: Bytes) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut m)) if !m.contains_key("ReturnConsumedCapacity") => {
            m.insert("ReturnConsumedCapacity".into(), "INDEXES".into());
            serde_json::to_vec(&m).map_or(body, Bytes::from)
        }
        _ => body,
    }
}

/// Forwards one request to `upstream` unchanged (but for the hop-by-hop length headers) and
/// hands back its answer; 502 when upstream cannot be reached. A HEAD answer keeps its
/// `content-length`: it is the object's size (S3's HeadObject), not the length of a body.
pub async fn relay(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let head = method == Method::HEAD;
    let mut req = http.request(
        method,
        format!(
            "{upstream}{}",
            uri.path_and_query().map_or("", |p| p.as_str())
        ),
    );
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            let status = r.status();
            let mut h = HeaderMap::new();
            for (k, v) in r.headers() {
                if (head || k != "content-length") && k != "transfer-encoding" {
                    h.insert(k, v.clone());
                }
            }
            (status, h, r.bytes().await.unwrap_or_default())
        }
        Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
    }
}

/// Starts the proxy on `addr` (port 0: any), forwarding to `upstream`; returns its URL.
pub async fn start(upstream: String, addr: SocketAddr) -> std::io::Result<(Arc<Counts>, String)> {
    let counts = Arc::new(Counts::default());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(forward).with_state((
        Arc::clone(&counts),
        upstream,
        reqwest::Client::new(),
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((counts, url))
}
