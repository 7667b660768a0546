//! The rules a send job must meet, from WhatsApp's documented limits. Every violation is
//! collected, with its JSON path, so a producer fixes a job in one round trip.

use std::collections::HashSet;

use serde::Serialize;

use super::message::*;
use super::{JOB_VERSION, Recipient, SendJob};

/// Interactive messages: header, body, footer and each kind's own rules.
mod interactive;
use interactive::interactive;

/// Media attachments: exactly one source, and WhatsApp's limits for the file.
mod media;
pub use media::file_violations;
use media::media;

/// WhatsApp's limits, as data.
pub mod limits {
    pub const TEXT_BODY_MAX: usize = 4096;
    pub const CAPTION_MAX: usize = 1024;
    pub const INTERACTIVE_BODY_MAX: usize = 1024;
    pub const HEADER_TEXT_MAX: usize = 60;
    pub const FOOTER_MAX: usize = 60;
    pub const REPLY_BUTTONS_MAX: usize = 3;
    pub const REPLY_BUTTON_ID_MAX: usize = 256;
    pub const REPLY_BUTTON_TITLE_MAX: usize = 20;
    pub const LIST_BUTTON_MAX: usize = 20;
    pub const LIST_SECTIONS_MAX: usize = 10;
    pub const LIST_ROWS_MAX: usize = 10;
    pub const LIST_ROW_ID_MAX: usize = 200;
    pub const LIST_ROW_TITLE_MAX: usize = 24;
    pub const LIST_ROW_DESCRIPTION_MAX: usize = 72;
    pub const SECTION_TITLE_MAX: usize = 24;
    pub const PRODUCT_SECTIONS_MAX: usize = 10;
    pub const PRODUCTS_MAX: usize = 30;
    pub const CTA_DISPLAY_TEXT_MAX: usize = 20;
    pub const FLOW_CTA_MAX: usize = 30;
    pub const TEMPLATE_NAME_MAX: usize = 512;
    pub const TEMPLATE_BUTTON_INDEX_MAX: u8 = 9;
    pub const IDEMPOTENCY_KEY_MAX: usize = 200;
    pub const CORRELATION_ENTRIES_MAX: usize = 20;
    pub const CORRELATION_KEY_MAX: usize = 64;
    pub const CORRELATION_VALUE_MAX: usize = 1024;

    const MB: u64 = 1024 * 1024;

    /// Allowed MIME types and maximum size, per media type.
    pub fn media(kind: &str) -> Option<(&'static [&'static str], u64)> {
        Some(match kind {
            "audio" => (
                &[
                    "audio/aac",
                    "audio/amr",
                    "audio/mpeg",
                    "audio/mp4",
                    "audio/ogg",
                ][..],
                16 * MB,
            ),
            "document" => (
                &[
                    "text/plain",
                    "application/pdf",
                    "application/vnd.ms-excel",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/msword",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                ][..],
                100 * MB,
            ),
            "image" => (&["image/jpeg", "image/png"][..], 5 * MB),
            // 100 KB static, 500 KB animated: without knowing which, the larger bound.
            "sticker" => (&["image/webp"][..], 500 * 1024),
            "video" => (&["video/3gpp", "video/mp4"][..], 16 * MB),
            _ => return None,
        })
    }
}

/// What kind of rule was broken. Stable, machine-readable (`snake_case` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    UnsupportedVersion,
    Required,
    Empty,
    TooLong,
    TooMany,
    TooFew,
    Duplicate,
    InvalidFormat,
    OutOfRange,
    NotAllowed,
    ExactlyOneOf,
    MimeTypeNotAllowed,
    MediaTooLarge,
    /// A named object (an `s3` media) does not exist.
    NotFound,
    MixedParameterFormat,
    InvalidParameterText,
}

/// One broken rule: where (a JSON path), what (a code and the limit, if any), and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub path: String,
    pub code: ViolationCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    pub message: String,
}

struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn push(&mut self, path: &str, code: ViolationCode, limit: Option<u64>, message: String) {
        self.out.push(Violation {
            path: path.to_owned(),
            code,
            limit,
            message,
        });
    }

    fn text(&mut self, path: &str, value: &str, required: bool, max: usize) {
        let n = value.chars().count();
        if n == 0 && required {
            self.push(
                path,
                ViolationCode::Empty,
                None,
                format!("{path} must not be empty"),
            );
        } else if n > max {
            self.push(
                path,
                ViolationCode::TooLong,
                Some(max as u64),
                format!("{path} is {n} characters; the limit is {max}"),
            );
        }
    }

    fn count(&mut self, path: &str, n: usize, min: usize, max: usize) {
        if n < min {
            self.push(
                path,
                ViolationCode::TooFew,
                Some(min as u64),
                format!("{path} has {n} item(s); at least {min} required"),
            );
        } else if n > max {
            self.push(
                path,
                ViolationCode::TooMany,
                Some(max as u64),
                format!("{path} has {n} item(s); the limit is {max}"),
            );
        }
    }

    fn format(&mut self, path: &str, ok: bool, what: &str) {
        if !ok {
            self.push(
                path,
                ViolationCode::InvalidFormat,
                None,
                format!("{path} must be {what}"),
            );
        }
    }

    fn unique<'a>(&mut self, path: &str, values: impl IntoIterator<Item = &'a str>) {
        let mut seen = HashSet::new();
        for v in values {
            if !seen.insert(v) {
                self.push(
                    path,
                    ViolationCode::Duplicate,
                    None,
                    format!("{path} repeats a value"),
                );
                return;
            }
        }
    }
}

fn is_https_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

pub(super) fn job(j: &SendJob) -> Vec<Violation> {
    let mut c = Checker { out: Vec::new() };
    if j.version != JOB_VERSION {
        c.push(
            "version",
            ViolationCode::UnsupportedVersion,
            Some(u64::from(JOB_VERSION)),
            format!("version {} is not supported; use {JOB_VERSION}", j.version),
        );
    }
    let key = &j.idempotency_key;
    if key.is_empty() {
        c.push(
            "idempotency_key",
            ViolationCode::Required,
            None,
            "idempotency_key is required".into(),
        );
    } else {
        c.text("idempotency_key", key, true, limits::IDEMPOTENCY_KEY_MAX);
        c.format(
            "idempotency_key",
            key.bytes().all(|b| b.is_ascii_graphic()),
            "visible ASCII without spaces",
        );
    }
    c.format(
        "phone_number_id",
        !j.phone_number_id.is_empty()
            && j.phone_number_id.len() <= 32
            && j.phone_number_id.bytes().all(|b| b.is_ascii_digit()),
        "Meta's numeric phone-number id",
    );
    recipient(&mut c, &j.to);
    if let Some(r) = &j.reply_to {
        c.text("reply_to", r, true, 256);
    }
    if let Some(h) = &j.recipient_identity_key_hash {
        c.format(
            "recipient_identity_key_hash",
            !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| b.is_ascii_graphic()),
            "1–128 visible ASCII characters",
        );
    }
    c.count(
        "correlation",
        j.correlation.len(),
        0,
        limits::CORRELATION_ENTRIES_MAX,
    );
    for (k, v) in &j.correlation {
        c.text("correlation.<key>", k, true, limits::CORRELATION_KEY_MAX);
        c.text(
            &format!("correlation.{k}"),
            v,
            false,
            limits::CORRELATION_VALUE_MAX,
        );
    }
    message(&mut c, &j.message);
    c.out
}

fn recipient(c: &mut Checker, r: &Recipient) {
    match r {
        Recipient::WaId(w) => c.format(
            "to.wa_id",
            (7..=15).contains(&w.len())
                && w.bytes().all(|b| b.is_ascii_digit())
                && !w.starts_with('0'),
            "an international phone number of 7–15 digits without '+'",
        ),
        Recipient::UserId(u) => {
            let ok = u.split_once('.').is_some_and(|(cc, rest)| {
                let id = rest.strip_prefix("ENT.").unwrap_or(rest);
                cc.len() == 2
                    && cc.bytes().all(|b| b.is_ascii_uppercase())
                    && (1..=128).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric())
            });
            c.format(
                "to.user_id",
                ok,
                "a business-scoped user id such as US.1349120865530274",
            );
        }
    }
}

