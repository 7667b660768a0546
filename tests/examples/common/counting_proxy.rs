//! A counting proxy in front of ministack, for the examples that measure AWS calls: every
//! request is forwarded unchanged and counted by operation (`X-Amz-Target`, or the query
//! protocol's `Action`). `GET /_counts` answers the counts so far as JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// AWS calls by operation.
#[derive(Default)]
pub struct Counts(Mutex<BTreeMap<String, usize>>);

impl Counts {
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }
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
    *counts.0.lock().unwrap().entry(op).or_default() += 1;
    let mut req = http.request(
        method,
        format!(
            "{upstream}{}",
            uri.path_and_query().map_or("", |p| p.as_str())
        ),
    );
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            let status = r.status();
            let mut h = HeaderMap::new();
            for (k, v) in r.headers() {
                if k != "content-length" && k != "transfer-encoding" {
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
