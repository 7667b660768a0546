//! The Cloud API changes of 2025–26 (reference §6c) through the sender on ministack against the
//! simulator, which refuses each from its own rule (`simulator::Restrictions`, experiment
//! groups, US marketing, OTP templates to business-scoped ids): the errors' classes and side
//! effects, the per-user marketing hold after 131049, and OTP templates sent by phone number.

use serde_json::{Value, json};
use simulator::Restrictions;
use whatsapp_core::ports::{
    ConsentEvent, ContactStore, MessageStore, TemplateDefinition, TemplateStore, UserKey,
};

use crate::sender::{
    config, consent, enqueue_and_receive, graph, invoke, job, outcomes, rig, seed_template,
    sender_with, template, text, user,
};
use crate::support::now;
use crate::webhook::{PHONE, WABA, eventually};

fn contacts(rig: &crate::sender::Rig) -> whatsapp_aws::DynamoContactStore {
    whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    )
}

fn messages(rig: &crate::sender::Rig) -> whatsapp_aws::DynamoMessageStore {
    whatsapp_aws::DynamoMessageStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.messages_table,
    )
}

fn restrict(rig: &crate::sender::Rig, restrictions: Restrictions) {
    rig.sim.sim.set_restrictions(WABA, restrictions);
}

fn key(user: &str) -> UserKey {
    UserKey {
        phone_number_id: PHONE.into(),
        user: user.into(),
    }
}

fn by_user_id(key: &str, user_id: &str, message: Value) -> String {
    json!({"version": 1, "idempotency_key": key, "phone_number_id": PHONE,
           "to": {"user_id": user_id}, "message": message})
    .to_string()
}

/// Graph POSTs to `/messages` the simulator saw, and the error code each got.
fn posts(rig: &crate::sender::Rig) -> Vec<Option<i64>> {
    rig.sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .map(|r| r.error_code)
        .collect()
}

