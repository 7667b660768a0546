//! The sender's gates, in their documented order, as pure functions over facts the caller
//! gathered. The sender reads the facts, calls these, and acts on the answer; nothing else
//! decides whether a job may be sent.
//!
//! | gate | refusal reasons, in the order they are checked | here |
//! |---|---|---|
//! | 1. number | `unknown_phone_number` | [`admit`] |
//! | (idempotency) | `idempotency_key_reused` | the sender, from the record |
//! | 1b. deadline | `expired` | [`deadline`], once the record shows no send: a job sent before its `not_after` keeps its verdict |
//! | 2. consent | `opted_out`, `no_opt_in`, `marketing_opt_out`, `marketing_paused` | [`decide`] |
//! | 3. window | `window_closed` | [`decide`] |
//! | 4. template | `template_unknown`, `template_paused`, `template_disabled`, `template_not_approved`, `template_definition_missing`, `template_parameters` | [`decide`] |
//! | 4b. addressing | `bsuid_not_supported` | [`addressing`]: an OTP authentication template to a business-scoped id goes to the phone number we know, or is refused |
//! | (hold) | none: a marketing template to a user Meta refused with 131049 in the last 24 h waits until then | [`decide`] ([`Decision::Defer`]) |
//! | 5. messaging limit | `messaging_limit` | [`messaging_limit`], over the atomic reservation |
//!
//! Gates 6 (throughput: [`crate::policy::slot_capacity`], [`crate::policy::granted`]) and 7
//! (pair rate: [`crate::policy::pair_turn`]) pace what passed; they never refuse.

use crate::job::OutboundMessage;
use crate::policy::{
    Consent, OutboundKind, ParameterProblem, Reach, TemplateCategoryKind, TemplateShape,
    WindowState, check_parameters,
};
use crate::templates::TemplateRecord;
use crate::webhook::TemplateStatus;

/// The settings the gates read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// A business-initiated message needs a recorded opt-in (`REQUIRE_OPT_IN`).
    pub require_opt_in: bool,
    /// Template categories an opted-out user still receives (`OPT_OUT_EXEMPT_CATEGORIES`,
    /// default authentication: a code the user asked for).
    pub opt_out_exempt: CategorySet,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            require_opt_in: true,
            opt_out_exempt: CategorySet::AUTHENTICATION,
        }
    }
}

/// A set of template categories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategorySet {
    pub marketing: bool,
    pub utility: bool,
    pub authentication: bool,
}

impl CategorySet {
    pub const NONE: CategorySet = CategorySet {
        marketing: false,
        utility: false,
        authentication: false,
    };
    pub const AUTHENTICATION: CategorySet = CategorySet {
        authentication: true,
        ..CategorySet::NONE
    };

    /// Whether a message of `kind` is a template of a category in the set.
    pub fn contains(&self, kind: OutboundKind) -> bool {
        match kind {
            OutboundKind::FreeForm => false,
            OutboundKind::Template(TemplateCategoryKind::Marketing) => self.marketing,
            OutboundKind::Template(TemplateCategoryKind::Utility) => self.utility,
            OutboundKind::Template(TemplateCategoryKind::Authentication) => self.authentication,
        }
    }

    /// Parses a comma-separated list of category names (`AUTHENTICATION,UTILITY`; empty: none).
    pub fn parse(list: &str) -> Result<CategorySet, String> {
        let mut set = CategorySet::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_uppercase().as_str() {
                "MARKETING" => set.marketing = true,
                "UTILITY" => set.utility = true,
                "AUTHENTICATION" => set.authentication = true,
                other => return Err(format!("{other:?} is not a template category")),
            }
        }
        Ok(set)
    }
}

/// Why a job is refused before anything reaches Meta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownPhoneNumber,
    /// `not_after` passed; `after_unknown_attempt` when an earlier attempt's outcome stayed
    /// unknown (no status webhook for it within the reconciliation window).
    Expired {
        after_unknown_attempt: bool,
    },
    IdempotencyKeyReused,
    OptedOut,
    NoOptIn,
    MarketingOptOut,
    MarketingPaused,
    WindowClosed,
    TemplateUnknown {
        name: String,
        language: String,
    },
    TemplatePaused {
        name: String,
    },
    TemplateDisabled {
        name: String,
    },
    TemplateNotApproved {
        name: String,
        status: String,
    },
    TemplateDefinitionMissing {
        name: String,
    },
    TemplateParameters {
        name: String,
        problems: Vec<ParameterProblem>,
    },
    MessagingLimit {
        limit: u32,
        retry_at: i64,
    },
    /// The template cannot go to a business-scoped id (131062) and we know no phone number
    /// for the user.
    BsuidNotSupported,
}

