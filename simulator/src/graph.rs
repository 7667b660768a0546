//! The Graph API routes: versioned paths, bearer-token auth (190 on an unknown or expired
//! token), fault injection, and a record of every request.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::control::FaultRoute;
use crate::media_http;
use crate::model::{Phone, RequestRecord, Tier};
use crate::{GraphError, Simulator};

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/{version}/{id}/messages", post(messages))
        .route(
            "/{version}/{id}/marketing_messages",
            post(marketing_messages),
        )
        .route(
            "/{version}/{id}/message_templates",
            get(list_templates)
                .post(create_template)
                .delete(delete_template),
        )
        .route("/{version}/{id}/phone_numbers", get(phone_numbers))
        .route(
            "/{version}/{id}/media",
            post(media_http::upload_media)
                .layer(axum::extract::DefaultBodyLimit::max(128 * 1024 * 1024)),
        )
        .route(
            "/{version}/{id}",
            get(node)
                .post(edit_template)
                .delete(media_http::delete_node),
        )
        .route("/whatsapp_business/attachments/", get(media_http::download))
        .with_state(sim)
}

type Q = Query<HashMap<String, String>>;

async fn messages(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(sim, v, id, headers, body, false).await
}

async fn marketing_messages(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(sim, v, id, headers, body, true).await
}

/// `/messages` and `/marketing_messages`: one body, two routes.
async fn send(
    sim: Simulator,
    v: String,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    marketing_api: bool,
) -> Response {
    let route = if marketing_api {
        "marketing_messages"
    } else {
        "messages"
    };
    sim.handle(
        Method::POST,
        format!("/{v}/{id}/{route}"),
        FaultRoute::Messages,
        &v,
        &headers,
        &body,
        |sim, json| sim.send_message(&id, &v, json, marketing_api),
    )
    .await
}

async fn list_templates(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{v}/{id}/message_templates");
    sim.handle(
        Method::GET,
        path,
        FaultRoute::Templates,
        &v,
        &headers,
        b"",
        |sim, _| sim.list_templates(&id, &q, &v),
    )
    .await
}

async fn create_template(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{v}/{id}/message_templates");
    sim.handle(
        Method::POST,
        path,
        FaultRoute::Templates,
        &v,
        &headers,
        &body,
        |sim, json| sim.create_template(&id, json),
    )
    .await
}

async fn delete_template(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{v}/{id}/message_templates");
    sim.handle(
        Method::DELETE,
        path,
        FaultRoute::Templates,
        &v,
        &headers,
        b"",
        |sim, _| {
            let name = q.get("name").ok_or_else(|| GraphError::missing("name"))?;
            sim.delete_template(&id, name)
        },
    )
    .await
}

async fn edit_template(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{v}/{id}");
    sim.handle(
        Method::POST,
        path,
        FaultRoute::Templates,
        &v,
        &headers,
        &body,
        |sim, json| sim.edit_template(&id, json),
    )
    .await
}

async fn phone_numbers(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{v}/{id}/phone_numbers");
    sim.handle(
        Method::GET,
        path,
        FaultRoute::PhoneNumbers,
        &v,
        &headers,
        b"",
        |sim, _| {
            let world = sim.world();
            if !world.wabas.contains_key(&id) {
                return Err(crate::send::unknown_object(&id));
            }
            let tier = world.wabas[&id].tier;
            let data: Vec<Value> = world
                .phones
                .values()
                .filter(|p| p.waba_id == id)
                .map(|p| phone_fields(p, tier, None))
                .collect();
            Ok(json!({"data": data, "paging": {"cursors": {"before": "", "after": ""}}}))
        },
    )
    .await
}