fn message(c: &mut Checker, m: &OutboundMessage) {
    match m {
        OutboundMessage::Text { text } => {
            c.text("message.text.body", &text.body, true, limits::TEXT_BODY_MAX)
        }
        OutboundMessage::Image { image } => media(c, "message.image", "image", image),
        OutboundMessage::Audio { audio } => media(c, "message.audio", "audio", audio),
        OutboundMessage::Video { video } => media(c, "message.video", "video", video),
        OutboundMessage::Document { document } => {
            media(c, "message.document", "document", document)
        }
        OutboundMessage::Sticker { sticker } => media(c, "message.sticker", "sticker", sticker),
        OutboundMessage::Location { location } => coordinates(c, "message.location", location),
        OutboundMessage::Contacts { contacts } => {
            c.count("message.contacts", contacts.len(), 1, 257);
            for (i, card) in contacts.iter().enumerate() {
                c.text(
                    &format!("message.contacts[{i}].name.formatted_name"),
                    &card.name.formatted_name,
                    true,
                    512,
                );
            }
        }
        OutboundMessage::Reaction { reaction } => {
            c.text(
                "message.reaction.message_id",
                &reaction.message_id,
                true,
                256,
            );
            // One emoji may be a multi-codepoint sequence (ZWJ, skin tones, flags).
            c.text("message.reaction.emoji", &reaction.emoji, false, 16);
        }
        OutboundMessage::Interactive { interactive } => self::interactive(c, interactive),
        OutboundMessage::Template { template } => self::template(c, template),
        OutboundMessage::MarkRead { mark_read } => c.text(
            "message.mark_read.message_id",
            &mark_read.message_id,
            true,
            256,
        ),
    }
}

fn coordinates(c: &mut Checker, path: &str, l: &LocationBody) {
    if !(-90.0..=90.0).contains(&l.latitude) {
        c.push(
            &format!("{path}.latitude"),
            ViolationCode::OutOfRange,
            None,
            "latitude must be within -90..90".into(),
        );
    }
    if !(-180.0..=180.0).contains(&l.longitude) {
        c.push(
            &format!("{path}.longitude"),
            ViolationCode::OutOfRange,
            None,
            "longitude must be within -180..180".into(),
        );
    }
}

