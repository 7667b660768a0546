//! A counting proxy in front of ministack, for the examples that measure AWS calls: every
//! request is forwarded unchanged and counted by operation (`X-Amz-Target`, or the query
//! protocol's `Action`). `GET /_counts` answers the counts so far as JSON. `GET /_calls` answers
//! who called what on which resource: the caller's SDK app id (`app/<id>` in its user agent,
//! from `AWS_SDK_UA_APP_ID`), the operation, and the tables, indexes, queues or secrets its JSON
//! body names, with counts: what `scripts/check_iam.py` checks against the template's policies.
//! `GET /_keys` answers the DynamoDB writes by partition key (the hot-key report).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// AWS calls by operation, by caller, operation and resource, and DynamoDB writes by the
/// partition key they land on.
#[derive(Default)]
pub struct Counts(
    Mutex<BTreeMap<String, usize>>,
    Mutex<BTreeMap<(String, String, String), usize>>,
    Mutex<BTreeMap<String, usize>>,
);

impl Counts {
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    /// DynamoDB writes by partition key: `<table> <pk>` for an item (a transaction's and a
    /// batch's items each count), and `<table>/index/<index> <value>` for the index entries an
    /// update writes (`usage_pk` of `by_usage_day`, `callback_data` of `by_callback`).
    pub fn key_writes(&self) -> BTreeMap<String, usize> {
        self.2.lock().unwrap().clone()
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
            for (placeholder, index) in [(":upk", "by_usage_day"), (":cb", "by_callback")] {
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
    {
        let mut keys = counts.2.lock().unwrap();
        for k in written_keys(&op, &body) {
            *keys.entry(k).or_default() += 1;
        }
    }
    *counts.0.lock().unwrap().entry(op).or_default() += 1;
    relay(&http, &upstream, method, &uri, &headers, body).await
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