/// Enqueues one job, runs the sender on it at `at_ms` (the batch must not fail), and returns
/// its one outcome.
pub(crate) async fn send_one<G: whatsapp_core::ports::GraphApi>(
    rig: &crate::sender::Rig,
    sender: &sender::Sender<sender::aws::AwsSenderPorts<G>>,
    body: String,
    at_ms: i64,
) -> sender::Outcome {
    let r = enqueue_and_receive(rig, &[body]).await;
    assert!(
        invoke(rig, sender, &r, at_ms)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(rig).await;
    assert_eq!(out.len(), 1, "{out:?}");
    out.into_iter().next().unwrap()
}

#[tokio::test]
async fn terminal_2026_refusals_end_the_job_once_with_their_own_reason() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    let sender = sender_with(&rig, graph(&rig), config());
    let t0 = now() * 1000;

    // 130497: the account may not message users in this country.
    user(&rig, "5511987650001", true).await;
    restrict(
        &rig,
        Restrictions {
            barred_countries: ["BR".to_owned()].into(),
            ..Restrictions::default()
        },
    );
    let r = enqueue_and_receive(&rig, &[job("c-barred", "5511987650001", text("a"))]).await;
    assert!(
        invoke(&rig, &sender, &r, t0)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason.as_deref(), Some("country_restricted"));
    assert_eq!(out[0].error.as_ref().unwrap().code, 130497);
    // The same job again answers from the record: no second call.
    let again = enqueue_and_receive(&rig, &[job("c-barred", "5511987650001", text("a"))]).await;
    invoke(&rig, &sender, &again, t0 + 1_000).await;
    assert_eq!(
        outcomes(&rig).await[0].reason.as_deref(),
        Some("country_restricted")
    );
    assert_eq!(posts(&rig), vec![Some(130497)]);

    // 131063: marketing is disabled on the Cloud API for this account (an operator alert).
    let uid = user(&rig, "447700900501", true).await;
    consent(&rig, &uid, ConsentEvent::OptIn).await;
    restrict(
        &rig,
        Restrictions {
            marketing_on_cloud_disabled: true,
            ..Restrictions::default()
        },
    );
    let r = enqueue_and_receive(
        &rig,
        &[job(
            "c-mm",
            "447700900501",
            template("spring_sale", &["Ann", "7"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &r, t0).await;
    let out = outcomes(&rig).await;
    assert_eq!(
        out[0].reason.as_deref(),
        Some("marketing_messages_required")
    );
    // Free-form still goes through the Cloud API.
    let r = enqueue_and_receive(&rig, &[job("c-mm-text", "447700900501", text("b"))]).await;
    invoke(&rig, &sender, &r, t0 + 7_000).await;
    assert_eq!(outcomes(&rig).await[0].outcome, sender::Verdict::Accepted);
    restrict(&rig, Restrictions::default());

    // 131037: a 555 number without an approved display name sends nothing.
    // (The rig's number is +1 555 078 3881.)
    rig.sim.sim.set_name_status(PHONE, "PENDING_REVIEW");
    user(&rig, "447700900502", true).await;
    let r = enqueue_and_receive(&rig, &[job("c-555", "447700900502", text("c"))]).await;
    invoke(&rig, &sender, &r, t0 + 14_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].reason.as_deref(), Some("display_name_not_approved"));
    assert_eq!(out[0].error.as_ref().unwrap().code, 131037);
}

#[tokio::test]
async fn a_classification_hold_waits_hours_then_sends() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    let uid = user(&rig, "447700900511", true).await;
    consent(&rig, &uid, ConsentEvent::OptIn).await;
    let sender = sender_with(&rig, graph(&rig), config());
    let t0 = now() * 1000;
    restrict(
        &rig,
        Restrictions {
            classification_hold_until: Some(now() + 3_600),
            ..Restrictions::default()
        },
    );
    let r = enqueue_and_receive(
        &rig,
        &[job(
            "c-131064",
            "447700900511",
            template("order_ready", &["Ann", "7"]),
        )],
    )
    .await;
    assert_eq!(
        invoke(&rig, &sender, &r, t0)
            .await
            .batch_item_failures
            .len(),
        1
    );
    assert!(outcomes(&rig).await.is_empty(), "a wait, not a verdict");
    // Two hours on, still held: 131064 is never retried fast.
    assert_eq!(
        invoke(&rig, &sender, &r, t0 + 2 * 3_600_000)
            .await
            .batch_item_failures
            .len(),
        1
    );
    assert_eq!(posts(&rig), vec![Some(131064)]);
    restrict(&rig, Restrictions::default());
    invoke(&rig, &sender, &r, t0 + 8 * 3_600_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(
        (out[0].outcome, out[0].attempts),
        (sender::Verdict::Accepted, 1)
    );
}

/// Meta refuses marketing to US numbers with a failed 131049 status; from then on no marketing
/// job to that user calls Meta for 24 h, while utility still goes.
#[tokio::test]
async fn after_a_131049_status_marketing_to_that_user_waits_a_day_from_any_job() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    seed_template(&rig, "order_ready", "UTILITY", "APPROVED").await;
    let uid = user(&rig, "16505550101", true).await;
    consent(&rig, &uid, ConsentEvent::OptIn).await;
    let sender = sender_with(&rig, graph(&rig), config());
    let t0 = now() * 1000;

    let r = enqueue_and_receive(
        &rig,
        &[job(
            "c-m1",
            "16505550101",
            template("spring_sale", &["Ann", "7"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &r, t0).await;
    let first = outcomes(&rig).await;
    assert_eq!(first[0].outcome, sender::Verdict::Accepted);
    let wamid = first[0].wamid.clone().unwrap();
    let store = messages(&rig);
    eventually("the failed 131049 status", || {
        let s = store.clone();
        let w = wamid.clone();
        async move { s.message(&w).await.unwrap().and_then(|m| m.error_code) == Some(131049) }
    })
    .await;
    let held = contacts(&rig).consent(&key(&uid)).await.unwrap();
    assert!(held.marketing_held_until(now()).is_some(), "{held:?}");

    // Another producer's marketing job to the same user: held, no Graph call.
    let r = enqueue_and_receive(
        &rig,
        &[job(
            "c-m2",
            "16505550101",
            template("spring_sale", &["Ann", "8"]),
        )],
    )
    .await;
    assert_eq!(
        invoke(&rig, &sender, &r, t0 + 10_000)
            .await
            .batch_item_failures
            .len(),
        1
    );
    assert!(outcomes(&rig).await.is_empty());
    assert_eq!(posts(&rig).len(), 1, "no marketing resend within 24 h");
    assert_eq!(rig.sim.sim.excessive_marketing_retries(WABA), 0);

    // Utility to the same user is not held (past the pair-rate gap).
    rig.sim.sim.advance_clock(10);
    let r = enqueue_and_receive(
        &rig,
        &[job(
            "c-u1",
            "16505550101",
            template("order_ready", &["Ann", "9"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &r, t0 + 20_000).await;
    assert_eq!(outcomes(&rig).await[0].outcome, sender::Verdict::Accepted);

    // A marketing job whose not_after comes before the hold ends gets its verdict now.
    let soon = chrono::DateTime::from_timestamp(now() + 3_600, 0).unwrap();
    let body = json!({"version": 1, "idempotency_key": "c-m3", "phone_number_id": PHONE,
        "to": {"wa_id": "16505550101"}, "message": template("spring_sale", &["Ann", "1"]),
        "not_after": soon.to_rfc3339()})
    .to_string();
    let r = enqueue_and_receive(&rig, &[body]).await;
    invoke(&rig, &sender, &r, t0 + 30_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].reason.as_deref(), Some("expired"));
    assert!(out[0].detail.as_deref().unwrap().contains("131049"));
}

/// Stores an authentication template with a copy-code OTP button in the simulator (approved)
/// and our table; `known_otp`: whether our stored definition shows the button.
async fn seed_otp_template(rig: &crate::sender::Rig, name: &str, known_otp: bool) {
    let body = json!({"type": "BODY", "text": "Your code {{1}} is valid for 10 minutes.",
                      "example": {"body_text": [["123456"]]}});
    let buttons = json!({"type": "BUTTONS",
        "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]});
    let id = rig
        .sim
        .sim
        .seed_template(
            WABA,
            json!({"name": name, "language": "en_US", "category": "AUTHENTICATION",
                   "components": [body, buttons]}),
        )
        .unwrap();
    let stored = if known_otp {
        json!([body, buttons])
    } else {
        json!([body])
    };
    whatsapp_aws::DynamoTemplateStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.templates_table,
    )
    .put_definition(
        WABA,
        &TemplateDefinition {
            name: name.into(),
            language: "en_US".into(),
            template_id: Some(id),
            status: "APPROVED".into(),
            category: "AUTHENTICATION".into(),
            parameter_format: Some("POSITIONAL".into()),
            components: stored,
            rejected_reason: None,
        },
        now(),
    )
    .await
    .unwrap();
}

fn otp(name: &str, with_button: bool) -> Value {
    let mut components =
        vec![json!({"type": "body", "parameters": [{"type": "text", "text": "123456"}]})];
    if with_button {
        components.push(json!({"type": "button", "sub_type": "url", "index": 0,
                               "parameters": [{"type": "text", "text": "123456"}]}));
    }
    json!({"type": "template", "template": {"name": name, "language": {"code": "en_US"},
           "components": components}})
}

#[tokio::test]
async fn otp_templates_to_a_business_scoped_id_go_to_the_phone_number_we_know() {
    let rig = rig(|_| {}).await;
    seed_otp_template(&rig, "login_code", true).await;
    seed_otp_template(&rig, "login_code_legacy", false).await;
    let sender = sender_with(&rig, graph(&rig), config());
    let t0 = now() * 1000;
    // The user wrote: the webhook learnt both their BSUID and phone number.
    let uid = user(&rig, "447700900521", true).await;
    eventually("the alias", || {
        let c = contacts(&rig);
        let u = uid.clone();
        async move { c.phone_of(PHONE, &u).await.unwrap().is_some() }
    })
    .await;

    // Known OTP template: sent by phone number before Meta could refuse it.
    let r = enqueue_and_receive(&rig, &[by_user_id("c-otp", &uid, otp("login_code", true))]).await;
    invoke(&rig, &sender, &r, t0).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].outcome, sender::Verdict::Accepted, "{out:?}");
    let sent = rig.sim.sim.requests();
    let post = sent
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap();
    assert_eq!(post.body["to"], "447700900521");
    assert!(post.body.get("recipient").is_none());

    // Our copy does not show the OTP button: Meta answers 131062, and the next attempt goes by
    // phone number (past the pair-rate gap).
    rig.sim.sim.advance_clock(10);
    let r = enqueue_and_receive(
        &rig,
        &[by_user_id(
            "c-otp-legacy",
            &uid,
            otp("login_code_legacy", false),
        )],
    )
    .await;
    assert_eq!(
        invoke(&rig, &sender, &r, t0 + 7_000)
            .await
            .batch_item_failures
            .len(),
        1
    );
    invoke(&rig, &sender, &r, t0 + 14_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].outcome, sender::Verdict::Accepted, "{out:?}");
    let codes: Vec<_> = posts(&rig).into_iter().skip(1).collect();
    assert_eq!(codes, vec![Some(131062), None]);

    // A user whose phone number we never saw: refused before any call.
    let hidden = rig.sim.sim.add_user(None, Some("GB.9988776655"), true);
    consent(&rig, &hidden, ConsentEvent::OptIn).await;
    let before = posts(&rig).len();
    let r = enqueue_and_receive(
        &rig,
        &[by_user_id("c-otp-hidden", &hidden, otp("login_code", true))],
    )
    .await;
    invoke(&rig, &sender, &r, t0 + 21_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out[0].reason.as_deref(), Some("bsuid_not_supported"));
    assert_eq!(posts(&rig).len(), before);
}

/// 130472 arrives as a failed status: the job stays `accepted` (Meta took it), the status
/// records the code, and nothing is resent.
#[tokio::test]
async fn an_experiment_group_user_fails_in_the_status_and_is_not_resent() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    let uid = user(&rig, "447700900531", true).await;
    consent(&rig, &uid, ConsentEvent::OptIn).await;
    rig.sim.sim.set_experiment_group(&uid, true);
    let sender = sender_with(&rig, graph(&rig), config());
    let r = enqueue_and_receive(
        &rig,
        &[job(
            "c-exp",
            "447700900531",
            template("spring_sale", &["Ann", "7"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &r, now() * 1000).await;
    let wamid = outcomes(&rig).await[0].wamid.clone().unwrap();
    let store = messages(&rig);
    eventually("the failed 130472 status", || {
        let s = store.clone();
        let w = wamid.clone();
        async move { s.message(&w).await.unwrap().and_then(|m| m.error_code) == Some(130472) }
    })
    .await;
    let again = enqueue_and_receive(
        &rig,
        &[job(
            "c-exp",
            "447700900531",
            template("spring_sale", &["Ann", "7"]),
        )],
    )
    .await;
    invoke(&rig, &sender, &again, now() * 1000 + 60_000).await;
    assert_eq!(posts(&rig).len(), 1);
    // Not a marketing hold: that is 131049's.
    let c = contacts(&rig).consent(&key(&uid)).await.unwrap();
    assert!(c.marketing_held_at.is_none());
}

/// 137000: a job carrying the recipient's identity key hash is sent with it; Meta refuses it
/// when the user's key changed since (terminal, `identity_key_mismatch`), and takes it when
/// the hash is current.
#[tokio::test]
async fn a_stale_identity_key_hash_is_refused_and_a_current_one_goes() {
    let rig = rig(|_| {}).await;
    let sender = sender_with(&rig, graph(&rig), config());
    let uid = user(&rig, "447700900701", true).await;
    rig.sim.sim.set_identity_key(&uid, "KEY.NEW=");
    let with_hash = |key: &str, hash: &str| {
        json!({"version": 1, "idempotency_key": key, "phone_number_id": PHONE,
               "to": {"wa_id": "447700900701"}, "recipient_identity_key_hash": hash,
               "message": text("your code is ready")})
        .to_string()
    };
    let t0 = now() * 1000;
    let stale = send_one(&rig, &sender, with_hash("ik-stale", "KEY.OLD="), t0).await;
    assert_eq!(stale.reason.as_deref(), Some("identity_key_mismatch"));
    assert_eq!(stale.error.as_ref().unwrap().code, 137000);
    rig.sim.sim.advance_clock(10);
    let current = send_one(
        &rig,
        &sender,
        with_hash("ik-current", "KEY.NEW="),
        t0 + 10_000,
    )
    .await;
    assert_eq!(current.outcome, sender::Verdict::Accepted);
    // The hash went to Meta as `recipient_identity_key_hash` both times, and nothing else did.
    assert_eq!(posts(&rig), vec![Some(137000), None]);
}

/// The Marketing Messages API: a number set to `marketing_messages` sends its marketing
/// templates there (and everything else through `/messages`); a `cloud` number that Meta
/// refuses with 131063 resends once through it when the fallback is on, with every gate
/// unchanged; the simulator refuses the route before the portfolio accepted its terms.
#[tokio::test]
async fn marketing_templates_go_through_the_marketing_messages_api_when_set_or_after_131063() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    seed_template(&rig, "order_update", "UTILITY", "APPROVED").await;
    let routes = |rig: &crate::sender::Rig| -> Vec<&'static str> {
        rig.sim.sim.messages().iter().map(|m| m.api).collect()
    };
    let uid = user(&rig, "447700900801", true).await;
    consent(&rig, &uid, ConsentEvent::OptIn).await;
    let t0 = now() * 1000;

    // Not onboarded yet: the route refuses (terminal), and nothing is sent.
    let mut mm = config();
    mm.marketing_messages_numbers = [PHONE.to_owned()].into();
    let sender = sender_with(&rig, graph(&rig), mm);
    let o = send_one(
        &rig,
        &sender,
        job(
            "mm-0",
            "447700900801",
            template("spring_sale", &["Ann", "7"]),
        ),
        t0,
    )
    .await;
    assert_eq!(o.outcome, sender::Verdict::Failed);
    assert_eq!(o.error.as_ref().unwrap().code, 100);
    assert!(routes(&rig).is_empty());

    // Onboarded: marketing through /marketing_messages, utility through /messages.
    restrict(
        &rig,
        Restrictions {
            marketing_messages_onboarded: true,
            ..Restrictions::default()
        },
    );
    rig.sim.sim.advance_clock(10);
    let o = send_one(
        &rig,
        &sender,
        job(
            "mm-1",
            "447700900801",
            template("spring_sale", &["Ann", "7"]),
        ),
        t0 + 10_000,
    )
    .await;
    assert_eq!(o.outcome, sender::Verdict::Accepted, "{o:?}");
    rig.sim.sim.advance_clock(10);
    let o = send_one(
        &rig,
        &sender,
        job(
            "mm-2",
            "447700900801",
            template("order_update", &["Ann", "7"]),
        ),
        t0 + 20_000,
    )
    .await;
    assert_eq!(o.outcome, sender::Verdict::Accepted, "{o:?}");
    assert_eq!(routes(&rig), ["marketing_messages", "messages"]);

    // A `cloud` number whose account has marketing disabled on the Cloud API: without the
    // fallback the job fails `marketing_messages_required`; with it, it goes on the next try.
    restrict(
        &rig,
        Restrictions {
            marketing_on_cloud_disabled: true,
            marketing_messages_onboarded: true,
            ..Restrictions::default()
        },
    );
    let cloud = sender_with(&rig, graph(&rig), config());
    rig.sim.sim.advance_clock(10);
    let o = send_one(
        &rig,
        &cloud,
        job(
            "mm-3",
            "447700900801",
            template("spring_sale", &["Ann", "7"]),
        ),
        t0 + 30_000,
    )
    .await;
    assert_eq!(o.reason.as_deref(), Some("marketing_messages_required"));
    let mut fallback = config();
    fallback.marketing_messages_fallback = true;
    let fallback = sender_with(&rig, graph(&rig), fallback);
    rig.sim.sim.advance_clock(10);
    let r = enqueue_and_receive(
        &rig,
        &[job(
            "mm-4",
            "447700900801",
            template("spring_sale", &["Ann", "7"]),
        )],
    )
    .await;
    assert_eq!(
        invoke(&rig, &fallback, &r, t0 + 40_000)
            .await
            .batch_item_failures
            .len(),
        1
    );
    rig.sim.sim.advance_clock(10);
    invoke(&rig, &fallback, &r, t0 + 50_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, sender::Verdict::Accepted, "{out:?}");
    assert_eq!(
        routes(&rig),
        ["marketing_messages", "messages", "marketing_messages"]
    );
    // Two refusals with 131063 (mm-3, then mm-4's first try), each answered once.
    let codes = posts(&rig);
    assert_eq!(
        codes.iter().filter(|c| **c == Some(131063)).count(),
        2,
        "{codes:?}"
    );
}
