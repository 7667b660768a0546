//! What Meta refuses in a message body before anything else: the shape of each message type,
//! text and media limits, interactive messages, and a template's parameters against its
//! definition.

use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use crate::GraphError;
use crate::model::Template;

pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn need<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Value, GraphError> {
    match v.get(key) {
        Some(x) if !x.is_null() => Ok(x),
        _ => Err(GraphError::missing(&format!("{path}['{key}']"))),
    }
}

pub(crate) fn need_str<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a str, GraphError> {
    need(v, key, path)?
        .as_str()
        .ok_or_else(|| GraphError::param(format!("Param {path}['{key}'] must be a string.")))
}

fn max_len(s: &str, max: usize, what: &str) -> Result<(), GraphError> {
    if chars(s) > max {
        Err(GraphError::param(format!(
            "Param {what} must be at most {max} characters long."
        )))
    } else {
        Ok(())
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

fn media(v: &Value, kind: &str) -> Result<(), GraphError> {
    let m = need(v, kind, "")?;
    match (m.get("id"), m.get("link")) {
        (Some(_), Some(_)) => {
            return Err(GraphError::param(format!(
                "Param {kind} must have either id or link, not both."
            )));
        }
        (None, None) => {
            return Err(GraphError::missing(&format!(
                "{kind}['id'] or {kind}['link']"
            )));
        }
        (None, Some(l)) if !l.as_str().is_some_and(is_url) => {
            return Err(GraphError::invalid(format!(
                "{kind}['link'] is not a valid URL."
            )));
        }
        _ => {}
    }
    if let Some(c) = str_of(m, "caption") {
        if matches!(kind, "audio" | "sticker") {
            return Err(GraphError::param(format!(
                "Param {kind}['caption'] is not supported."
            )));
        }
        max_len(c, 1024, &format!("{kind}['caption']"))?;
    }
    Ok(())
}

fn interactive(v: &Value) -> Result<(), GraphError> {
    let i = need(v, "interactive", "")?;
    let kind = need_str(i, "type", "interactive")?;
    let action = || need(i, "action", "interactive");
    let body = |required: bool| -> Result<(), GraphError> {
        match i.get("body") {
            Some(b) => max_len(
                need_str(b, "text", "interactive['body']")?,
                1024,
                "interactive['body']['text']",
            ),
            None if required => Err(GraphError::missing("interactive['body']")),
            None => Ok(()),
        }
    };
    if let Some(f) = i.get("footer") {
        max_len(
            need_str(f, "text", "interactive['footer']")?,
            60,
            "interactive['footer']['text']",
        )?;
    }
    if let Some(h) = i.get("header")
        && str_of(h, "type") == Some("text")
    {
        max_len(
            need_str(h, "text", "interactive['header']")?,
            60,
            "interactive['header']['text']",
        )?;
    }
    match kind {
        "button" => {
            body(true)?;
            let buttons = need(action()?, "buttons", "interactive['action']")?
                .as_array()
                .cloned()
                .unwrap_or_default();
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(GraphError::invalid(
                    "interactive['action']['buttons'] must have 1 to 3 buttons.",
                ));
            }
            let mut ids = Vec::new();
            for b in &buttons {
                let r = need(b, "reply", "button")?;
                let id = need_str(r, "id", "button['reply']")?;
                max_len(id, 256, "button['reply']['id']")?;
                let title = need_str(r, "title", "button['reply']")?;
                if title.is_empty() {
                    return Err(GraphError::invalid(
                        "button['reply']['title'] must not be empty.",
                    ));
                }
                max_len(title, 20, "button['reply']['title']")?;
                if ids.contains(&id) {
                    return Err(GraphError::invalid("Button ids must be unique."));
                }
                ids.push(id);
            }
        }
        "list" => {
            body(true)?;
            let a = action()?;
            max_len(
                need_str(a, "button", "interactive['action']")?,
                20,
                "interactive['action']['button']",
            )?;
            let sections = need(a, "sections", "interactive['action']")?
                .as_array()
                .cloned()
                .unwrap_or_default();
            if sections.is_empty() || sections.len() > 10 {
                return Err(GraphError::invalid(
                    "interactive['action']['sections'] must have 1 to 10 sections.",
                ));
            }
            let rows: Vec<Value> = sections
                .iter()
                .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
                .collect();
            if rows.is_empty() || rows.len() > 10 {
                return Err(GraphError::invalid(
                    "A list message can have at most 10 rows in all.",
                ));
            }
            for r in &rows {
                max_len(need_str(r, "id", "row")?, 200, "row['id']")?;
                max_len(need_str(r, "title", "row")?, 24, "row['title']")?;
                if let Some(d) = str_of(r, "description") {
                    max_len(d, 72, "row['description']")?;
                }
            }
        }
        "cta_url" => {
            body(true)?;
            let p = need(action()?, "parameters", "interactive['action']")?;
            max_len(
                need_str(p, "display_text", "parameters")?,
                20,
                "parameters['display_text']",
            )?;
            if !is_url(need_str(p, "url", "parameters")?) {
                return Err(GraphError::invalid("parameters['url'] is not a valid URL."));
            }
        }
        "product" => {
            body(false)?;
            need_str(action()?, "catalog_id", "interactive['action']")?;
            need_str(action()?, "product_retailer_id", "interactive['action']")?;
        }
        "product_list" => {
            body(true)?;
            need(i, "header", "interactive")?;
            let a = action()?;
            need_str(a, "catalog_id", "interactive['action']")?;
            let sections = need(a, "sections", "interactive['action']")?
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total: usize = sections
                .iter()
                .map(|s| s["product_items"].as_array().map_or(0, Vec::len))
                .sum();
            if sections.is_empty() || sections.len() > 10 || total == 0 || total > 30 {
                return Err(GraphError::invalid(
                    "A product list has 1 to 10 sections and 1 to 30 products.",
                ));
            }
        }
        "flow" => {
            body(true)?;
            let p = need(action()?, "parameters", "interactive['action']")?;
            need_str(p, "flow_message_version", "parameters")?;
            need_str(p, "flow_cta", "parameters")?;
            if p.get("flow_id").is_none() && p.get("flow_name").is_none() {
                return Err(GraphError::missing("parameters['flow_id']"));
            }
        }
        "catalog_message" | "location_request_message" | "call_permission_request" => {}
        other => {
            return Err(GraphError::param(format!(
                "Param interactive['type'] is invalid: {other}."
            )));
        }
    }
    Ok(())
}

/// Variables in a template text: `{{1}}`, `{{name}}`.
pub(crate) fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    out
}

