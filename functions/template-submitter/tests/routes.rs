//! Routing, validation and error mapping on in-memory ports; the Graph side is a scripted fake.
//! (The integration tests run the same handler against the simulator and DynamoDB.)

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{Value, json};
use template_submitter::Submitter;
use whatsapp_core::graph::GraphErrorBody;
use whatsapp_core::ports::{GraphCallError, TemplateApi};
use whatsapp_core::templates::{CreatedTemplate, TemplatePage, TemplateSubmission};
use whatsapp_fakes::{MemoryTemplates, StaticSecrets};

const WABA: &str = "102290129340398";

#[derive(Default)]
struct FakeMeta {
    calls: Mutex<Vec<String>>,
    fail_with: Mutex<Option<(u16, i64)>>,
}

impl FakeMeta {
    #[allow(clippy::result_large_err)] // the port's error type, as the adapter returns it
    fn answer<T>(&self, call: String, ok: T) -> Result<T, GraphCallError> {
        self.calls.lock().unwrap().push(call);
        match *self.fail_with.lock().unwrap() {
            Some((status, code)) => Err(GraphCallError::Api {
                status,
                body: serde_json::from_value::<GraphErrorBody>(
                    json!({"message": "refused", "code": code}),
                )
                .unwrap(),
            }),
            None => Ok(ok),
        }
    }
}

impl TemplateApi for FakeMeta {
    async fn create_template(
        &self,
        _: &str,
        t: &TemplateSubmission,
        _: &str,
    ) -> Result<CreatedTemplate, GraphCallError> {
        self.answer(
            format!("create {}", t.name),
            CreatedTemplate {
                id: "555".into(),
                status: "PENDING".into(),
                category: Some(t.category.as_str().into()),
            },
        )
    }
    async fn edit_template(&self, id: &str, _: &Value, _: &str) -> Result<(), GraphCallError> {
        self.answer(format!("edit {id}"), ())
    }
    async fn delete_template(&self, _: &str, name: &str, _: &str) -> Result<(), GraphCallError> {
        self.answer(format!("delete {name}"), ())
    }
    async fn list_templates(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
    ) -> Result<TemplatePage, GraphCallError> {
        self.answer("list".into(), TemplatePage::default())
    }
}

fn submitter() -> Submitter<FakeMeta, MemoryTemplates, StaticSecrets> {
    Submitter {
        api: FakeMeta::default(),
        store: MemoryTemplates::default(),
        secrets: StaticSecrets::new("a", "v", "tok"),
        wabas: HashSet::from([WABA.to_owned()]),
    }
}

const NOW: i64 = 1_795_460_400;

#[tokio::test]
async fn the_sample_function_url_event_creates_a_template() {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/templates-function-url-create.json"
    ))
    .unwrap();
    let req = lambda_http::request::from_str(&raw).unwrap();
    let s = submitter();
    let r = s
        .handle(
            req.method().as_str(),
            req.uri().path(),
            req.body().as_ref(),
            NOW,
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(*s.api.calls.lock().unwrap(), ["create order_update"]);
}

#[tokio::test]
async fn routes_and_meta_errors_map_to_clear_statuses() {
    let s = submitter();
    assert_eq!(s.handle("GET", "/nope", b"", NOW).await.status, 404);
    assert_eq!(
        s.handle("POST", &format!("/templates/{WABA}"), b"{", NOW)
            .await
            .body["error"]["code"],
        "malformed"
    );
    let good = json!({"name": "t", "language": "en", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello there."}]})
    .to_string();
    *s.api.fail_with.lock().unwrap() = Some((400, 100));
    let r = s
        .handle("POST", &format!("/templates/{WABA}"), good.as_bytes(), NOW)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["graph_code"].as_i64()),
        (400, Some(100))
    );
    *s.api.fail_with.lock().unwrap() = Some((429, 4));
    let r = s
        .handle("POST", &format!("/templates/{WABA}/sync"), b"", NOW)
        .await;
    assert_eq!(r.status, 429);
    *s.api.fail_with.lock().unwrap() = Some((503, 2));
    let r = s
        .handle("POST", &format!("/templates/{WABA}"), good.as_bytes(), NOW)
        .await;
    assert_eq!(r.status, 503);
    // Nothing stored for a template Meta refused.
    assert_eq!(
        s.handle("GET", &format!("/templates/{WABA}/t/en"), b"", NOW)
            .await
            .status,
        404
    );
}
