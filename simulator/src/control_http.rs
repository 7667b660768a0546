//! The control side over HTTP, under `/_sim/`: each route calls the Rust method of the same
//! name on [`Simulator`] (see [`crate::control`]).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Simulator;
use crate::control::{Fault, InboundSpec, PhoneChange};
use crate::model::{Outbound, Tier};

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/tokens", post(tokens))
        .route("/_sim/wabas", post(wabas))
        .route("/_sim/phone_numbers", post(phones))
        .route("/_sim/phone_numbers/{id}/state", post(phone_state))
        .route("/_sim/users", post(users))
        .route("/_sim/users/{user}/messages", post(user_message))
        .route("/_sim/users/{user}/marketing", post(marketing))
        .route("/_sim/users/{user}/identity", post(identity))
        .route("/_sim/templates/{id}/status", post(template_status))
        .route("/_sim/faults", post(fault).delete(clear))
        .route("/_sim/clock/advance", post(advance))
        .route(
            "/_sim/requests",
            get(|State(s): State<Simulator>| async move { axum::Json(json!(s.requests())) }),
        )
        .route(
            "/_sim/deliveries",
            get(|State(s): State<Simulator>| async move { axum::Json(json!(s.deliveries())) }),
        )
        .route("/_sim/messages", get(messages))
        .route(
            "/_sim/media",
            get(|State(s): State<Simulator>| async move {
                let all: Vec<Value> = s
                    .media()
                    .iter()
                    .map(|m| {
                        json!({"id": m.id, "phone_number_id": m.phone_number_id,
                               "mime_type": m.mime_type, "file_size": m.bytes.len(),
                               "sha256": m.sha256_hex, "uploaded": m.uploaded,
                               "deleted": m.deleted, "created_at": m.created_at})
                    })
                    .collect();
                axum::Json(json!(all))
            }),
        )
        .with_state(sim)
}

fn bad(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

async fn tokens(State(s): State<Simulator>, axum::Json(v): axum::Json<Value>) -> Response {
    let Some(t) = v["token"].as_str() else {
        return bad("token is required");
    };
    let wabas = match &v["wabas"] {
        Value::Null => None,
        Value::Array(ids) => match ids.iter().map(|w| w.as_str().map(str::to_owned)).collect() {
            Some(ids) => Some(ids),
            None => return bad("wabas must be a list of WABA ids"),
        },
        _ => return bad("wabas must be a list of WABA ids"),
    };
    s.grant(t, v["expires_at"].as_i64(), wabas);
    ok(json!({"token": t}))
}

async fn wabas(State(s): State<Simulator>, axum::Json(v): axum::Json<Value>) -> Response {
    let Some(id) = v["id"].as_str() else {
        return bad("id is required");
    };
    let tier = v["tier"]
        .as_str()
        .and_then(Tier::parse)
        .unwrap_or(Tier::T250);
    s.create_waba(id, tier);
    ok(json!({"id": id, "tier": tier.name()}))
}

async fn phones(State(s): State<Simulator>, axum::Json(v): axum::Json<Value>) -> Response {
    let (Some(id), Some(waba)) = (v["id"].as_str(), v["waba_id"].as_str()) else {
        return bad("id and waba_id are required");
    };
    s.create_phone_number(
        id,
        waba,
        v["display_phone_number"].as_str().unwrap_or("15550000000"),
    );
    ok(json!({"id": id}))
}

async fn phone_state(
    State(s): State<Simulator>,
    Path(id): Path<String>,
    axum::Json(c): axum::Json<PhoneChange>,
) -> Response {
    match s.set_phone_state(&id, c) {
        Ok(()) => ok(json!({"success": true})),
        Err(e) => bad(e),
    }
}

async fn users(State(s): State<Simulator>, axum::Json(v): axum::Json<Value>) -> Response {
    let uid = s.add_user(
        v["wa_id"].as_str(),
        v["user_id"].as_str(),
        v["on_whatsapp"].as_bool().unwrap_or(true),
    );
    ok(json!({"user_id": uid}))
}

async fn user_message(
    State(s): State<Simulator>,
    Path(user): Path<String>,
    axum::Json(spec): axum::Json<InboundSpec>,
) -> Response {
    match s.user_sends(&user, spec) {
        Ok(id) => ok(json!({"id": id})),
        Err(e) => bad(e),
    }
}

async fn marketing(
    State(s): State<Simulator>,
    Path(user): Path<String>,
    axum::Json(v): axum::Json<Value>,
) -> Response {
    let Some(phone) = v["phone_number_id"].as_str() else {
        return bad("phone_number_id is required");
    };
    match s.set_marketing_preference(&user, phone, v["stop"].as_bool().unwrap_or(true)) {
        Ok(()) => ok(json!({"success": true})),
        Err(e) => bad(e),
    }
}

async fn template_status(
    State(s): State<Simulator>,
    Path(id): Path<String>,
    axum::Json(v): axum::Json<Value>,
) -> Response {
    let Some(status) = v["status"].as_str() else {
        return bad("status is required");
    };
    if s.set_template_status(&id, status, v["reason"].as_str()) {
        ok(json!({"success": true}))
    } else {
        bad("unknown template")
    }
}

async fn fault(State(s): State<Simulator>, axum::Json(f): axum::Json<Fault>) -> Response {
    s.inject_fault(f);
    ok(json!({"success": true}))
}

async fn clear(State(s): State<Simulator>) -> Response {
    s.clear_faults();
    ok(json!({"success": true}))
}

async fn advance(State(s): State<Simulator>, axum::Json(v): axum::Json<Value>) -> Response {
    s.advance_clock(v["seconds"].as_i64().unwrap_or(0));
    ok(json!({"now": s.now()}))
}

async fn messages(
    State(s): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = s.messages();
    let filtered: Vec<&Outbound> = all
        .iter()
        .filter(|m| {
            q.get("callback_data")
                .is_none_or(|c| m.callback_data.as_deref() == Some(c))
        })
        .collect();
    ok(json!({"count": filtered.len(), "messages": filtered}))
}

/// `POST /_sim/users/{user}/identity` with `{"new_wa_id": "…"}` (a number change) or `{}` (a
/// business-scoped id change): answers `{"user_id": <the new id>}`.
async fn identity(
    State(s): State<Simulator>,
    Path(user): Path<String>,
    axum::Json(v): axum::Json<Value>,
) -> Response {
    let result = match v["new_wa_id"].as_str() {
        Some(w) => s.change_number(&user, w),
        None => s.change_user_id(&user),
    };
    match result {
        Ok(uid) => ok(json!({"user_id": uid})),
        Err(e) => bad(e),
    }
}
