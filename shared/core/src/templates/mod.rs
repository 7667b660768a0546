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

mod buttons;
mod record;

use buttons::buttons;
pub use record::{TemplateDefinition, TemplateRecord, edit_allowed};

/// A template to create (or the new content of one to edit), in Meta's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSubmission {
    pub name: String,
    pub language: String,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<String>,
    /// How long Meta keeps trying to deliver a message of this template (seconds); past it the
    /// message is dropped. Meta's ranges per category: [`ttl_range`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_send_ttl_seconds: Option<i64>,
    pub components: Vec<Value>,
}

/// The `message_send_ttl_seconds` Meta accepts for a category (inclusive): authentication 30 s
/// to 15 min and utility 30 s to 12 h (reference §6f); marketing 12 h to 30 days (partners'
/// copies of Meta's template reference; the reference is silent).
pub fn ttl_range(category: &str) -> Option<(i64, i64)> {
    match category {
        "AUTHENTICATION" => Some((30, 900)),
        "UTILITY" => Some((30, 43_200)),
        "MARKETING" => Some((43_200, 2_592_000)),
        _ => None,
    }
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
/// `button_type`, `button_text`, `url_format`, `category_structure`, `ttl_range`.
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
    if let (Some(ttl), Some((lo, hi))) = (t.message_send_ttl_seconds, ttl_range(category))
        && !(lo..=hi).contains(&ttl)
    {
        out.push(
            "message_send_ttl_seconds",
            "ttl_range",
            format!("{lo} to {hi} seconds for {category} templates"),
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

#[cfg(test)]
mod tests;
