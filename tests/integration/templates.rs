//! The template submitter on ministack against the Cloud API simulator: local validation with
//! every violation, submission, review through the status webhooks (the real webhook handler
//! writes the templates table), a rejection with its reason, edit limits, deletion, and the
//! sync that catches a missed webhook. The sender then uses (or refuses) what the table says.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use simulator::{Fault, FaultRoute, SimConfig, Simulator, Tier};
use template_submitter::{Response, Submitter};
use whatsapp_aws::{
    CachedSecrets, DynamoTemplateStore, GraphHttpClient, GraphHttpConfig, SecretsManagerFetcher,
};
use whatsapp_core::ports::TemplateStore;

use crate::support::{ingest_stack, now};
use crate::webhook::{PHONE, WABA, eventually, front, webhook};

type AwsSubmitter =
    Submitter<GraphHttpClient, DynamoTemplateStore, CachedSecrets<SecretsManagerFetcher>>;

struct Rig {
    sim: simulator::RunningSimulator,
    submitter: AwsSubmitter,
}

async fn rig(webhooks: bool) -> Rig {
    let stack = ingest_stack().await;
    let url = front(Arc::new(webhook(&stack))).await;
    let sim = Simulator::start(
        SimConfig {
            app_secret: crate::support::APP_SECRET.into(),
            callback_url: webhooks.then_some(url),
            template_review_delay_ms: 50,
            reject_templates_containing: vec!["scam".into()],
            ..SimConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    sim.sim.create_waba(WABA, Tier::T2K);
    sim.sim.create_phone_number(PHONE, WABA, "15550783881");
    sim.sim.add_token("tok", None);
    let submitter = Submitter {
        api: GraphHttpClient::new(&GraphHttpConfig {
            base_url: sim.base_url(),
            timeout: Duration::from_secs(5),
            ..GraphHttpConfig::default()
        })
        .unwrap(),
        store: DynamoTemplateStore::new(
            aws_sdk_dynamodb::Client::new(&stack.aws),
            &stack.resources.templates_table,
        ),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&stack.aws),
                &stack.secret_id,
            ),
            Duration::from_secs(300),
        ),
        wabas: HashSet::from([WABA.to_owned()]),
    };
    Rig { sim, submitter }
}

async fn call(rig: &Rig, method: &str, path: &str, body: Value) -> Response {
    let raw = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    rig.submitter.handle(method, path, &raw, now()).await
}

fn order_update(name: &str) -> Value {
    json!({
        "name": name, "language": "en_US", "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped.",
             "example": {"body_text": [["Ann", "8812"]]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"}
        ]
    })
}

async fn status_of(rig: &Rig, name: &str) -> Option<String> {
    rig.submitter
        .store
        .template(WABA, name, "en_US")
        .await
        .unwrap()
        .and_then(|r| r.status)
        .map(|s| s.as_str().to_owned())
}

async fn wait_status(rig: &Rig, name: &str, want: &'static str) {
    eventually(want, || async move {
        status_of(rig, name).await.as_deref() == Some(want)
    })
    .await;
}

