//! Message-template definitions as platform teams submit them (Meta's create body), validated
//! locally before any Graph call, every violation reported at once with its path.
//!
//! The rules are Meta's (reference §1f): name and language format, the category's structure,
//! components and their limits, button types and counts, positional `{{1}}..{{n}}` or named
//! parameters matching `parameter_format`, an example for every parameter, no parameter at the
//! start or end of the body, no adjacent parameters.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::variables;
use crate::webhook::{TemplateCategory, TemplateStatus};

/// A template to create (or the new content of one to edit), in Meta's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSubmission {
    pub name: String,
    pub language: String,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<String>,
    pub components: Vec<Value>,
}

/// Meta's answer to a create: `{id, status, category}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTemplate {
    pub id: String,
    pub status: TemplateStatus,
    #[serde(default)]
    pub category: Option<TemplateCategory>,
}

/// One template as `GET /{waba}/message_templates` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateInfo {
    pub id: String,
    pub name: String,
    pub language: String,
    pub status: TemplateStatus,
    pub category: TemplateCategory,
    #[serde(default)]
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub components: Value,
    #[serde(default)]
    pub rejected_reason: Option<String>,
}

/// One page of the list, with the cursor of the next.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplatePage {
    #[serde(default)]
    pub data: Vec<TemplateInfo>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub cursors: Option<Cursors>,
    /// Present when there is a next page.
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cursors {
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
}

