//! The media routes over HTTP: upload (multipart), delete, and the download URL
//! (`GET /{media-id}` is served with the other nodes, in [`crate::graph`]).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Simulator;
use crate::control::FaultRoute;
use crate::model::RequestRecord;

type Q = Query<HashMap<String, String>>;

/// `POST /{phone}/media` (multipart).
pub(crate) async fn upload_media(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let record = json!({"content_type": content_type.split(';').next(), "bytes": body.len()});
    sim.handle_raw(
        Method::POST,
        format!("/{v}/{id}/media"),
        FaultRoute::Media,
        &v,
        &headers,
        record,
        |sim| sim.upload_media(&id, &content_type, &body),
    )
    .await
}

/// `DELETE /{media-id}`.
pub(crate) async fn delete_node(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    sim.handle_raw(
        Method::DELETE,
        format!("/{v}/{id}"),
        FaultRoute::Media,
        &v,
        &headers,
        Value::Null,
        |sim| {
            sim.delete_media(&id)
                .unwrap_or_else(|| Err(crate::send::unknown_object(&id)))
        },
    )
    .await
}

/// The download URL of `GET /{media-id}`: the bytes, with the bearer token.
pub(crate) async fn download(
    State(sim): State<Simulator>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let fault = sim.take_fault(FaultRoute::MediaDownload);
    let (status, response) = match &fault {
        Some(f) if f.error.is_some() || f.hang_before_ms.is_some() => {
            if let Some(ms) = f.hang_before_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let status = f.error.map_or(504, |(http, _)| http);
            (
                status,
                StatusCode::from_u16(status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response(),
            )
        }
        _ => {
            if let Some(ms) = fault.as_ref().map(|f| f.latency_ms).filter(|ms| *ms > 0) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let hash = q.get("hash").map_or("", String::as_str);
            match sim.download(hash, bearer) {
                crate::media::Download::Bytes { mime_type, bytes } => (
                    200,
                    (
                        [(axum::http::header::CONTENT_TYPE, mime_type)],
                        Bytes::from_owner(ArcBytes(bytes)),
                    )
                        .into_response(),
                ),
                crate::media::Download::Refused(status) => (
                    status,
                    StatusCode::from_u16(status)
                        .unwrap_or(StatusCode::NOT_FOUND)
                        .into_response(),
                ),
            }
        }
    };
    crate::model::push_capped(
        &mut sim.world().requests,
        RequestRecord {
            method: "GET".into(),
            path: "/whatsapp_business/attachments/".into(),
            status,
            error_code: None,
            body: json!({"mid": q.get("mid")}),
            at_ms: sim.now_ms(),
            injected: fault.is_some_and(|f| f.error.is_some() || f.hang_before_ms.is_some()),
        },
    );
    response
}

/// Shares a media object's bytes with the response body without copying them.
struct ArcBytes(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