impl Refusal {
    /// Every reason a refusal can carry, in gate order.
    pub const REASONS: [&'static str; 16] = [
        "unknown_phone_number",
        "expired",
        "idempotency_key_reused",
        "opted_out",
        "no_opt_in",
        "marketing_opt_out",
        "marketing_paused",
        "window_closed",
        "template_unknown",
        "template_paused",
        "template_disabled",
        "template_not_approved",
        "template_definition_missing",
        "template_parameters",
        "messaging_limit",
        "bsuid_not_supported",
    ];

    /// The machine-readable reason of the outcome.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownPhoneNumber => "unknown_phone_number",
            Refusal::Expired { .. } => "expired",
            Refusal::IdempotencyKeyReused => "idempotency_key_reused",
            Refusal::OptedOut => "opted_out",
            Refusal::NoOptIn => "no_opt_in",
            Refusal::MarketingOptOut => "marketing_opt_out",
            Refusal::MarketingPaused => "marketing_paused",
            Refusal::WindowClosed => "window_closed",
            Refusal::TemplateUnknown { .. } => "template_unknown",
            Refusal::TemplatePaused { .. } => "template_paused",
            Refusal::TemplateDisabled { .. } => "template_disabled",
            Refusal::TemplateNotApproved { .. } => "template_not_approved",
            Refusal::TemplateDefinitionMissing { .. } => "template_definition_missing",
            Refusal::TemplateParameters { .. } => "template_parameters",
            Refusal::MessagingLimit { .. } => "messaging_limit",
            Refusal::BsuidNotSupported => "bsuid_not_supported",
        }
    }

    /// The human-readable detail of the outcome: never message text or phone numbers.
    pub fn detail(&self) -> String {
        match self {
            Refusal::UnknownPhoneNumber => {
                "this deployment does not send from that phone number id".into()
            }
            Refusal::Expired {
                after_unknown_attempt: false,
            } => "not_after passed before the job could be sent".into(),
            Refusal::Expired {
                after_unknown_attempt: true,
            } => "not_after passed; an earlier attempt's outcome is unknown (no status webhook for it within the reconciliation window)".into(),
            Refusal::IdempotencyKeyReused => {
                "a different job already used this idempotency key".into()
            }
            Refusal::OptedOut => {
                "the user opted out: no template or business-initiated message until they opt in again".into()
            }
            Refusal::NoOptIn => {
                "business-initiated messages need a recorded opt-in (REQUIRE_OPT_IN)".into()
            }
            Refusal::MarketingOptOut => "the user stopped marketing messages".into(),
            Refusal::MarketingPaused => {
                "marketing is paused on this number while its quality or status recovers".into()
            }
            Refusal::WindowClosed => {
                "free-form messages need an open customer-service window; send an approved template"
                    .into()
            }
            Refusal::TemplateUnknown { name, language } => {
                format!("no template {name} in language {language} for this account")
            }
            Refusal::TemplatePaused { name } => {
                format!("template {name} is paused for low quality")
            }
            Refusal::TemplateDisabled { name } => format!("template {name} is disabled"),
            Refusal::TemplateNotApproved { name, status } => {
                format!("template {name} is {status}")
            }
            Refusal::TemplateDefinitionMissing { name } => format!(
                "template {name} has no stored definition to check parameters against; sync templates"
            ),
            Refusal::TemplateParameters { name, problems } => format!(
                "{} parameter problem(s) against template {name}",
                problems.len()
            ),
            Refusal::MessagingLimit { limit, retry_at } => format!(
                "the portfolio reached {limit} unique users outside a service window in 24 h; room again at {retry_at}"
            ),
            Refusal::BsuidNotSupported => "Meta refuses one-tap, zero-tap and copy-code authentication templates to a business-scoped user id (131062), and no phone number is known for this user".into(),
        }
    }
}

/// Gate 1: the job names a number of this deployment.
pub fn admit(known_number: bool) -> Result<(), Refusal> {
    if known_number {
        Ok(())
    } else {
        Err(Refusal::UnknownPhoneNumber)
    }
}

