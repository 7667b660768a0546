//! The BUTTONS component: button types, their texts, URLs and counts, by category.

use serde_json::Value;

use super::{Out, chars, limits, str_of};
use crate::policy::variables;

pub(super) fn buttons(out: &mut Out, path: &str, c: &Value, category: &str) {
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
            "QUICK_REPLY" | "URL" | "PHONE_NUMBER" | "FLOW" | "VOICE_CALL" => {
                let text = str_of(b, "text").unwrap_or("");
                if text.is_empty() || chars(text) > limits::BUTTON_TEXT {
                    out.push(
                        format!("{bpath}.text"),
                        "button_text",
                        format!("1 to {} characters", limits::BUTTON_TEXT),
                    );
                }
            }
            // The label of a request-contact-info button is Meta's own; a text is optional.
            "REQUEST_CONTACT_INFO" => {
                if str_of(b, "text").is_some_and(|t| chars(t) > limits::BUTTON_TEXT) {
                    out.push(
                        format!("{bpath}.text"),
                        "button_text",
                        format!("at most {} characters", limits::BUTTON_TEXT),
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
                    "QUICK_REPLY, URL, PHONE_NUMBER, VOICE_CALL, REQUEST_CONTACT_INFO, COPY_CODE, OTP, FLOW, CATALOG or MPM",
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
        ("VOICE_CALL", 1),
        ("REQUEST_CONTACT_INFO", 1),
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
