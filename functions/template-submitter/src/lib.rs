//! The template submitter: a small HTTP API (a Lambda function URL with IAM auth) through which
//! platform teams create, edit, delete and inspect message templates. Every definition is
//! validated locally first, with every violation reported at once; what Meta accepts is stored
//! in the templates table, where the sender reads it to check parameters.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /templates/{waba_id}` | a template (Meta's create body) | 201 `{id, status, category}`; 422 `{violations}`; Meta's error as 4xx/5xx |
//! | `PUT /templates/{waba_id}/{name}/{language}` | `{components, category?}` | 200 `{status}`; 409 when Meta's edit limits forbid it |
//! | `DELETE /templates/{waba_id}/{name}/{language}` | | 200 (Meta deletes every language of the name) |
//! | `GET /templates/{waba_id}/{name}/{language}` | | 200 the stored record (status, reason, category, id, definition) |
//! | `POST /templates/{waba_id}/sync` | | 200 `{seen, updated, pages}`: re-reads every template from Meta |

use std::collections::HashSet;

use serde_json::{Value, json};
use whatsapp_core::graph::ErrorClass;
use whatsapp_core::ports::{
    AccountToken, GraphCallError, SecretSource, StoreError, TemplateApi, TemplateDefinition,
    TemplateStore,
};
use whatsapp_core::template_sync::{SyncError, sync_templates};
use whatsapp_core::templates::{TemplateSubmission, TemplateViolation, edit_allowed, validate};
use whatsapp_core::webhook::{TemplateCategory, TemplateStatus};

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

fn reply(status: u16, body: Value) -> Response {
    Response { status, body }
}