impl TemplatePage {
    /// The cursor of the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        let p = self.paging.as_ref()?;
        p.next.as_ref()?;
        p.cursors.as_ref()?.after.as_deref()
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateViolation {
    /// JSON path into the submission, e.g. `components[1].text`.
    pub path: String,
    /// Machine-readable: see [`validate`].
    pub code: String,
    pub message: String,
}

/// Meta's limits.
pub mod limits {
    pub const NAME: usize = 512;
    pub const HEADER_TEXT: usize = 60;
    pub const BODY_TEXT: usize = 1024;
    pub const FOOTER_TEXT: usize = 60;
    pub const BUTTONS: usize = 10;
    pub const BUTTON_TEXT: usize = 25;
    pub const URL_BUTTONS: usize = 2;
    pub const PHONE_BUTTONS: usize = 1;
    pub const COPY_CODE_BUTTONS: usize = 1;
    pub const PARAMETER_NAME: usize = 20;
    pub const URL: usize = 2000;
}

struct Out(Vec<TemplateViolation>);

impl Out {
    fn push(&mut self, path: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(TemplateViolation {
            path: path.into(),
            code: code.to_owned(),
            message: message.into(),
        });
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Every rule `t` breaks (empty when it may be submitted). Codes: `name_format`, `too_long`,
/// `language_format`, `category`, `parameter_format`, `required`, `duplicate_component`,
/// `unknown_component`, `header_format`, `too_many_variables`, `variables_not_allowed`,
/// `parameter_sequence`, `parameter_name`, `mixed_parameters`, `example_missing`,
/// `example_count`, `variable_at_edge`, `adjacent_variables`, `too_many_buttons`,
/// `button_type`, `button_text`, `url_format`, `category_structure`.
pub fn validate(t: &TemplateSubmission) -> Vec<TemplateViolation> {
    let mut out = Out(Vec::new());
    // Name and language.
    if t.name.is_empty()
        || !t
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        out.push(
            "name",
            "name_format",
            "lowercase letters, digits and underscores only",
        );
    }
    if t.name.len() > limits::NAME {
        out.push(
            "name",
            "too_long",
            format!("at most {} characters", limits::NAME),
        );
    }
    if !language_ok(&t.language) {
        out.push(
            "language",
            "language_format",
            "a language code such as en, en_US or pt_BR",
        );
    }
    let category = t.category.as_str();
    if !matches!(category, "MARKETING" | "UTILITY" | "AUTHENTICATION") {
        out.push(
            "category",
            "category",
            "MARKETING, UTILITY or AUTHENTICATION",
        );
    }
    let named = match t.parameter_format.as_deref() {
        None | Some("POSITIONAL") => false,
        Some("NAMED") => true,
        Some(_) => {
            out.push(
                "parameter_format",
                "parameter_format",
                "POSITIONAL or NAMED",
            );
            false
        }
    };

    // Components: one of each kind at most, BODY required.
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in t.components.iter().enumerate() {
        let path = format!("components[{i}]");
        let kind = str_of(c, "type").unwrap_or("").to_ascii_uppercase();
        let kind = match kind.as_str() {
            "HEADER" => "HEADER",
            "BODY" => "BODY",
            "FOOTER" => "FOOTER",
            "BUTTONS" => "BUTTONS",
            _ => {
                out.push(
                    format!("{path}.type"),
                    "unknown_component",
                    "HEADER, BODY, FOOTER or BUTTONS",
                );
                continue;
            }
        };
        if seen.contains(&kind) {
            out.push(
                format!("{path}.type"),
                "duplicate_component",
                format!("only one {kind}"),
            );
            continue;
        }
        seen.push(kind);
        match kind {
            "HEADER" => header(&mut out, &path, c, named, category),
            "BODY" => body(&mut out, &path, c, named, category),
            "FOOTER" => footer(&mut out, &path, c, category),
            _ => buttons(&mut out, &path, c, category),
        }
    }
    if !seen.contains(&"BODY") {
        out.push("components", "required", "a BODY component is required");
    }
    if category == "AUTHENTICATION" && !seen.contains(&"BUTTONS") {
        out.push(
            "components",
            "category_structure",
            "authentication templates need an OTP button",
        );
    }
    out.0
}

fn language_ok(l: &str) -> bool {
    let (lang, region) = l.split_once('_').map_or((l, None), |(a, b)| (a, Some(b)));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Checks the variables of `text` (at `path`): the format, the sequence, the names, and that
/// `examples` (how many example values were given, or the named examples) cover them.
/// Where a component keeps the examples of its parameters.
struct ExampleKeys {
    /// Positional examples: `header_text: ["v"]` or `body_text: [["v1", "v2"]]` (nested).
    positional: &'static str,
    nested: bool,
    /// Named examples: `[{"param_name": .., "example": ..}]`.
    named: &'static str,
}

const HEADER_EXAMPLES: ExampleKeys = ExampleKeys {
    positional: "header_text",
    nested: false,
    named: "header_text_named_params",
};

const BODY_EXAMPLES: ExampleKeys = ExampleKeys {
    positional: "body_text",
    nested: true,
    named: "body_text_named_params",
};

fn check_variables(
    out: &mut Out,
    path: &str,
    text: &str,
    named: bool,
    example: Option<&Value>,
    keys: &ExampleKeys,
) -> Vec<String> {
    let (positional_key, named_key, nested) = (keys.positional, keys.named, keys.nested);
    let vars = variables(text);
    if vars.is_empty() {
        return vars;
    }
    let numeric = vars
        .iter()
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty())
        .count();
    if numeric != 0 && numeric != vars.len() {
        out.push(
            format!("{path}.text"),
            "mixed_parameters",
            "use only {{1}}-style or only {{name}}-style parameters",
        );
        return vars;
    }
    if named && numeric > 0 {
        out.push(
            format!("{path}.text"),
            "mixed_parameters",
            "parameter_format NAMED needs {{name}} parameters",
        );
        return vars;
    }
    if !named && numeric == 0 {
        out.push(
            format!("{path}.text"),
            "mixed_parameters",
            "named parameters need parameter_format NAMED",
        );
        return vars;
    }
    if named {
        for v in &vars {
            if v.is_empty()
                || v.len() > limits::PARAMETER_NAME
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                || !v.as_bytes()[0].is_ascii_lowercase()
            {
                out.push(
                    format!("{path}.text"),
                    "parameter_name",
                    format!(
                        "parameter names are lowercase letters, digits and _, starting with a letter, at most {}",
                        limits::PARAMETER_NAME
                    ),
                );
            }
        }
        let given: Vec<&str> = example
            .and_then(|e| e.get(named_key))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| str_of(p, "param_name")).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = vars
            .iter()
            .map(String::as_str)
            .filter(|v| !given.contains(v))
            .collect();
        if !missing.is_empty() {
            out.push(
                format!("{path}.example.{named_key}"),
                "example_missing",
                format!("an example is required for {}", missing.join(", ")),
            );
        }
    } else {
        let mut distinct: Vec<u32> = vars.iter().filter_map(|v| v.parse().ok()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.iter().enumerate().any(|(i, n)| *n != i as u32 + 1) {
            out.push(
                format!("{path}.text"),
                "parameter_sequence",
                "positional parameters are {{1}}, {{2}}, ... without gaps",
            );
        }
        let values = example.and_then(|e| e.get(positional_key));
        let count = if nested {
            values
                .and_then(Value::as_array)
                .and_then(|rows| rows.first())
                .and_then(Value::as_array)
                .map(Vec::len)
        } else {
            values.and_then(Value::as_array).map(Vec::len)
        };
        match count {
            None | Some(0) => out.push(
                format!("{path}.example.{positional_key}"),
                "example_missing",
                "an example is required for every parameter",
            ),
            Some(n) if n != distinct.len() => out.push(
                format!("{path}.example.{positional_key}"),
                "example_count",
                format!("{} parameter(s), {n} example value(s)", distinct.len()),
            ),
            _ => {}
        }
    }
    vars
}

fn header(out: &mut Out, path: &str, c: &Value, named: bool, category: &str) {
    if category == "AUTHENTICATION" {
        out.push(
            path,
            "category_structure",
            "authentication templates have no header",
        );
        return;
    }
    let format = str_of(c, "format").unwrap_or("").to_ascii_uppercase();
    match format.as_str() {
        "TEXT" => {
            let Some(text) = str_of(c, "text").filter(|t| !t.is_empty()) else {
                out.push(
                    format!("{path}.text"),
                    "required",
                    "a TEXT header needs text",
                );
                return;
            };
            if chars(text) > limits::HEADER_TEXT {
                out.push(
                    format!("{path}.text"),
                    "too_long",
                    format!("at most {} characters", limits::HEADER_TEXT),
                );
            }
            let vars = check_variables(out, path, text, named, c.get("example"), &HEADER_EXAMPLES);
            if vars.len() > 1 {
                out.push(
                    format!("{path}.text"),
                    "too_many_variables",
                    "a header has at most one parameter",
                );
            }
        }
        "IMAGE" | "VIDEO" | "GIF" | "DOCUMENT" => {
            let handle = c
                .get("example")
                .and_then(|e| e.get("header_handle"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if !handle {
                out.push(
                    format!("{path}.example.header_handle"),
                    "example_missing",
                    "a media header needs a sample (an upload handle)",
                );
            }
        }
        "LOCATION" => {}
        _ => out.push(
            format!("{path}.format"),
            "header_format",
            "TEXT, IMAGE, VIDEO, GIF, DOCUMENT or LOCATION",
        ),
    }
}

fn body(out: &mut Out, path: &str, c: &Value, named: bool, category: &str) {
    if category == "AUTHENTICATION" {
        // Meta writes the body of an authentication template; only its options are ours.
        if c.get("text").is_some() {
            out.push(
                format!("{path}.text"),
                "category_structure",
                "authentication templates take no body text (Meta supplies it)",
            );
        }
        return;
    }
    let Some(text) = str_of(c, "text").filter(|t| !t.trim().is_empty()) else {
        out.push(format!("{path}.text"), "required", "the body needs text");
        return;
    };
    if chars(text) > limits::BODY_TEXT {
        out.push(
            format!("{path}.text"),
            "too_long",
            format!("at most {} characters", limits::BODY_TEXT),
        );
    }
    let vars = check_variables(out, path, text, named, c.get("example"), &BODY_EXAMPLES);
    if vars.is_empty() {
        return;
    }
    let trimmed = text.trim();
    if trimmed.starts_with("{{") || trimmed.ends_with("}}") {
        out.push(
            format!("{path}.text"),
            "variable_at_edge",
            "the body may not start or end with a parameter",
        );
    }
    // Adjacent: two parameters with nothing but whitespace between them.
    let mut rest = text;
    while let Some(end) = rest.find("}}") {
        let after = &rest[end + 2..];
        if after.trim_start().starts_with("{{") {
            out.push(
                format!("{path}.text"),
                "adjacent_variables",
                "parameters must be separated by text",
            );
            break;
        }
        rest = after;
    }
}

fn footer(out: &mut Out, path: &str, c: &Value, category: &str) {
    if category == "AUTHENTICATION" {
        return; // code_expiration_minutes only
    }
    let text = str_of(c, "text").unwrap_or("");
    if text.is_empty() {
        out.push(format!("{path}.text"), "required", "the footer needs text");
    }
    if chars(text) > limits::FOOTER_TEXT {
        out.push(
            format!("{path}.text"),
            "too_long",
            format!("at most {} characters", limits::FOOTER_TEXT),
        );
    }
    if !variables(text).is_empty() {
        out.push(
            format!("{path}.text"),
            "variables_not_allowed",
            "the footer takes no parameters",
        );
    }
}

fn buttons(out: &mut Out, path: &str, c: &Value, category: &str) {
    let list = c
        .get("buttons")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if list.is_empty() {
        out.push(
            format!("{path}.buttons"),
            "required",
            "BUTTONS needs at least one button",
        );
    }
    if list.len() > limits::BUTTONS {
        out.push(
            format!("{path}.buttons"),
            "too_many_buttons",
            format!("at most {} buttons", limits::BUTTONS),
        );
    }
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for (i, b) in list.iter().enumerate() {
        let bpath = format!("{path}.buttons[{i}]");
        let kind = str_of(b, "type").unwrap_or("").to_ascii_uppercase();
        *counts.entry(kind.clone()).or_default() += 1;
        let otp = kind == "OTP";
        if category == "AUTHENTICATION" && !otp {
            out.push(
                format!("{bpath}.type"),
                "category_structure",
                "authentication templates take one OTP button only",
            );
            continue;
        }
        if category != "AUTHENTICATION" && otp {
            out.push(
                format!("{bpath}.type"),
                "category_structure",
                "OTP buttons belong to authentication templates",
            );
            continue;
        }
        match kind.as_str() {
            "QUICK_REPLY" | "URL" | "PHONE_NUMBER" | "FLOW" => {
                let text = str_of(b, "text").unwrap_or("");
                if text.is_empty() || chars(text) > limits::BUTTON_TEXT {
                    out.push(
                        format!("{bpath}.text"),
                        "button_text",
                        format!("1 to {} characters", limits::BUTTON_TEXT),
                    );
                }
            }
            "COPY_CODE" | "CATALOG" | "MPM" | "SPM" => {}
            "OTP" => {
                if !matches!(
                    str_of(b, "otp_type"),
                    Some("COPY_CODE" | "ONE_TAP" | "ZERO_TAP")
                ) {
                    out.push(
                        format!("{bpath}.otp_type"),
                        "button_type",
                        "COPY_CODE, ONE_TAP or ZERO_TAP",
                    );
                }
            }
            _ => {
                out.push(
                    format!("{bpath}.type"),
                    "button_type",
                    "QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE, OTP, FLOW, CATALOG or MPM",
                );
                continue;
            }
        }
        if kind == "URL" {
            let url = str_of(b, "url").unwrap_or("");
            let vars = variables(url);
            if !url.starts_with("https://") || url.len() > limits::URL {
                out.push(
                    format!("{bpath}.url"),
                    "url_format",
                    "an https URL of at most 2000 characters",
                );
            }
            if vars.len() > 1 || (vars.len() == 1 && !url.ends_with("}}")) {
                out.push(
                    format!("{bpath}.url"),
                    "url_format",
                    "at most one parameter, at the end of the URL",
                );
            }
            if vars.len() == 1
                && b.get("example")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            {
                out.push(
                    format!("{bpath}.example"),
                    "example_missing",
                    "a dynamic URL needs an example",
                );
            }
        }
        if kind == "PHONE_NUMBER" && str_of(b, "phone_number").is_none_or(str::is_empty) {
            out.push(
                format!("{bpath}.phone_number"),
                "required",
                "a phone-number button needs the number",
            );
        }
    }
    for (kind, max) in [
        ("URL", limits::URL_BUTTONS),
        ("PHONE_NUMBER", limits::PHONE_BUTTONS),
        ("COPY_CODE", limits::COPY_CODE_BUTTONS),
        ("OTP", 1),
    ] {
        if counts.get(kind).copied().unwrap_or(0) > max {
            out.push(
                format!("{path}.buttons"),
                "too_many_buttons",
                format!("at most {max} {kind} button(s)"),
            );
        }
    }
}

/// What the templates table holds about one template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRecord {
    pub template_id: Option<String>,
    pub status: Option<TemplateStatus>,
    pub category: Option<TemplateCategory>,
    pub reason: Option<String>,
    pub status_at: Option<i64>,
    /// `POSITIONAL` or `NAMED`, from the definition.
    pub parameter_format: Option<String>,
    /// Meta's `components` array (JSON), from the definition: what the sender checks
    /// parameters against.
    pub components: Option<String>,
    /// When we edited it (epoch s), for Meta's edit limits.
    pub edits: Vec<i64>,
}

/// A template's definition as submitted or synced from `GET /{waba}/message_templates`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateDefinition {
    pub name: String,
    pub language: String,
    pub template_id: Option<String>,
    pub status: TemplateStatus,
    pub category: TemplateCategory,
    pub parameter_format: Option<String>,
    pub components: serde_json::Value,
    /// Why Meta rejected it (`NONE` or absent otherwise).
    pub rejected_reason: Option<String>,
}

/// Whether a stored template may be edited now with `new_category` (Meta's edit limits, checked
/// locally): only APPROVED, REJECTED or PAUSED ones; an approved one keeps its category and may
/// be edited once per 24 h and ten times per 30 days.
pub fn edit_allowed(
    record: &TemplateRecord,
    new_category: Option<&str>,
    now: i64,
) -> Result<(), TemplateViolation> {
    let refuse = |path: &str, code: &str, message: String| {
        Err(TemplateViolation {
            path: path.into(),
            code: code.into(),
            message,
        })
    };
    match &record.status {
        Some(TemplateStatus::Approved) => {}
        Some(TemplateStatus::Rejected | TemplateStatus::Paused) => return Ok(()),
        other => {
            let status = other.as_ref().map_or("UNKNOWN", TemplateStatus::as_str);
            return refuse(
                "status",
                "not_editable",
                format!("a {status} template cannot be edited"),
            );
        }
    }
    let new_category =
        new_category.map(|c| c.parse::<TemplateCategory>().unwrap_or_else(|e| match e {}));
    if new_category.is_some_and(|c| Some(&c) != record.category.as_ref()) {
        return refuse(
            "category",
            "category_locked",
            "the category of an approved template cannot be edited".into(),
        );
    }
    const DAY: i64 = 24 * 3600;
    if record.edits.iter().any(|&e| e > now - DAY) {
        return refuse(
            "components",
            "edit_limit_day",
            "an approved template can be edited once in 24 hours".into(),
        );
    }
    if record.edits.iter().filter(|&&e| e > now - 30 * DAY).count() >= 10 {
        return refuse(
            "components",
            "edit_limit_month",
            "an approved template can be edited 10 times in 30 days".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn submission(v: Value) -> TemplateSubmission {
        serde_json::from_value(v).unwrap()
    }

    fn codes(t: &TemplateSubmission) -> Vec<(String, String)> {
        validate(t).into_iter().map(|v| (v.path, v.code)).collect()
    }

    #[test]
    fn a_good_utility_template_passes() {
        let t = submission(json!({
        "name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["8812"]}},
            {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today.", "example": {"body_text": [["Ann", "8812"]]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://x.example/o/{{1}}", "example": ["https://x.example/o/8812"]},
                {"type": "QUICK_REPLY", "text": "Stop updates"}]}
        ]}));
        assert_eq!(codes(&t), []);
    }

