//! The traffic `send-load` drives, and what it measures per message.
//!
//! - **reply**: free-form text inside the customer's service window (they wrote a minute ago),
//!   in full batches: the commonest traffic.
//! - **campaign**: business-initiated templates, marketing and utility in turn, to opted-in users
//!   who have not written: every message is outside a window, so each new user takes a slot of
//!   the portfolio's messaging limit (the number is at `TIER_100K`).
//! - **trickle**: replies that arrive one at a time, so each is a batch of one.
//!
//! On ministack a run covers the whole message: the sender, and the webhook for the customer's
//! message and every status. `scripts/cost.py` prices the figures (the `cost-json` line).
// Each example that includes this module uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::{Value, json};
use simulator::{Fault, FaultRoute, PhoneChange, SimConfig, Simulator, Tier};
use whatsapp_core::policy::MessagingTier;
use whatsapp_core::ports::{
    ConsentEvent, ContactStore, SessionStore, TemplateDefinition, TemplateStore, UserKey,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

pub const WABA: &str = "102290129340398";
pub const PHONE: &str = "106540352242922";
pub const MARKETING: &str = "spring_sale";
pub const UTILITY: &str = "order_ready";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Reply,
    Campaign,
    Trickle,
}

impl Scenario {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reply" => Ok(Scenario::Reply),
            "campaign" => Ok(Scenario::Campaign),
            "trickle" => Ok(Scenario::Trickle),
            other => Err(format!(
                "unknown scenario {other:?}: reply, campaign or trickle"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Reply => "reply",
            Scenario::Campaign => "campaign",
            Scenario::Trickle => "trickle",
        }
    }

    /// Whether its recipients wrote within the last 24 h.
    pub fn in_window(self) -> bool {
        self != Scenario::Campaign
    }

    /// The most records one invocation gets: a trickle's jobs come one at a time.
    pub fn batch_size(self, asked: usize) -> usize {
        match self {
            Scenario::Trickle => 1,
            _ => asked,
        }
    }

    /// Job `i` of the run.
    pub fn job(self, i: usize) -> String {
        let message = match self {
            Scenario::Campaign => {
                let name = if i.is_multiple_of(2) {
                    MARKETING
                } else {
                    UTILITY
                };
                json!({"type": "template", "template": {"name": name,
                       "language": {"code": "en_US"},
                       "components": [{"type": "body", "parameters": [
                           {"type": "text", "text": "Ann"}, {"type": "text", "text": format!("{i}")}]}]}})
            }
            _ => json!({"type": "text", "text": {"body": "Your order has shipped."}}),
        };
        json!({"version": 1, "idempotency_key": format!("load-{i}"), "phone_number_id": PHONE,
               "to": {"wa_id": user(i)}, "message": message})
        .to_string()
    }
}

/// Recipient `i`.
pub fn user(i: usize) -> String {
    format!("4477{i:08}")
}

/// The campaign's two templates as Meta holds them (name, category, components).
pub fn templates() -> [(&'static str, &'static str, Value); 2] {
    let components = json!([{"type": "BODY", "text": "Hello {{1}}, your code is {{2}}.",
                             "example": {"body_text": [["Ann", "42"]]}}]);
    [
        (MARKETING, "MARKETING", components.clone()),
        (UTILITY, "UTILITY", components),
    ]
}

pub async fn start_sim(
    mps: u32,
    latency_ms: u64,
    scenario: Scenario,
    jobs: usize,
    now: i64,
) -> Result<simulator::RunningSimulator, Error> {
    let sim = Simulator::start(
        SimConfig {
            default_mps: mps,
            callback_url: None,
            ..SimConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    sim.sim.create_waba(WABA, Tier::Unlimited);
    sim.sim.create_phone_number(PHONE, WABA, "15550783881");
    sim.sim.set_phone_state(
        PHONE,
        PhoneChange {
            mps: Some(mps),
            ..PhoneChange::default()
        },
    )?;
    sim.sim.add_token("tok", None);
    sim.sim.inject_fault(Fault {
        route: FaultRoute::Messages,
        latency_ms,
        error: None,
        hang_before_ms: None,
        hang_after_ms: None,
        times: None,
    });
    for (name, category, components) in templates() {
        sim.sim.seed_template(
            WABA,
            json!({"name": name, "language": "en_US", "category": category, "components": components}),
        )
        .map_err(|e| format!("seeding template {name}: {e:?}"))?;
    }
    // Reply and trickle: every recipient wrote a minute ago, the commonest traffic. Campaign:
    // nobody did.
    for i in 0..jobs {
        let uid = sim.sim.add_user(Some(&user(i)), None, true);
        if scenario.in_window() {
            sim.sim.set_last_inbound(&uid, PHONE, now - 60);
        }
    }
    Ok(sim)
}

/// Our own records before the run, as the webhook, the template sync, the consent flow and
/// the poller would have stored them: windows (reply, trickle), or approved templates and
/// opt-ins (campaign). `windows`: store the windows here (the memory backend; on ministack the
/// customers' messages open them through the webhook).
pub async fn seed_records(
    scenario: Scenario,
    windows: bool,
    jobs: usize,
    now: i64,
    sessions: &impl SessionStore,
    contacts: &impl ContactStore,
    template_store: &impl TemplateStore,
) -> Result<(), Error> {
    for i in 0..jobs {
        let key = UserKey {
            phone_number_id: PHONE.into(),
            user: user(i),
        };
        match scenario.in_window() {
            true if windows => {
                sessions.record_inbound(&key, now - 60, false).await?;
            }
            true => {}
            false => {
                contacts
                    .record_consent(&key, ConsentEvent::OptIn, now - 3600)
                    .await?
            }
        }
    }
    if !scenario.in_window() {
        for (name, category, components) in templates() {
            template_store
                .put_definition(
                    WABA,
                    &TemplateDefinition {
                        name: name.into(),
                        language: "en_US".into(),
                        template_id: Some(format!("tpl-{name}")),
                        status: "APPROVED".into(),
                        category: category.into(),
                        parameter_format: Some("POSITIONAL".into()),
                        components,
                        rejected_reason: None,
                    },
                    now - 3600,
                )
                .await?;
        }
    }
    Ok(())
}

/// The tier the number's portfolio is at: a campaign reaches new users, each taking a slot.
pub fn tier(scenario: Scenario) -> Option<MessagingTier> {
    (!scenario.in_window()).then_some(MessagingTier::Tier100K)
}

/// What one run measured, per message.
#[derive(Debug, Default, Clone, Copy)]
pub struct PerMessage {
    /// The sender's invocations.
    pub invocations: f64,
    /// The sender's handler time, ms (what Lambda bills).
    pub handler_ms: f64,
    /// The webhook's invocations (a customer's message, each status) and handler time.
    pub webhook_invocations: f64,
    pub webhook_ms: f64,
    /// SQS requests: the producer's send, the event source's receive and delete, the outcome.
    pub sqs_requests: f64,
    pub read_units: f64,
    pub write_units: f64,
}

/// Prints what one run measured per message (`scripts/cost.py` prices it, from the
/// `cost-json` line: one price list, in one place).
pub fn print_measured(scenario: Scenario, m: &PerMessage) {
    println!(
        "per message ({}): sender {:.2} invocations and {:.1} ms, webhook {:.2} and {:.1} ms, {:.2} SQS requests, {:.2} read units, {:.2} write units",
        scenario.name(),
        m.invocations,
        m.handler_ms,
        m.webhook_invocations,
        m.webhook_ms,
        m.sqs_requests,
        m.read_units,
        m.write_units,
    );
}
