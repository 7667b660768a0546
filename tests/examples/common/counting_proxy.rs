//! A counting proxy in front of ministack, for the examples that measure AWS calls: every
//! request is forwarded unchanged and counted by operation (`X-Amz-Target`, or the query
//! protocol's `Action`). `GET /_counts` answers the counts so far as JSON. `GET /_calls` answers
//! who called what on which resource: the caller's SDK app id (`app/<id>` in its user agent,
//! from `AWS_SDK_UA_APP_ID`), the operation, and the tables, indexes, queues or secrets its JSON
//! body names, with counts: what `scripts/check_iam.py` checks against the template's policies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// AWS calls by operation, and by caller, operation and resource.
#[derive(Default)]
pub struct Counts(
    Mutex<BTreeMap<String, usize>>,
    Mutex<BTreeMap<(String, String, String), usize>>,
);

impl Counts {
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
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