    #[test]
    fn named_parameters_need_named_examples() {
        let t = submission(json!({
            "name": "maint", "language": "pt_BR", "category": "UTILITY", "parameter_format": "NAMED",
            "components": [{"type": "BODY", "text": "Olá {{technician}}, a visita de {{maintenance}} está marcada.",
                "example": {"body_text_named_params": [{"param_name": "technician", "example": "Ana"}]}}]}));
        assert_eq!(
            codes(&t),
            [(
                "components[0].example.body_text_named_params".into(),
                "example_missing".into()
            )]
        );
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let t = submission(json!({
        "name": "Bad Name!", "language": "english", "category": "PROMO",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "{{1}} and {{2}}"},
            {"type": "BODY", "text": "{{1}}{{3}} end {{name}}", "example": {"body_text": [["a"]]}},
            {"type": "FOOTER", "text": "Footer {{1}} that is far too long to be a footer of a WhatsApp template"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Go", "url": "http://x.example/{{1}}/y"},
                {"type": "OTP", "otp_type": "COPY_CODE"},
                {"type": "TELEPATHY", "text": "?"}]},
            {"type": "BODY", "text": "again"}
        ]}));
        let got = codes(&t);
        for want in [
            ("name", "name_format"),
            ("language", "language_format"),
            ("category", "category"),
            ("components[0].text", "too_many_variables"),
            ("components[0].example.header_text", "example_missing"),
            ("components[1].text", "mixed_parameters"),
            ("components[2].text", "too_long"),
            ("components[2].text", "variables_not_allowed"),
            ("components[3].buttons[0].url", "url_format"),
            ("components[3].buttons[0].example", "example_missing"),
            ("components[3].buttons[1].type", "category_structure"),
            ("components[3].buttons[2].type", "button_type"),
            ("components[4].type", "duplicate_component"),
        ] {
            assert!(
                got.contains(&(want.0.to_owned(), want.1.to_owned())),
                "missing {want:?} in {got:#?}"
            );
        }
        assert!(got.len() >= 13);
    }

    #[test]
    fn positional_rules_sequence_edges_adjacency_and_examples() {
        let body = |text: &str, ex: Value| {
            submission(
                json!({"name": "t", "language": "en", "category": "MARKETING",
                "components": [{"type": "BODY", "text": text, "example": {"body_text": ex}}]}),
            )
        };
        assert_eq!(
            codes(&body("Hi {{1}} and {{3}}.", json!([["a", "b"]])))[0].1,
            "parameter_sequence"
        );
        assert_eq!(
            codes(&body("{{1}} is here.", json!([["a"]])))[0].1,
            "variable_at_edge"
        );
        assert_eq!(
            codes(&body("Hi there {{1}}", json!([["a"]])))[0].1,
            "variable_at_edge"
        );
        assert_eq!(
            codes(&body("Hi {{1}} {{2}} there.", json!([["a", "b"]])))[0].1,
            "adjacent_variables"
        );
        assert_eq!(
            codes(&body("Hi {{1}}, {{2}} there.", json!([["a"]])))[0].1,
            "example_count"
        );
        assert_eq!(codes(&body("Hi {{1}}, {{1}} there.", json!([["a"]]))), []);
    }

    #[test]
    fn edit_limits_are_meta_s() {
        let now = 1_790_812_800;
        let approved = |edits: Vec<i64>| TemplateRecord {
            status: Some(TemplateStatus::Approved),
            category: Some(TemplateCategory::Utility),
            edits,
            ..TemplateRecord::default()
        };
        assert!(edit_allowed(&approved(vec![]), None, now).is_ok());
        assert_eq!(
            edit_allowed(&approved(vec![now - 3600]), None, now)
                .unwrap_err()
                .code,
            "edit_limit_day"
        );
        let ten: Vec<i64> = (1..=10).map(|d| now - d * 2 * 86_400).collect();
        assert_eq!(
            edit_allowed(&approved(ten), None, now).unwrap_err().code,
            "edit_limit_month"
        );
        assert_eq!(
            edit_allowed(&approved(vec![]), Some("MARKETING"), now)
                .unwrap_err()
                .code,
            "category_locked"
        );
        let rejected = TemplateRecord {
            status: Some(TemplateStatus::Rejected),
            edits: vec![now - 10],
            ..TemplateRecord::default()
        };
        assert!(edit_allowed(&rejected, Some("MARKETING"), now).is_ok());
        let pending = TemplateRecord {
            status: Some(TemplateStatus::Pending),
            ..TemplateRecord::default()
        };
        assert_eq!(
            edit_allowed(&pending, None, now).unwrap_err().code,
            "not_editable"
        );
    }

    #[test]
    fn authentication_templates_have_their_own_structure() {
        let ok = submission(
            json!({"name": "otp", "language": "en_US", "category": "AUTHENTICATION",
            "components": [{"type": "BODY", "add_security_recommendation": true},
                           {"type": "FOOTER", "code_expiration_minutes": 10},
                           {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}]}),
        );
        assert_eq!(codes(&ok), []);
        let bad = submission(
            json!({"name": "otp", "language": "en_US", "category": "AUTHENTICATION",
            "components": [{"type": "HEADER", "format": "TEXT", "text": "Code"},
                           {"type": "BODY", "text": "Your code is {{1}}"}]}),
        );
        let got = codes(&bad);
        assert!(got.contains(&("components[0]".into(), "category_structure".into())));
        assert!(got.contains(&("components[1].text".into(), "category_structure".into())));
        assert!(got.contains(&("components".into(), "category_structure".into())));
    }
}