/// Gate 1b: `not_after` (epoch ms) has not passed. Checked only once the idempotency record
/// shows the job was not sent, so a redelivery of a sent job keeps its verdict.
pub fn deadline(
    not_after_ms: Option<i64>,
    now_ms: i64,
    after_unknown_attempt: bool,
) -> Result<(), Refusal> {
    if not_after_ms.is_some_and(|t| t < now_ms) {
        Err(Refusal::Expired {
            after_unknown_attempt,
        })
    } else {
        Ok(())
    }
}

/// Whether the job is a conversation action (mark as read, with or without the typing
/// indicator) rather than a message: no window, consent, template or messaging-limit gate
/// applies to it, and no pair-rate turn (it reaches no one); the number's throughput still
/// paces it.
pub fn is_action(message: &OutboundMessage) -> bool {
    message.as_mark_read().is_some()
}

/// What a message is for policy: free-form, or a template of the category its stored record
/// gives. A template we know nothing about, or whose category is unknown, counts as marketing:
/// the most restricted category.
pub fn kind_of(message: &OutboundMessage, template: Option<&TemplateRecord>) -> OutboundKind {
    if message.as_template().is_none() {
        return OutboundKind::FreeForm;
    }
    OutboundKind::Template(template.and_then(|r| r.category.as_ref()).map_or(
        TemplateCategoryKind::Marketing,
        TemplateCategoryKind::from_category,
    ))
}

/// Whether a message sent at `now` to a user with `window` is business-initiated: the
/// customer-service window is closed.
pub fn business_initiated(window: &WindowState, now: i64) -> bool {
    !window.csw_open(now)
}

/// The facts [`decide`] reads beyond the window and template, so the caller reads nothing
/// else: consent for business-initiated messages and every template, the number's marketing
/// pause for marketing ones. Facts not needed never change the decision (a property test holds
/// this): only a free-form reply inside the window goes without reading consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub consent: bool,
    pub marketing_pause: bool,
}

pub fn needs(kind: OutboundKind, window: &WindowState, now: i64) -> Needs {
    let marketing = kind == OutboundKind::Template(TemplateCategoryKind::Marketing);
    Needs {
        consent: business_initiated(window, now) || kind != OutboundKind::FreeForm,
        marketing_pause: marketing,
    }
}

/// Everything gates 2–4 decide on.
#[derive(Debug, Clone, Copy)]
pub struct SendFacts<'a> {
    pub window: WindowState,
    /// The user's consent (both of their keys merged); the default when [`needs`] said no.
    pub consent: Consent,
    /// The number's marketing pause; `false` when [`needs`] said no.
    pub marketing_paused: bool,
    /// For a template message, what the templates table holds about it (`None`: unknown).
    pub template: Option<&'a TemplateRecord>,
}

/// The verdict of gates 2–4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Refuse(Refusal),
    /// The message may go. A business-initiated one must first take a slot of the portfolio's
    /// messaging limit (gate 5, [`messaging_limit`]).
    Pass {
        business_initiated: bool,
    },
    /// The message may go, but not before `until` (epoch s): Meta refused marketing to this
    /// user with 131049 less than 24 h ago ([`Consent::marketing_held_until`]), and resending
    /// sooner counts as an excessive retry against the account.
    Defer {
        until: i64,
    },
}

/// Gates 2–4, in order: consent, window, template.
pub fn decide(
    message: &OutboundMessage,
    facts: &SendFacts<'_>,
    now: i64,
    settings: &GateSettings,
) -> Decision {
    if is_action(message) {
        return Decision::Pass {
            business_initiated: false,
        };
    }
    let kind = kind_of(message, facts.template);
    let marketing = kind == OutboundKind::Template(TemplateCategoryKind::Marketing);
    match gates(message, kind, facts, now, settings) {
        Ok(business_initiated) => match facts.consent.marketing_held_until(now) {
            Some(until) if marketing => Decision::Defer { until },
            _ => Decision::Pass { business_initiated },
        },
        Err(r) => Decision::Refuse(r),
    }
}

fn gates(
    message: &OutboundMessage,
    kind: OutboundKind,
    facts: &SendFacts<'_>,
    now: i64,
    settings: &GateSettings,
) -> Result<bool, Refusal> {
    let bi = business_initiated(&facts.window, now);
    let marketing = kind == OutboundKind::Template(TemplateCategoryKind::Marketing);
    consent(&facts.consent, kind, bi, settings)?;
    if marketing && facts.marketing_paused {
        return Err(Refusal::MarketingPaused);
    }
    if facts.window.permits(kind, now).is_err() {
        return Err(Refusal::WindowClosed);
    }
    if let Some(template) = message.as_template() {
        template_gate(template, facts.template)?;
    }
    Ok(bi)
}