fn bad_parameter_text(s: &str) -> bool {
    s.contains('\n') || s.contains('\t') || s.contains("    ")
}

fn count_mismatch(expected: usize, got: usize, component: &str) -> GraphError {
    GraphError::new(
        400,
        132000,
        "Number of parameters does not match the expected number of params",
        format!(
            "{component}: number of localizable_params ({got}) does not match the expected number of params ({expected})"
        ),
    )
}

/// Checks a template message against the stored template, as Meta does at send time.
pub(crate) fn template_params(
    t: &Template,
    sent: &Value,
    version_major: u32,
) -> Result<(), GraphError> {
    let comps = sent
        .get("components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let find = |kind: &str| {
        comps
            .iter()
            .find(|c| str_of(c, "type").is_some_and(|k| k.eq_ignore_ascii_case(kind)))
            .cloned()
    };
    let named = t.parameter_format == "NAMED";
    let mut body_len = 0usize;
    for kind in ["header", "body"] {
        let def = t.component(kind);
        let text = def.and_then(|d| str_of(d, "text")).unwrap_or("");
        let format = def.and_then(|d| str_of(d, "format")).unwrap_or("TEXT");
        let expected: Vec<String> = if kind == "header" && format != "TEXT" {
            vec!["media".into()]
        } else {
            variables(text)
        };
        let given = find(kind)
            .and_then(|c| c.get("parameters").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        if given.len() != expected.len() {
            return Err(count_mismatch(expected.len(), given.len(), kind));
        }
        if named && !(kind == "header" && format != "TEXT") {
            let mut names: Vec<&str> = given
                .iter()
                .filter_map(|p| str_of(p, "parameter_name"))
                .collect();
            let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
            names.sort_unstable();
            want.sort_unstable();
            if names != want {
                return Err(GraphError::new(
                    400,
                    132000,
                    "Number of parameters does not match the expected number of params",
                    format!("{kind}: parameter names do not match the template's"),
                ));
            }
        }
        let mut hydrated = text.len();
        for p in &given {
            if let Some(s) = str_of(p, "text") {
                if bad_parameter_text(s) {
                    let code = if version_major >= 23 { 132018 } else { 132000 };
                    return Err(GraphError::new(
                        400,
                        code,
                        "There's an issue with the parameters in your template.",
                        "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
                    ));
                }
                hydrated += s.len();
            }
        }
        if kind == "body" {
            body_len = hydrated;
        }
    }
    if body_len > 1024 + 4 * 16 {
        return Err(GraphError::new(
            400,
            132005,
            "Translated text too long",
            "The body text exceeds 1024 characters once parameters are filled in",
        ));
    }
    // Dynamic URL buttons need their suffix.
    let buttons = t
        .component("buttons")
        .and_then(|b| b["buttons"].as_array().cloned())
        .unwrap_or_default();
    for (index, b) in buttons.iter().enumerate() {
        if str_of(b, "type") == Some("URL") && str_of(b, "url").is_some_and(|u| u.contains("{{")) {
            let given = comps.iter().find(|c| {
                str_of(c, "type") == Some("button")
                    && c["index"].to_string().trim_matches('"') == index.to_string()
            });
            if given
                .and_then(|g| g["parameters"].as_array())
                .is_none_or(Vec::is_empty)
            {
                return Err(count_mismatch(1, 0, &format!("button {index}")));
            }
        }
    }
    Ok(())
}

/// Validates a `/messages` body. Returns the message type.
pub(crate) fn validate(body: &Value) -> Result<String, GraphError> {
    if str_of(body, "messaging_product") != Some("whatsapp") {
        return Err(GraphError::param(
            "The parameter messaging_product is required and must be whatsapp.",
        ));
    }
    if body.get("to").is_none() && body.get("recipient").is_none() {
        return Err(GraphError::missing("to"));
    }
    if let Some(cb) = str_of(body, "biz_opaque_callback_data")
        && cb.len() > 512
    {
        return Err(GraphError::param(
            "Param biz_opaque_callback_data must be at most 512 characters long.",
        ));
    }
    let kind = str_of(body, "type").unwrap_or("text").to_owned();
    match kind.as_str() {
        "text" => {
            let t = need(body, "text", "")?;
            let b = need_str(t, "body", "text")?;
            if b.is_empty() {
                return Err(GraphError::missing("text['body']"));
            }
            max_len(b, 4096, "text['body']")?;
        }
        "image" | "audio" | "video" | "document" | "sticker" => media(body, &kind)?,
        "location" => {
            let l = need(body, "location", "")?;
            for k in ["latitude", "longitude"] {
                if !need(l, k, "location")?.is_number() {
                    return Err(GraphError::invalid(format!(
                        "location['{k}'] must be a number."
                    )));
                }
            }
        }
        "contacts" => {
            let c = need(body, "contacts", "")?
                .as_array()
                .cloned()
                .unwrap_or_default();
            if c.is_empty() {
                return Err(GraphError::missing("contacts"));
            }
            for card in &c {
                need_str(
                    need(card, "name", "contacts")?,
                    "formatted_name",
                    "contacts['name']",
                )?;
            }
        }
        "reaction" => {
            let r = need(body, "reaction", "")?;
            need_str(r, "message_id", "reaction")?;
            need_str(r, "emoji", "reaction")?;
        }
        "interactive" => interactive(body)?,
        "template" => {
            let t = need(body, "template", "")?;
            need_str(t, "name", "template")?;
            need_str(
                need(t, "language", "template")?,
                "code",
                "template['language']",
            )?;
        }
        other => {
            return Err(GraphError::new(
                400,
                131051,
                "Unsupported message type",
                format!("Message type {other} is not supported."),
            ));
        }
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_positional_and_named_variables() {
        assert_eq!(variables("Hi {{1}}, order {{2}} ships"), ["1", "2"]);
        assert_eq!(variables("Hi {{first_name}}!"), ["first_name"]);
        assert!(variables("no vars").is_empty());
    }

    #[test]
    fn rejects_bodies_as_meta_does() {
        let e = validate(&json!({"messaging_product":"whatsapp","to":"1555","type":"text","text":{"body":"a".repeat(4097)}})).unwrap_err();
        assert_eq!(e.code, 100);
        let e = validate(&json!({"messaging_product":"whatsapp","to":"1555","type":"poll"}))
            .unwrap_err();
        assert_eq!(e.code, 131051);
        let e = validate(
            &json!({"messaging_product":"whatsapp","to":"1555","type":"image","image":{}}),
        )
        .unwrap_err();
        assert_eq!(e.code, 131008);
        let four: Vec<Value> = (0..4)
            .map(|i| json!({"type":"reply","reply":{"id":format!("b{i}"),"title":"t"}}))
            .collect();
        let e = validate(&json!({"messaging_product":"whatsapp","to":"1555","type":"interactive","interactive":{"type":"button","body":{"text":"?"},"action":{"buttons":four}}})).unwrap_err();
        assert_eq!(e.code, 131009);
    }
}
