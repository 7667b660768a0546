//! The traffic `send-load` drives, and what it costs.
//!
//! - **reply**: free-form text inside the customer's service window (they wrote a minute ago),
//!   in full batches: the commonest traffic.
//! - **campaign**: business-initiated templates, marketing and utility in turn, to opted-in users
//!   who have not written: every message is outside a window, so each new user takes a slot of
//!   the portfolio's messaging limit (the number is at `TIER_100K`).
//! - **trickle**: replies that arrive one at a time, so each is a batch of one.
//!
//! The cost model prices what one run measured, per message, at us-east-1 list prices
//! (December 2026): the sender's side of a message. The webhook's side (inbound message,
//! statuses) is measured by the local run and priced on the cost page.
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

/// What one run measured, per accepted message, on the sender's side.
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
    /// Log bytes ingested (the sender's one EMF document per invocation).
    pub log_bytes: f64,
}

/// us-east-1 list prices, December 2026.
pub mod price {
    /// Lambda, per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda arm64, per GB-s.
    pub const LAMBDA_GB_S: f64 = 0.000_013_333_4;
    /// The sender's and the webhook's memory (the template's `MemorySize`), GB.
    pub const FUNCTION_GB: f64 = 0.125;
    /// DynamoDB on demand, per write and read request unit.
    pub const WRU: f64 = 0.625 / 1e6;
    pub const RRU: f64 = 0.125 / 1e6;
    /// DynamoDB provisioned, per WCU-hour and RCU-hour.
    pub const WCU_HOUR: f64 = 0.000_65;
    pub const RCU_HOUR: f64 = 0.000_13;
    /// The utilisation Application Auto Scaling holds provisioned tables at.
    pub const TARGET_UTILISATION: f64 = 0.70;
    /// SQS standard, per request.
    pub const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// CloudWatch Logs ingestion, per byte.
    pub const LOG_BYTE: f64 = 0.50 / 1e9;
}

/// Capacity mode of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    OnDemand,
    /// Provisioned, auto-scaled to hold [`price::TARGET_UTILISATION`]: a unit consumed costs
    /// one unit-second at that utilisation.
    Provisioned,
}

impl Capacity {
    pub fn write_unit(self) -> f64 {
        match self {
            Capacity::OnDemand => price::WRU,
            Capacity::Provisioned => price::WCU_HOUR / 3600.0 / price::TARGET_UTILISATION,
        }
    }

    pub fn read_unit(self) -> f64 {
        match self {
            Capacity::OnDemand => price::RRU,
            Capacity::Provisioned => price::RCU_HOUR / 3600.0 / price::TARGET_UTILISATION,
        }
    }
}

/// The sender's side of one message, priced: `(line, $ per million messages)`.
pub fn priced(m: &PerMessage, capacity: Capacity) -> Vec<(&'static str, f64)> {
    let million = 1e6;
    vec![
        (
            "Lambda requests",
            (m.invocations + m.webhook_invocations) * price::LAMBDA_REQUEST * million,
        ),
        (
            "Lambda duration",
            (m.handler_ms + m.webhook_ms) / 1000.0
                * price::FUNCTION_GB
                * price::LAMBDA_GB_S
                * million,
        ),
        (
            "DynamoDB writes",
            m.write_units * capacity.write_unit() * million,
        ),
        (
            "DynamoDB reads",
            m.read_units * capacity.read_unit() * million,
        ),
        ("SQS", m.sqs_requests * price::SQS_REQUEST * million),
        ("CloudWatch Logs", m.log_bytes * price::LOG_BYTE * million),
    ]
}

/// Prints the sender's side in both capacity modes.
pub fn print_costs(scenario: Scenario, m: &PerMessage) {
    println!(
        "per message ({}): sender {:.2} invocations and {:.1} ms, webhook {:.2} and {:.1} ms, {:.2} SQS requests, {:.2} read units, {:.2} write units, {:.0} log bytes",
        scenario.name(),
        m.invocations,
        m.handler_ms,
        m.webhook_invocations,
        m.webhook_ms,
        m.sqs_requests,
        m.read_units,
        m.write_units,
        m.log_bytes
    );
    let on_demand = priced(m, Capacity::OnDemand);
    let provisioned = priced(m, Capacity::Provisioned);
    println!(
        "    {:<20} {:>12} {:>12}   ($ per 1M messages)",
        "line", "on demand", "provisioned"
    );
    for ((line, a), (_, b)) in on_demand.iter().zip(&provisioned) {
        println!("    {line:<20} {a:>12.3} {b:>12.3}");
    }
    let total = |v: &[(&str, f64)]| v.iter().map(|(_, x)| x).sum::<f64>();
    println!(
        "    {:<20} {:>12.3} {:>12.3}",
        "total",
        total(&on_demand),
        total(&provisioned)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioned_units_cost_a_unit_second_at_seventy_percent() {
        // $0.00065 per WCU-hour held at 70 %: $0.258 per million write units consumed.
        let w = Capacity::Provisioned.write_unit() * 1e6;
        assert!((w - 0.2579).abs() < 0.001, "{w}");
        assert!((Capacity::OnDemand.write_unit() * 1e6 - 0.625).abs() < 1e-9);
    }
}