#[tokio::test]
async fn a_template_with_many_violations_is_refused_with_all_of_them_and_no_graph_call() {
    let rig = rig(true).await;
    let bad = json!({
        "name": "Spring Sale!", "language": "english", "category": "PROMO",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "{{1}} {{2}}"},
            {"type": "BODY", "text": "{{1}}{{2}} buy now {{3}}"},
            {"type": "FOOTER", "text": "x".repeat(61)},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Go", "url": "http://x.example/{{1}}/a"}]}
        ]
    });
    let r = call(&rig, "POST", &format!("/templates/{WABA}"), bad).await;
    assert_eq!(r.status, 422, "{r:?}");
    let v = r.body["violations"].as_array().unwrap();
    let codes: HashSet<&str> = v.iter().map(|x| x["code"].as_str().unwrap()).collect();
    for want in [
        "name_format",
        "language_format",
        "category",
        "too_many_variables",
        "example_missing",
        "variable_at_edge",
        "adjacent_variables",
        "too_long",
        "url_format",
    ] {
        assert!(codes.contains(want), "{want} missing from {v:#?}");
    }
    assert!(v.iter().all(|x| x["path"].is_string()));
    assert!(
        rig.sim
            .sim
            .requests()
            .iter()
            .all(|r| !r.path.contains("message_templates")),
        "nothing reached Meta"
    );
    // An unknown account is refused before anything else.
    let r = call(&rig, "POST", "/templates/999", order_update("x")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn an_approved_template_becomes_usable_and_a_rejected_one_keeps_its_reason() {
    let rig = rig(true).await;
    let r = call(
        &rig,
        "POST",
        &format!("/templates/{WABA}"),
        order_update("order_update"),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["status"], "PENDING");
    // Meta's review arrives as a status webhook through the real webhook handler.
    wait_status(&rig, "order_update", "APPROVED").await;
    let got = call(
        &rig,
        "GET",
        &format!("/templates/{WABA}/order_update/en_US"),
        Value::Null,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["category"], "UTILITY");
    assert_eq!(got.body["components"][0]["type"], "BODY");
    // The sender checks a job against the stored definition.
    let record = rig
        .submitter
        .store
        .template(WABA, "order_update", "en_US")
        .await
        .unwrap()
        .unwrap();
    let shape = whatsapp_core::policy::TemplateShape::from_definition(
        record.parameter_format.as_deref(),
        record.category.as_ref(),
        &serde_json::from_str(record.components.as_deref().unwrap()).unwrap(),
    );
    assert_eq!(shape.body_vars, ["1", "2"]);

    // Rejected by review: the reason is kept.
    let r = call(
        &rig,
        "POST",
        &format!("/templates/{WABA}"),
        order_update("scam_offer"),
    )
    .await;
    assert_eq!(r.status, 201);
    wait_status(&rig, "scam_offer", "REJECTED").await;
    let got = call(
        &rig,
        "GET",
        &format!("/templates/{WABA}/scam_offer/en_US"),
        Value::Null,
    )
    .await;
    assert_eq!(got.body["rejected_reason"], "INVALID_FORMAT");
    // A rejected template can be fixed by an edit; a pending one cannot be edited.
    let fix = json!({"components": order_update("x")["components"]});
    let r = call(
        &rig,
        "PUT",
        &format!("/templates/{WABA}/scam_offer/en_US"),
        fix.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(
        &rig,
        "PUT",
        &format!("/templates/{WABA}/scam_offer/en_US"),
        fix,
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (409, Some("not_editable"))
    );
}

#[tokio::test]
async fn edit_limits_of_approved_templates_are_enforced_locally() {
    let rig = rig(true).await;
    call(
        &rig,
        "POST",
        &format!("/templates/{WABA}"),
        order_update("receipt"),
    )
    .await;
    wait_status(&rig, "receipt", "APPROVED").await;
    let path = format!("/templates/{WABA}/receipt/en_US");
    let change = json!({"components": [{"type": "BODY", "text": "Hello {{1}}, order {{2}} is on its way.",
                                          "example": {"body_text": [["Ann", "8812"]]}}]});
    // The category of an approved template is locked.
    let mut recategorised = change.clone();
    recategorised["category"] = json!("MARKETING");
    let r = call(&rig, "PUT", &path, recategorised).await;
    assert_eq!(r.body["error"]["code"], "category_locked");
    let r = call(&rig, "PUT", &path, change.clone()).await;
    assert_eq!(r.status, 200, "{r:?}");
    wait_status(&rig, "receipt", "APPROVED").await;
    let edits_before = rig.sim.sim.requests().len();
    let r = call(&rig, "PUT", &path, change).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "edit_limit_day");
    assert_eq!(
        rig.sim.sim.requests().len(),
        edits_before,
        "refused locally"
    );
    // Invalid edits are refused with their violations.
    let r = call(
        &rig,
        "PUT",
        &path,
        json!({"components": [{"type": "BODY", "text": "{{1}}"}]}),
    )
    .await;
    assert_eq!(r.status, 422);

    // Delete: Meta drops it; our record says so at once, and the sender would refuse it.
    let r = call(&rig, "DELETE", &path, Value::Null).await;
    assert_eq!(r.status, 200);
    assert_eq!(status_of(&rig, "receipt").await.as_deref(), Some("DELETED"));
    assert!(rig.sim.sim.template_id(WABA, "receipt", "en_US").is_none());
}

#[tokio::test]
async fn the_sync_catches_a_missed_webhook_pages_through_and_reports_rate_limits() {
    // No webhooks at all: only the sync can tell us what Meta decided.
    let rig = rig(false).await;
    let r = call(
        &rig,
        "POST",
        &format!("/templates/{WABA}"),
        order_update("missed"),
    )
    .await;
    assert_eq!(r.status, 201);
    // 120 more templates Meta knows and we never heard of: two pages of 100.
    for i in 0..120 {
        rig.sim
            .sim
            .seed_template(
                WABA,
                json!({"name": format!("bulk_{i:03}"), "language": "en_US", "category": "UTILITY",
                       "components": [{"type": "BODY", "text": "Notice {{1}} for you.",
                                        "example": {"body_text": [["x"]]}}]}),
            )
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the review of "missed" happens
    assert_eq!(status_of(&rig, "missed").await.as_deref(), Some("PENDING"));

    // Rate limited: the caller hears 429 and nothing is half-written.
    rig.sim.sim.inject_fault(Fault {
        route: FaultRoute::Templates,
        latency_ms: 0,
        error: Some((429, 80007)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(1),
    });
    let r = call(
        &rig,
        "POST",
        &format!("/templates/{WABA}/sync"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.body["error"]["graph_code"], 80007);

    let r = call(
        &rig,
        "POST",
        &format!("/templates/{WABA}/sync"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["seen"], 121);
    assert_eq!(r.body["pages"], 2);
    assert_eq!(status_of(&rig, "missed").await.as_deref(), Some("APPROVED"));
    assert_eq!(
        status_of(&rig, "bulk_119").await.as_deref(),
        Some("APPROVED")
    );
}

#[tokio::test]
async fn a_send_ttl_and_the_2026_button_types_are_checked_locally_then_submitted() {
    let rig = rig(true).await;
    let mut too_long = order_update("ttl_too_long");
    too_long["message_send_ttl_seconds"] = json!(43_201);
    let r = call(&rig, "POST", &format!("/templates/{WABA}"), too_long).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.body["violations"][0]["code"], "ttl_range");
    assert_eq!(r.body["violations"][0]["path"], "message_send_ttl_seconds");
    assert!(rig.sim.sim.requests().is_empty(), "nothing reached Meta");

    let mut good = order_update("ttl_call_me");
    good["message_send_ttl_seconds"] = json!(3_600);
    good["components"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "BUTTONS", "buttons": [
            {"type": "VOICE_CALL", "text": "Call us"}, {"type": "REQUEST_CONTACT_INFO"}]}));
    let r = call(&rig, "POST", &format!("/templates/{WABA}"), good).await;
    assert_eq!(r.status, 201, "{r:?}");
    let sent = rig.sim.sim.requests();
    let create = sent.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(create.body["message_send_ttl_seconds"], 3_600);
    wait_status(&rig, "ttl_call_me", "APPROVED").await;
}

/// Lists through the real client; after the first page it deletes a template through the real
/// API, as another tool of the business might meanwhile: Meta's cursors go stale (131059).
struct DeletesAfterFirstPage<'a> {
    inner: &'a GraphHttpClient,
    deleted: std::sync::atomic::AtomicBool,
}

impl whatsapp_core::ports::TemplateApi for DeletesAfterFirstPage<'_> {
    async fn create_template(
        &self,
        waba_id: &str,
        t: &whatsapp_core::templates::TemplateSubmission,
        token: &str,
    ) -> Result<whatsapp_core::templates::CreatedTemplate, whatsapp_core::ports::GraphCallError>
    {
        self.inner.create_template(waba_id, t, token).await
    }

    async fn edit_template(
        &self,
        id: &str,
        edit: &Value,
        token: &str,
    ) -> Result<(), whatsapp_core::ports::GraphCallError> {
        self.inner.edit_template(id, edit, token).await
    }

    async fn delete_template(
        &self,
        waba_id: &str,
        name: &str,
        token: &str,
    ) -> Result<(), whatsapp_core::ports::GraphCallError> {
        self.inner.delete_template(waba_id, name, token).await
    }

    async fn list_templates(
        &self,
        waba_id: &str,
        after: Option<&str>,
        token: &str,
    ) -> Result<whatsapp_core::templates::TemplatePage, whatsapp_core::ports::GraphCallError> {
        let page = self.inner.list_templates(waba_id, after, token).await;
        if !self.deleted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.inner
                .delete_template(waba_id, "bulk_000", token)
                .await
                .unwrap();
        }
        page
    }
}