/// Gate 2: consent. An opted-out user gets no business-initiated message and no template,
/// inside the window or not, but for the exempt categories; a free-form reply inside the window
/// still goes (the opt-out's confirmation, and service when the user writes again).
fn consent(
    consent: &Consent,
    kind: OutboundKind,
    business_initiated: bool,
    settings: &GateSettings,
) -> Result<(), Refusal> {
    let template = kind != OutboundKind::FreeForm;
    let exempt = settings.opt_out_exempt.contains(kind);
    if consent.opted_out() && (business_initiated || template) && !exempt {
        return Err(Refusal::OptedOut);
    }
    if business_initiated && settings.require_opt_in && !consent.opted_in() {
        return Err(Refusal::NoOptIn);
    }
    let marketing = kind == OutboundKind::Template(TemplateCategoryKind::Marketing);
    if marketing && (consent.marketing_stopped() || consent.opted_out()) {
        return Err(Refusal::MarketingOptOut);
    }
    Ok(())
}

/// Gate 4: the template is known, approved, and the job's parameters fit its definition.
fn template_gate(
    message: &crate::job::TemplateMessage,
    record: Option<&TemplateRecord>,
) -> Result<(), Refusal> {
    let name = || message.name.clone();
    let Some(record) = record else {
        return Err(Refusal::TemplateUnknown {
            name: name(),
            language: message.language.code.clone(),
        });
    };
    match &record.status {
        Some(TemplateStatus::Approved) => {}
        Some(TemplateStatus::Paused) => return Err(Refusal::TemplatePaused { name: name() }),
        Some(TemplateStatus::Disabled) => return Err(Refusal::TemplateDisabled { name: name() }),
        other => {
            return Err(Refusal::TemplateNotApproved {
                name: name(),
                status: other
                    .as_ref()
                    .map_or("UNKNOWN", TemplateStatus::as_str)
                    .to_owned(),
            });
        }
    }
    let Some(components) = record
        .components
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
    else {
        return Err(Refusal::TemplateDefinitionMissing { name: name() });
    };
    let shape = TemplateShape::from_definition(
        record.parameter_format.as_deref(),
        record.category.as_ref(),
        &components,
    );
    let problems = check_parameters(&shape, message);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal::TemplateParameters {
            name: name(),
            problems,
        })
    }
}

/// Whether Meta refuses this template to a business-scoped user id (131062): an authentication
/// template with a one-time-password button (every OTP type is one-tap, zero-tap or copy-code).
pub fn needs_phone_number(template: Option<&TemplateRecord>) -> bool {
    let Some(record) = template else {
        return false;
    };
    let components = record
        .components
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let (Some(category), Some(components)) = (record.category.as_ref(), components) else {
        return false;
    };
    TemplateCategoryKind::from_category(category) == TemplateCategoryKind::Authentication
        && TemplateShape::from_definition(
            record.parameter_format.as_deref(),
            Some(category),
            &components,
        )
        .buttons
        .contains(&crate::policy::ButtonShape::Otp)
}

/// How a message is addressed at the Graph call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// As the job says.
    AsGiven,
    /// To the user's phone number instead of the business-scoped id the job named.
    PhoneNumber,
}

/// Gate 4b: a job that names a business-scoped id (`by_user_id`) for a message Meta takes only
/// by phone number (`needs_phone`: [`needs_phone_number`], or Meta answered 131062 before) goes
/// to the user's phone number if we know it (`phone_known`), and is refused otherwise.
pub fn addressing(
    by_user_id: bool,
    needs_phone: bool,
    phone_known: bool,
) -> Result<Addressing, Refusal> {
    match (by_user_id && needs_phone, phone_known) {
        (false, _) => Ok(Addressing::AsGiven),
        (true, true) => Ok(Addressing::PhoneNumber),
        (true, false) => Err(Refusal::BsuidNotSupported),
    }
}

/// Gate 5: what the atomic reservation of a messaging-limit slot answered.
pub fn messaging_limit(reach: Reach) -> Result<(), Refusal> {
    match reach {
        Reach::AlreadyCounted | Reach::Reserved => Ok(()),
        Reach::Refused(r) => Err(Refusal::MessagingLimit {
            limit: r.limit,
            retry_at: r.retry_at,
        }),
    }
}

#[cfg(test)]
mod tests;