/// `GET /{id}`: a phone number's fields, a WABA's (`pricing_analytics`, `currency`), or a
/// media object's download URL.
async fn node(
    State(sim): State<Simulator>,
    Path((v, id)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{v}/{id}");
    if sim.media_object(&id).is_some() {
        let base = crate::lock(&sim.inner.public_url)
            .clone()
            .unwrap_or_default();
        return sim
            .handle_raw(
                Method::GET,
                path,
                FaultRoute::Media,
                &v,
                &headers,
                Value::Null,
                |sim| {
                    sim.media_info(&id, &base)
                        .unwrap_or_else(|| Err(crate::send::unknown_object(&id)))
                },
            )
            .await;
    }
    let fields = q.get("fields").cloned();
    let route = if fields
        .as_deref()
        .is_some_and(|f| f.contains("pricing_analytics"))
    {
        FaultRoute::Analytics
    } else {
        FaultRoute::PhoneNumbers
    };
    sim.handle(Method::GET, path, route, &v, &headers, b"", |sim, _| {
        let world = sim.world();
        if let Some(p) = world.phones.get(&id) {
            let tier = world.wabas.get(&p.waba_id).map_or(Tier::T250, |w| w.tier);
            return Ok(phone_fields(p, tier, fields.as_deref()));
        }
        if let Some(w) = world.wabas.get(&id) {
            let mut out = json!({"id": w.id, "name": w.name, "currency": w.currency});
            if let Some(f) = fields
                .as_deref()
                .filter(|f| f.contains("pricing_analytics"))
            {
                drop(world);
                out["pricing_analytics"] = sim.pricing_analytics(&id, f)?;
            }
            return Ok(out);
        }
        Err(crate::send::unknown_object(&id))
    })
    .await
}

/// The requested fields of a phone-number node (Meta's default set when none are asked for).
fn phone_fields(p: &Phone, tier: Tier, fields: Option<&str>) -> Value {
    let all = json!({
        "id": p.id, "display_phone_number": p.display_phone_number, "verified_name": p.verified_name,
        "quality_rating": p.quality_rating, "status": p.status, "name_status": p.name_status,
        "throughput": {"level": p.throughput_level},
        "whatsapp_business_manager_messaging_limit": tier.name(),
        "platform_type": "CLOUD_API", "code_verification_status": "VERIFIED",
    });
    let wanted: Vec<&str> = match fields {
        Some(f) => f.split(',').map(str::trim).collect(),
        None => vec![
            "id",
            "display_phone_number",
            "verified_name",
            "quality_rating",
        ],
    };
    let mut out = json!({"id": p.id});
    for f in wanted {
        if let Some(v) = all.get(f) {
            out[f] = v.clone();
        }
    }
    out
}

impl Simulator {
    /// Runs one Graph request through version check, auth, faults and logging.
    #[allow(clippy::too_many_arguments)]
    async fn handle(
        &self,
        method: Method,
        path: String,
        route: FaultRoute,
        version: &str,
        headers: &HeaderMap,
        body: &[u8],
        f: impl FnOnce(&Simulator, &Value) -> Result<Value, GraphError>,
    ) -> Response {
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or(Value::Null)
        };
        let mut injected = false;
        let result = self
            .run(
                (&method, &path),
                route,
                version,
                headers,
                body,
                &json,
                f,
                &mut injected,
            )
            .await;
        self.respond(method, path, result, json, injected)
    }

    /// [`Self::handle`] for a body that is not JSON (a multipart upload) or none: `record` is
    /// what the request log keeps of it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn handle_raw(
        &self,
        method: Method,
        path: String,
        route: FaultRoute,
        version: &str,
        headers: &HeaderMap,
        record: Value,
        f: impl FnOnce(&Simulator) -> Result<Value, GraphError>,
    ) -> Response {
        let mut injected = false;
        let result = self
            .run(
                (&method, &path),
                route,
                version,
                headers,
                b"",
                &Value::Null,
                |s, _| f(s),
                &mut injected,
            )
            .await;
        self.respond(method, path, result, record, injected)
    }

    /// Logs the request and renders its answer.
    fn respond(
        &self,
        method: Method,
        path: String,
        result: Result<Value, GraphError>,
        record: Value,
        injected: bool,
    ) -> Response {
        let (status, code, payload) = match result {
            Ok(v) => (200, None, v),
            Err(e) => (e.http, Some(e.code), e.envelope(&self.fbtrace_id())),
        };
        crate::model::push_capped(
            &mut self.world().requests,
            RequestRecord {
                method: method.to_string(),
                path,
                status,
                error_code: code,
                body: record,
                at_ms: self.now_ms(),
                injected,
            },
        );
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(payload),
        )
            .into_response()
    }

    /// The request (`method` on `path`) through version, auth and faults; `faulted` tells whether a fault (other
    /// than latency) shaped the answer.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        (method, path): (&Method, &str),
        route: FaultRoute,
        version: &str,
        headers: &HeaderMap,
        body: &[u8],
        json: &Value,
        f: impl FnOnce(&Simulator, &Value) -> Result<Value, GraphError>,
        faulted: &mut bool,
    ) -> Result<Value, GraphError> {
        let valid_version = version
            .strip_prefix('v')
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
        if !valid_version {
            return Err(GraphError::new(
                400,
                2500,
                "Unknown path components",
                format!("Unknown path components: /{version}"),
            ));
        }
        let token = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        // `/{version}/{id}/...`: the object whose account the token must reach.
        let object = path.split('/').nth(2).filter(|id| !id.is_empty());
        self.authorize_graph(token, object, method.as_str())?;
        if !body.is_empty() && json.is_null() {
            return Err(GraphError::param("The request body is not valid JSON."));
        }
        let fault = self.take_fault(route).or_else(|| self.mixed_fault(route));
        // Latency alone is no fault of the answer.
        *faulted = fault.as_ref().is_some_and(|f| {
            f.error.is_some() || f.hang_before_ms.is_some() || f.hang_after_ms.is_some()
        });
        if let Some(fault) = &fault {
            if fault.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
            }
            if let Some(ms) = fault.hang_before_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if let Some((http, code)) = fault.error {
                return Err(GraphError::new(
                    http,
                    code,
                    "Injected fault",
                    "Fault injected by the simulator.",
                ));
            }
        }
        let out = f(self, json);
        if let Some(ms) = fault.and_then(|f| f.hang_after_ms) {
            // The request was processed (a message accepted); the caller sees only a timeout.
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        out
    }

    /// `pricing_analytics.start(S).end(E).granularity(G)[.phone_numbers([...])]`: what the
    /// simulator delivered and priced, by start × country × category × type (× phone).
    fn pricing_analytics(&self, waba_id: &str, fields: &str) -> Result<Value, GraphError> {
        let arg = |name: &str| -> Option<String> {
            let i = fields.find(&format!("{name}("))? + name.len() + 1;
            let j = fields[i..].find(')')? + i;
            Some(fields[i..j].to_owned())
        };
        let start: i64 = arg("start")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GraphError::missing("pricing_analytics.start"))?;
        let end: i64 = arg("end")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GraphError::missing("pricing_analytics.end"))?;
        let granularity = arg("granularity").unwrap_or_else(|| "DAILY".into());
        let step = match granularity.as_str() {
            "HALF_HOUR" => 1800,
            "DAILY" => 86_400,
            "MONTHLY" => 0,
            other => return Err(GraphError::param(format!("Unknown granularity {other}."))),
        };
        let phones: Option<Vec<String>> = arg("phone_numbers").map(|p| {
            p.trim_matches(['[', ']'])
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        });
        let cfg = self.config();
        let world = self.world();
        let mut buckets: BTreeMap<BucketKey, (u64, f64)> = BTreeMap::new();
        for id in &world.outbound_order {
            let Some(m) = world.outbound.get(id) else {
                continue;
            };
            let on_waba = world
                .phones
                .get(&m.phone_number_id)
                .is_some_and(|p| p.waba_id == waba_id);
            if !on_waba || m.outcome.is_err() || m.accepted_at < start || m.accepted_at >= end {
                continue;
            }
            let phone = world
                .phones
                .get(&m.phone_number_id)
                .map(|p| p.display_phone_number.clone())
                .unwrap_or_default();
            if phones
                .as_ref()
                .is_some_and(|ps| !ps.contains(&phone) && !ps.contains(&m.phone_number_id))
            {
                continue;
            }
            let bucket = if step == 0 {
                month_start(m.accepted_at)
            } else {
                start + (m.accepted_at - start) / step * step
            };
            let cost = if m.priced.billable() {
                cfg.rates
                    .iter()
                    .find(|(c, _)| *c == m.priced.category)
                    .map_or(0.0, |r| r.1)
            } else {
                0.0
            };
            let e = buckets
                .entry((
                    bucket,
                    m.country.clone(),
                    m.priced.category.to_ascii_uppercase().replace('-', "_"),
                    m.priced.kind.to_ascii_uppercase(),
                    phone,
                ))
                .or_default();
            e.0 += 1;
            e.1 += cost;
        }
        let points: Vec<Value> = buckets
            .into_iter()
            .map(|((s, country, category, kind, phone), (volume, cost))| {
                let e = if step == 0 { month_start(s + 32 * 86_400) } else { s + step };
                json!({"start": s, "end": e, "country": country, "pricing_category": category, "pricing_type": kind, "phone_number": phone, "volume": volume, "cost": (cost * 1e6).round() / 1e6})
            })
            .collect();
        Ok(json!({"data": [{"data_points": points}]}))
    }
}

/// (start, country, category, type, phone number) of an analytics data point.
type BucketKey = (i64, String, String, String, String);

/// Midnight UTC on the first of `t`'s month.
fn month_start(t: i64) -> i64 {
    let days = t.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant), then back to days for the 1st of the month.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    (days - (day - 1)) * 86_400
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_start_is_the_first_of_the_month() {
        // 2026-11-23T12:00:00Z → 2026-11-01T00:00:00Z
        assert_eq!(super::month_start(1_795_435_200), 1_793_491_200);
    }
}