fn problem(status: u16, code: &str, message: impl Into<String>) -> Response {
    reply(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

fn unknown_template() -> Response {
    problem(404, "unknown_template", "no such template in this account")
}

fn violations(v: &[TemplateViolation]) -> Response {
    reply(
        422,
        json!({"error": {"code": "invalid_template", "message": format!("{} violation(s)", v.len())}, "violations": v}),
    )
}

/// The handler, generic over its ports.
pub struct Submitter<A, S, K> {
    pub api: A,
    pub store: S,
    pub secrets: K,
    /// `WABA_IDS`: the accounts this deployment manages; others get 404.
    pub wabas: HashSet<String>,
}

impl<A: TemplateApi, S: TemplateStore, K: SecretSource> Submitter<A, S, K> {
    /// Routes one request. `path` is the raw path (`/templates/...`), `now` epoch seconds.
    pub async fn handle(&self, method: &str, path: &str, body: &[u8], now: i64) -> Response {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let result = match (method, parts.as_slice()) {
            ("POST", ["templates", waba]) => self.guard(waba, self.create(waba, body, now)).await,
            ("POST", ["templates", waba, "sync"]) => self.guard(waba, self.sync(waba, now)).await,
            ("PUT", ["templates", waba, name, lang]) => {
                self.guard(waba, self.edit(waba, name, lang, body, now))
                    .await
            }
            ("DELETE", ["templates", waba, name, lang]) => {
                self.guard(waba, self.delete(waba, name, lang, now)).await
            }
            ("GET", ["templates", waba, name, lang]) => {
                self.guard(waba, self.get(waba, name, lang)).await
            }
            _ => Ok(problem(404, "not_found", "no such route")),
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "template request failed on our side");
            problem(
                503,
                "unavailable",
                "a store or the secret is unavailable; retry",
            )
        })
    }

    async fn guard(
        &self,
        waba: &str,
        f: impl std::future::Future<Output = Result<Response, Failure>>,
    ) -> Result<Response, Failure> {
        if !self.wabas.contains(waba) {
            return Ok(problem(
                404,
                "unknown_waba",
                "this deployment does not manage that WhatsApp Business Account",
            ));
        }
        f.await
    }

    /// `waba`'s access token. Each Graph call below is made again once after a 190 when
    /// [`AccountToken::renew`] finds a new token (Meta created, changed or deleted nothing on a
    /// 190). Written out rather than through `with_access_token`: async closures that borrow
    /// the request make this handler's future fail the `Send` check the runtime needs.
    async fn token<'a>(&'a self, waba: &'a str) -> Result<AccountToken<'a, K>, Failure> {
        Ok(AccountToken::read(&self.secrets, waba).await?)
    }

    async fn create(&self, waba: &str, body: &[u8], now: i64) -> Result<Response, Failure> {
        let t: TemplateSubmission = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => return Ok(problem(400, "malformed", e.to_string())),
        };
        let v = validate(&t);
        if !v.is_empty() {
            return Ok(violations(&v));
        }
        let mut token = self.token(waba).await?;
        let mut created = self.api.create_template(waba, &t, token.get()).await;
        if matches!(&created, Err(e) if e.token_rejected()) && token.renew().await? {
            created = self.api.create_template(waba, &t, token.get()).await;
        }
        let created = match created {
            Ok(c) => c,
            Err(e) => return Ok(graph_error(&e)),
        };
        self.store
            .put_definition(
                waba,
                &TemplateDefinition {
                    name: t.name.clone(),
                    language: t.language.clone(),
                    template_id: Some(created.id.clone()),
                    status: created.status.clone(),
                    category: created
                        .category
                        .clone()
                        .unwrap_or_else(|| t.category.as_str().into()),
                    parameter_format: t.parameter_format.clone(),
                    components: Value::Array(t.components.clone()),
                    rejected_reason: None,
                },
                now,
            )
            .await?;
        tracing::info!(template_id = %created.id, status = %created.status, "template submitted");
        Ok(reply(
            201,
            serde_json::to_value(&created).unwrap_or_default(),
        ))
    }

    async fn edit(
        &self,
        waba: &str,
        name: &str,
        lang: &str,
        body: &[u8],
        now: i64,
    ) -> Result<Response, Failure> {
        let Some(record) = self.store.template(waba, name, lang).await? else {
            return Ok(unknown_template());
        };
        let edit: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(problem(
                    400,
                    "malformed",
                    "expected {\"components\": [...], \"category\"?}",
                ));
            }
        };
        let new_category = edit.get("category").and_then(Value::as_str);
        let Some(components) = edit.get("components").and_then(Value::as_array).cloned() else {
            return Ok(problem(400, "malformed", "components is required"));
        };
        let merged = TemplateSubmission {
            name: name.to_owned(),
            language: lang.to_owned(),
            category: new_category
                .map(str::to_owned)
                .or(record.category.as_ref().map(|c| c.as_str().to_owned()))
                .unwrap_or_default(),
            parameter_format: record.parameter_format.clone(),
            message_send_ttl_seconds: edit.get("message_send_ttl_seconds").and_then(Value::as_i64),
            components: components.clone(),
        };
        let v = validate(&merged);
        if !v.is_empty() {
            return Ok(violations(&v));
        }
        if let Err(v) = edit_allowed(&record, new_category, now) {
            return Ok(reply(
                409,
                json!({"error": {"code": v.code, "message": v.message}}),
            ));
        }
        let Some(id) = record.template_id.clone() else {
            return Ok(problem(409, "unknown_template_id", "sync templates first"));
        };
        let mut body = json!({"components": components});
        if let Some(c) = new_category {
            body["category"] = json!(c);
        }
        let mut token = self.token(waba).await?;
        let mut edited = self.api.edit_template(&id, &body, token.get()).await;
        if matches!(&edited, Err(e) if e.token_rejected()) && token.renew().await? {
            edited = self.api.edit_template(&id, &body, token.get()).await;
        }
        if let Err(e) = edited {
            return Ok(graph_error(&e));
        }
        self.store.record_edit(waba, name, lang, now).await?;
        self.store
            .put_definition(
                waba,
                &TemplateDefinition {
                    name: name.to_owned(),
                    language: lang.to_owned(),
                    template_id: Some(id),
                    // An edit goes back to review.
                    status: TemplateStatus::Pending,
                    category: merged.category.as_str().into(),
                    parameter_format: merged.parameter_format,
                    components: Value::Array(components),
                    rejected_reason: None,
                },
                now,
            )
            .await?;
        Ok(reply(200, json!({"status": "PENDING"})))
    }

    async fn delete(
        &self,
        waba: &str,
        name: &str,
        lang: &str,
        now: i64,
    ) -> Result<Response, Failure> {
        let Some(record) = self.store.template(waba, name, lang).await? else {
            return Ok(unknown_template());
        };
        let mut token = self.token(waba).await?;
        let mut deleted = self.api.delete_template(waba, name, token.get()).await;
        if matches!(&deleted, Err(e) if e.token_rejected()) && token.renew().await? {
            deleted = self.api.delete_template(waba, name, token.get()).await;
        }
        if let Err(e) = deleted {
            return Ok(graph_error(&e));
        }
        // Meta deletes every language of the name; this record is marked at once, the others
        // by their webhooks or the next sync.
        self.store
            .put_definition(
                waba,
                &TemplateDefinition {
                    name: name.to_owned(),
                    language: lang.to_owned(),
                    template_id: record.template_id,
                    status: TemplateStatus::Deleted,
                    category: record
                        .category
                        .unwrap_or_else(|| TemplateCategory::Other(String::new())),
                    parameter_format: record.parameter_format,
                    components: record
                        .components
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .unwrap_or(Value::Null),
                    rejected_reason: None,
                },
                now,
            )
            .await?;
        Ok(reply(200, json!({"status": "DELETED"})))
    }

    async fn get(&self, waba: &str, name: &str, lang: &str) -> Result<Response, Failure> {
        Ok(match self.store.template(waba, name, lang).await? {
            None => unknown_template(),
            Some(r) => reply(
                200,
                json!({
                    "id": r.template_id, "name": name, "language": lang, "status": r.status,
                    "category": r.category, "rejected_reason": r.reason.filter(|r| r != "NONE"),
                    "parameter_format": r.parameter_format,
                    "components": r.components.and_then(|c| serde_json::from_str::<Value>(&c).ok()),
                    "edits": r.edits,
                }),
            ),
        })
    }

    async fn sync(&self, waba: &str, now: i64) -> Result<Response, Failure> {
        let mut token = self.token(waba).await?;
        let mut synced = sync_templates(&self.api, &self.store, waba, token.get(), now).await;
        if matches!(&synced, Err(SyncError::Graph(e)) if e.token_rejected())
            && token.renew().await?
        {
            synced = sync_templates(&self.api, &self.store, waba, token.get(), now).await;
        }
        match synced {
            Ok(report) => Ok(reply(200, serde_json::to_value(report).unwrap_or_default())),
            Err(SyncError::Graph(e)) => Ok(graph_error(&e)),
            Err(SyncError::Store(e)) => Err(e.into()),
        }
    }
}

/// A failure on our side (stores, secret): 503, retry.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] whatsapp_core::ports::SecretError),
}

/// Meta's error, passed on: 429 for rate limits (4, 80007: retry later), 502/503 for Meta's own
/// failures, 400 for what Meta refused (with its code and message).
fn graph_error(e: &GraphCallError) -> Response {
    let c = e.classification();
    let status = match (e, c.class) {
        (GraphCallError::Api { body, .. }, _) if matches!(body.code, 4 | 80007) => 429,
        (GraphCallError::Api { .. }, ErrorClass::Terminal) => 400,
        (GraphCallError::Api { .. }, _) => 503,
        _ => 502,
    };
    let (code, message) = match e {
        GraphCallError::Api { body, .. } => (body.code, body.message.clone()),
        other => (0, other.to_string()),
    };
    reply(
        status,
        json!({"error": {"code": "graph_error", "message": message, "graph_code": code}}),
    )
}