fn template(c: &mut Checker, t: &TemplateMessage) {
    const P: &str = "message.template";
    c.format(
        &format!("{P}.name"),
        !t.name.is_empty()
            && t.name.len() <= limits::TEMPLATE_NAME_MAX
            && t.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "lowercase letters, digits and '_', at most 512 characters",
    );
    let code = &t.language.code;
    let lang_ok = match code.split_once('_') {
        None => (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase()),
        Some((l, r)) => {
            (2..=3).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_lowercase())
                && (2..=4).contains(&r.len())
                && r.bytes().all(|b| b.is_ascii_alphanumeric())
        }
    };
    c.format(
        &format!("{P}.language.code"),
        lang_ok,
        "a language code such as en_US or de",
    );
    if let Some(policy) = &t.language.policy {
        c.format(
            &format!("{P}.language.policy"),
            policy == "deterministic",
            "\"deterministic\"",
        );
    }
    let headers = t
        .components
        .iter()
        .filter(|x| matches!(x, TemplateComponent::Header { .. }))
        .count();
    let bodies = t
        .components
        .iter()
        .filter(|x| matches!(x, TemplateComponent::Body { .. }))
        .count();
    c.count(&format!("{P}.components[type=header]"), headers, 0, 1);
    c.count(&format!("{P}.components[type=body]"), bodies, 0, 1);
    let mut named = 0usize;
    let mut positional = 0usize;
    let mut indexes = Vec::new();
    for (n, comp) in t.components.iter().enumerate() {
        let path = format!("{P}.components[{n}]");
        match comp {
            TemplateComponent::Header { parameters } | TemplateComponent::Body { parameters } => {
                if matches!(comp, TemplateComponent::Header { .. }) {
                    c.count(&format!("{path}.parameters"), parameters.len(), 1, 1);
                }
                for (k, param) in parameters.iter().enumerate() {
                    let pp = format!("{path}.parameters[{k}]");
                    match param.parameter_name() {
                        Some(name) => {
                            named += 1;
                            c.format(
                                &format!("{pp}.parameter_name"),
                                name.starts_with(|ch: char| ch.is_ascii_lowercase())
                                    && name.bytes().all(|b| {
                                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
                                    }),
                                "lowercase letters, digits and '_', starting with a letter",
                            );
                        }
                        None if matches!(
                            param,
                            TemplateParameter::Text { .. }
                                | TemplateParameter::Currency { .. }
                                | TemplateParameter::DateTime { .. }
                        ) =>
                        {
                            positional += 1
                        }
                        None => {}
                    }
                    template_parameter(c, &pp, param);
                }
            }
            TemplateComponent::Button {
                index, parameters, ..
            } => {
                indexes.push(index.to_string());
                if *index > limits::TEMPLATE_BUTTON_INDEX_MAX {
                    c.push(
                        &format!("{path}.index"),
                        ViolationCode::OutOfRange,
                        Some(u64::from(limits::TEMPLATE_BUTTON_INDEX_MAX)),
                        "button index must be 0–9".into(),
                    );
                }
                c.count(&format!("{path}.parameters"), parameters.len(), 0, 1);
                for (k, p) in parameters.iter().enumerate() {
                    if let ButtonParameter::Text { text }
                    | ButtonParameter::Payload { payload: text }
                    | ButtonParameter::CouponCode { coupon_code: text } = p
                    {
                        c.text(&format!("{path}.parameters[{k}]"), text, true, 2000);
                    }
                }
            }
        }
    }
    if named > 0 && positional > 0 {
        c.push(
            &format!("{P}.components"),
            ViolationCode::MixedParameterFormat,
            None,
            "parameters must be all named (parameter_name) or all positional".into(),
        );
    }
    c.unique(
        &format!("{P}.components[type=button].index"),
        indexes.iter().map(String::as_str),
    );
}

fn template_parameter(c: &mut Checker, path: &str, p: &TemplateParameter) {
    match p {
        TemplateParameter::Text { text, .. } => {
            c.text(&format!("{path}.text"), text, true, limits::TEXT_BODY_MAX);
            // Meta refuses parameter text with newlines, tabs or more than 3 consecutive spaces.
            if text.contains(['\n', '\t']) || text.contains("    ") {
                c.push(
                    &format!("{path}.text"),
                    ViolationCode::InvalidParameterText,
                    None,
                    "template parameter text cannot contain newlines, tabs or 4+ consecutive spaces".into(),
                );
            }
        }
        TemplateParameter::Currency { currency, .. } => {
            c.text(
                &format!("{path}.currency.fallback_value"),
                &currency.fallback_value,
                true,
                64,
            );
            c.format(
                &format!("{path}.currency.code"),
                currency.code.len() == 3 && currency.code.bytes().all(|b| b.is_ascii_uppercase()),
                "an ISO 4217 code such as USD",
            );
        }
        TemplateParameter::DateTime { date_time, .. } => c.text(
            &format!("{path}.date_time.fallback_value"),
            &date_time.fallback_value,
            true,
            64,
        ),
        TemplateParameter::Image { image } => media(c, &format!("{path}.image"), "image", image),
        TemplateParameter::Video { video } => media(c, &format!("{path}.video"), "video", video),
        TemplateParameter::Document { document } => {
            media(c, &format!("{path}.document"), "document", document)
        }
        TemplateParameter::Location { location } => {
            coordinates(c, &format!("{path}.location"), location)
        }
    }
}