#[tokio::test]
async fn a_sync_whose_cursor_went_stale_lists_again_from_the_start() {
    let rig = rig(false).await;
    for i in 0..150 {
        rig.sim
            .sim
            .seed_template(
                WABA,
                json!({"name": format!("bulk_{i:03}"), "language": "en_US", "category": "UTILITY",
                       "components": [{"type": "BODY", "text": "Notice {{1}} for you.",
                                        "example": {"body_text": [["x"]]}}]}),
            )
            .unwrap();
    }
    let api = DeletesAfterFirstPage {
        inner: &rig.submitter.api,
        deleted: Default::default(),
    };
    let report = whatsapp_core::template_sync::sync_templates(
        &api,
        &rig.submitter.store,
        WABA,
        "tok",
        now(),
    )
    .await
    .unwrap();
    // Page 1 (100), then the stale cursor refused, then the whole listing again (149: one
    // was deleted) in two pages.
    assert_eq!(report.restarts, 1);
    assert_eq!((report.pages, report.seen), (3, 100 + 149));
    let listed = rig
        .sim
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/message_templates"))
        .map(|r| r.error_code)
        .collect::<Vec<_>>();
    assert_eq!(listed, vec![None, Some(131059), None, None]);
    assert_eq!(
        status_of(&rig, "bulk_149").await.as_deref(),
        Some("APPROVED")
    );
}
