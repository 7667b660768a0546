//! Message templates: creation with Meta's validation, review (PENDING → APPROVED or REJECTED),
//! listing with cursor paging, edits within Meta's limits, deletion, and status changes that emit
//! `message_template_status_update` / `template_category_update` webhooks.

use serde_json::{Value, json};

use crate::body::variables;
use crate::model::Template;
use crate::{GraphError, Simulator};

const DAY_S: i64 = 86_400;

fn text_of(c: &Value) -> &str {
    c.get("text").and_then(Value::as_str).unwrap_or("")
}

/// Meta's authoring rules for a template definition.
pub(crate) fn validate_definition(body: &Value, category_required: bool) -> Result<(), GraphError> {
    if category_required {
        match body.get("category").and_then(Value::as_str) {
            Some("MARKETING" | "UTILITY" | "AUTHENTICATION") => {}
            Some(other) => {
                return Err(GraphError::param(format!(
                    "Param category must be one of MARKETING, UTILITY, AUTHENTICATION (got {other})."
                )));
            }
            None => return Err(GraphError::missing("category")),
        }
    }
    // Time-to-live (reference §6f): authentication 30 s–15 min, utility 30 s–12 h; marketing
    // 12 h–30 days (partners' copies of Meta's reference).
    if let Some(ttl) = body.get("message_send_ttl_seconds") {
        let range = match body.get("category").and_then(Value::as_str) {
            Some("AUTHENTICATION") => Some((30, 900)),
            Some("UTILITY") => Some((30, 43_200)),
            Some("MARKETING") => Some((43_200, 2_592_000)),
            _ => None,
        };
        if let Some((lo, hi)) = range
            && ttl.as_i64().is_none_or(|t| t < lo || t > hi)
        {
            return Err(GraphError::param(format!(
                "Param message_send_ttl_seconds must be between {lo} and {hi} for this category."
            )));
        }
    }
    let named = match body.get("parameter_format").and_then(Value::as_str) {
        None | Some("POSITIONAL") => false,
        Some("NAMED") => true,
        Some(other) => {
            return Err(GraphError::param(format!(
                "Param parameter_format must be POSITIONAL or NAMED (got {other})."
            )));
        }
    };
    let comps = body
        .get("components")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::missing("components"))?;
    let find = |k: &str| {
        comps.iter().find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(k))
        })
    };
    let body_c = find("BODY").ok_or_else(|| GraphError::missing("components[BODY]"))?;
    let body_text = text_of(body_c);
    if body_text.is_empty() || body_text.chars().count() > 1024 {
        return Err(GraphError::param(
            "The body text must be 1 to 1024 characters long.",
        ));
    }
    check_variables("BODY", body_c, body_text, named, true)?;
    if let Some(h) = find("HEADER") {
        match h["format"].as_str().unwrap_or("TEXT") {
            "TEXT" => {
                let t = text_of(h);
                if t.is_empty() || t.chars().count() > 60 {
                    return Err(GraphError::param(
                        "A text header must be 1 to 60 characters long.",
                    ));
                }
                if variables(t).len() > 1 {
                    return Err(GraphError::param(
                        "A text header can have at most one variable.",
                    ));
                }
                check_variables("HEADER", h, t, named, false)?;
            }
            "IMAGE" | "VIDEO" | "GIF" | "DOCUMENT" | "LOCATION" => {}
            other => return Err(GraphError::param(format!("Unknown header format {other}."))),
        }
    }
    if let Some(f) = find("FOOTER")
        && text_of(f).chars().count() > 60
    {
        return Err(GraphError::param(
            "The footer must be at most 60 characters long.",
        ));
    }
    if let Some(b) = find("BUTTONS") {
        let buttons = b["buttons"].as_array().cloned().unwrap_or_default();
        let count = |t: &str| {
            buttons
                .iter()
                .filter(|x| x["type"].as_str() == Some(t))
                .count()
        };
        if buttons.is_empty() || buttons.len() > 10 {
            return Err(GraphError::param("A template has 1 to 10 buttons."));
        }
        const TYPES: &[&str] = &[
            "QUICK_REPLY",
            "URL",
            "PHONE_NUMBER",
            "VOICE_CALL",
            "REQUEST_CONTACT_INFO",
            "COPY_CODE",
            "OTP",
            "FLOW",
            "CATALOG",
            "MPM",
            "SPM",
        ];
        if let Some(other) = buttons
            .iter()
            .filter_map(|x| x["type"].as_str())
            .find(|t| !TYPES.contains(t))
        {
            return Err(GraphError::param(format!("Unknown button type {other}.")));
        }
        if count("URL") > 2
            || count("PHONE_NUMBER") > 1
            || count("COPY_CODE") > 1
            || count("VOICE_CALL") > 1
            || count("REQUEST_CONTACT_INFO") > 1
        {
            return Err(GraphError::param(
                "At most 2 URL, 1 PHONE_NUMBER, 1 VOICE_CALL, 1 REQUEST_CONTACT_INFO and 1 COPY_CODE buttons.",
            ));
        }
        if buttons
            .iter()
            .any(|x| x["type"].as_str() == Some("VOICE_CALL") && text_of(x).is_empty())
        {
            return Err(GraphError::missing("buttons[VOICE_CALL].text"));
        }
        if buttons.iter().any(|x| text_of(x).chars().count() > 25) {
            return Err(GraphError::param(
                "Button text must be at most 25 characters long.",
            ));
        }
    }
    Ok(())
}

fn check_variables(
    kind: &str,
    comp: &Value,
    text: &str,
    named: bool,
    is_body: bool,
) -> Result<(), GraphError> {
    let vars = variables(text);
    if vars.is_empty() {
        return Ok(());
    }
    let positional = vars.iter().all(|v| v.parse::<u32>().is_ok());
    if named == positional {
        return Err(GraphError::param(format!(
            "{kind}: variables must be {} to match parameter_format.",
            if named {
                "named ({{name}})"
            } else {
                "positional ({{1}})"
            }
        )));
    }
    if positional {
        let mut n: Vec<u32> = vars.iter().filter_map(|v| v.parse().ok()).collect();
        n.sort_unstable();
        n.dedup();
        if n.iter().enumerate().any(|(i, &v)| v != i as u32 + 1) {
            return Err(GraphError::param(format!(
                "{kind}: variables must be sequential, starting at {{{{1}}}}."
            )));
        }
    }
    if is_body {
        let t = text.trim();
        if t.starts_with("{{") || t.ends_with("}}") {
            return Err(GraphError::param(
                "Variables can't be at the start or end of the template body.",
            ));
        }
        let adjacent = t
            .match_indices("}}")
            .any(|(i, _)| t[i + 2..].trim_start().starts_with("{{"));
        if adjacent {
            return Err(GraphError::param(
                "Variables can't be adjacent to each other.",
            ));
        }
    }
    // Examples for every variable.
    let example = &comp["example"];
    let (key, have) = if named {
        let k = if is_body {
            "body_text_named_params"
        } else {
            "header_text_named_params"
        };
        (k, example[k].as_array().map_or(0, Vec::len))
    } else {
        let k = if is_body { "body_text" } else { "header_text" };
        let n = if is_body {
            example[k][0].as_array().map_or(0, Vec::len)
        } else {
            example[k].as_array().map_or(0, Vec::len)
        };
        (k, n)
    };
    let distinct = {
        let mut v = vars.clone();
        v.sort();
        v.dedup();
        v.len()
    };
    if have < distinct {
        return Err(GraphError::param(format!(
            "{kind}: example.{key} must give a sample for each of the {distinct} variables."
        )));
    }
    Ok(())
}

fn template_json(t: &Template) -> Value {
    let mut v = json!({
        "id": t.id, "name": t.name, "language": t.language, "status": t.status,
        "category": t.category, "parameter_format": t.parameter_format, "components": t.components,
    });
    if let Some(r) = &t.rejected_reason {
        v["rejected_reason"] = json!(r);
    }
    v
}

impl Simulator {
    pub(crate) fn create_template(&self, waba_id: &str, body: &Value) -> Result<Value, GraphError> {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::missing("name"))?;
        if name.is_empty()
            || name.len() > 512
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(GraphError::param(
                "Param name may contain only lowercase letters, digits and underscores (at most 512).",
            ));
        }
        let language = body
            .get("language")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::missing("language"))?;
        validate_definition(body, true)?;
        let now = self.now();
        let mut world = self.world();
        if !world.wabas.contains_key(waba_id) {
            return Err(crate::send::unknown_object(waba_id));
        }
        if world
            .templates
            .values()
            .any(|t| t.waba_id == waba_id && t.name == name && t.language == language)
        {
            let mut e = GraphError::param(format!(
                "Content in this language already exists: {name} ({language})."
            ));
            e.subcode = Some(2388024);
            return Err(e);
        }
        let id = world.next_id("10");
        let t = Template {
            id: id.clone(),
            waba_id: waba_id.to_owned(),
            name: name.to_owned(),
            language: language.to_owned(),
            category: body["category"].as_str().unwrap_or("UTILITY").to_owned(),
            status: "PENDING".into(),
            rejected_reason: None,
            parameter_format: body
                .get("parameter_format")
                .and_then(Value::as_str)
                .unwrap_or("POSITIONAL")
                .to_owned(),
            components: body["components"].clone(),
            edits: Vec::new(),
            created_at: now,
            pauses: 0,
        };
        let category = t.category.clone();
        world.templates.insert(id.clone(), t);
        drop(world);
        self.schedule_review(&id);
        Ok(json!({"id": id, "status": "PENDING", "category": category}))
    }

    /// Reviews a pending template after the configured delay.
    fn schedule_review(&self, id: &str) {
        let sim = self.clone();
        let id = id.to_owned();
        let cfg = self.config();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(
                cfg.template_review_delay_ms,
            ))
            .await;
            // Review decides pending templates only: a status set meanwhile (seeded as
            // approved, paused, deleted) stands.
            let name = sim
                .world()
                .templates
                .get(&id)
                .filter(|t| t.status == "PENDING")
                .map(|t| t.name.clone());
            let Some(name) = name else { return };
            if cfg
                .reject_templates_containing
                .iter()
                .any(|r| name.contains(r.as_str()))
            {
                sim.set_template_status(&id, "REJECTED", Some("INVALID_FORMAT"));
            } else {
                sim.set_template_status(&id, "APPROVED", None);
            }
        });
    }

    /// Moves a template to `status` and emits the status-update webhook. A third PAUSED
    /// disables the template, as Meta does.
    /// Makes every paging cursor handed out for the account's templates invalid (as a deletion
    /// does), so that the next page asked with one is refused with 131059.
    pub fn expire_cursors(&self, waba_id: &str) {
        *self
            .world()
            .cursor_generation
            .entry(waba_id.to_owned())
            .or_default() += 1;
    }

    pub fn set_template_status(&self, id: &str, status: &str, reason: Option<&str>) -> bool {
        let mut world = self.world();
        let Some(t) = world.templates.get_mut(id) else {
            return false;
        };
        let mut event = status.to_owned();
        if status == "PAUSED" {
            t.pauses += 1;
            if t.pauses >= 3 {
                event = "DISABLED".into();
            }
        }
        t.status = event.clone();
        t.rejected_reason = if event == "REJECTED" {
            Some(reason.unwrap_or("NONE").to_owned())
        } else {
            None
        };
        let mut value = json!({
            "event": event, "message_template_id": t.id.parse::<u64>().unwrap_or(0),
            "message_template_name": t.name, "message_template_language": t.language,
            "reason": if event == "REJECTED" { reason.unwrap_or("NONE") } else { "NONE" },
            "message_template_category": t.category,
        });
        if event == "DISABLED" {
            value["disable_info"] = json!({"disable_date": self.now()});
        }
        let waba = t.waba_id.clone();
        drop(world);
        self.emit(&waba, "message_template_status_update", value, 0);
        true
    }

    /// Recategorises a template (as Meta may) and emits `template_category_update`.
    pub fn set_template_category(&self, id: &str, category: &str) -> bool {
        let mut world = self.world();
        let Some(t) = world.templates.get_mut(id) else {
            return false;
        };
        let previous = std::mem::replace(&mut t.category, category.to_owned());
        let value = json!({
            "message_template_id": t.id.parse::<u64>().unwrap_or(0), "message_template_name": t.name,
            "message_template_language": t.language, "previous_category": previous, "new_category": category,
        });
        let waba = t.waba_id.clone();
        drop(world);
        self.emit(&waba, "template_category_update", value, 0);
        true
    }

    /// Lists an account's templates in pages. A cursor names the last template of its page
    /// and the account's listing generation, which a deletion (or [`Simulator::expire_cursors`])
    /// moves on: from v24.0 an old or unreadable cursor is refused with 131059; before, the
    /// listing goes on from the template it names.
    pub(crate) fn list_templates(
        &self,
        waba_id: &str,
        q: &std::collections::HashMap<String, String>,
        version: &str,
    ) -> Result<Value, GraphError> {
        let world = self.world();
        if !world.wabas.contains_key(waba_id) {
            return Err(crate::send::unknown_object(waba_id));
        }
        let generation = world.cursor_generation.get(waba_id).copied().unwrap_or(0);
        let major = crate::send::version_major(version);
        let cursor = q.get("after").map(|a| {
            let (id, g) = a.split_once('.').unwrap_or((a.as_str(), ""));
            (id.parse::<u64>().ok(), g.parse::<u64>().ok())
        });
        if major >= 24
            && let Some((id, g)) = cursor
            && (id.is_none() || g != Some(generation))
        {
            return Err(GraphError::new(
                400,
                131059,
                "Invalid pagination cursor",
                "The pagination cursor is invalid or expired; list again without it.",
            ));
        }
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(25)
            .clamp(1, 100);
        let after: Option<u64> = cursor.and_then(|(id, _)| id);
        let all: Vec<&Template> = world
            .templates
            .values()
            .filter(|t| t.waba_id == waba_id)
            .filter(|t| q.get("name").is_none_or(|n| t.name.contains(n.as_str())))
            .filter(|t| {
                q.get("status")
                    .is_none_or(|s| t.status.eq_ignore_ascii_case(s))
            })
            .filter(|t| q.get("language").is_none_or(|l| &t.language == l))
            .filter(|t| after.is_none_or(|a| t.id.parse::<u64>().unwrap_or(0) > a))
            .collect();
        let page: Vec<Value> = all.iter().take(limit).map(|t| template_json(t)).collect();
        let mut out = json!({"data": page});
        if let (Some(first), Some(last)) = (all.first(), all.iter().take(limit).next_back()) {
            let (before, after) = (
                format!("{}.{generation}", first.id),
                format!("{}.{generation}", last.id),
            );
            out["paging"] = json!({"cursors": {"before": before, "after": after}});
            if all.len() > limit {
                out["paging"]["next"] = json!(format!(
                    "/{waba_id}/message_templates?limit={limit}&after={after}"
                ));
            }
        }
        Ok(out)
    }

    pub(crate) fn edit_template(&self, id: &str, body: &Value) -> Result<Value, GraphError> {
        let now = self.now();
        let mut world = self.world();
        let Some(t) = world.templates.get_mut(id) else {
            return Err(crate::send::unknown_object(id));
        };
        if !matches!(t.status.as_str(), "APPROVED" | "REJECTED" | "PAUSED") {
            return Err(GraphError::param(format!(
                "A template in status {} can't be edited.",
                t.status
            )));
        }
        if t.status == "APPROVED" {
            if body
                .get("category")
                .and_then(Value::as_str)
                .is_some_and(|c| c != t.category)
            {
                return Err(GraphError::param(
                    "The category of an approved template can't be edited.",
                ));
            }
            if t.edits.iter().any(|&e| e > now - DAY_S) {
                return Err(GraphError::param(
                    "An approved template can be edited once in 24 hours.",
                ));
            }
            if t.edits.iter().filter(|&&e| e > now - 30 * DAY_S).count() >= 10 {
                return Err(GraphError::param(
                    "An approved template can be edited 10 times in 30 days.",
                ));
            }
        }
        let mut merged = json!({"components": body.get("components").cloned().unwrap_or_else(|| t.components.clone()), "parameter_format": t.parameter_format});
        if let Some(c) = body.get("category") {
            merged["category"] = c.clone();
        }
        validate_definition(&merged, false)?;
        t.components = merged["components"].clone();
        if let Some(c) = body.get("category").and_then(Value::as_str) {
            t.category = c.to_owned();
        }
        t.edits.push(now);
        t.status = "PENDING".into();
        drop(world);
        self.schedule_review(id);
        Ok(json!({"success": true}))
    }

    pub(crate) fn delete_template(&self, waba_id: &str, name: &str) -> Result<Value, GraphError> {
        let mut world = self.world();
        let before = world.templates.len();
        world
            .templates
            .retain(|_, t| !(t.waba_id == waba_id && t.name == name));
        *world
            .cursor_generation
            .entry(waba_id.to_owned())
            .or_default() += 1;
        if world.templates.len() == before {
            return Err(GraphError::param(format!(
                "Message template \"{name}\" not found."
            )));
        }
        Ok(json!({"success": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(body: &str, example: Value) -> Value {
        json!({"category":"UTILITY","components":[{"type":"BODY","text":body,"example":example}]})
    }

    #[test]
    fn authoring_rules() {
        assert!(
            validate_definition(
                &def(
                    "Hi {{1}}, order {{2}} ships.",
                    json!({"body_text":[["Ann","8"]]})
                ),
                true
            )
            .is_ok()
        );
        assert!(
            validate_definition(&def("{{1}} is ready.", json!({"body_text":[["x"]]})), true)
                .is_err(),
            "variable at start"
        );
        assert!(
            validate_definition(&def("Ready {{1}}", json!({"body_text":[["x"]]})), true).is_err(),
            "variable at end"
        );
        assert!(
            validate_definition(
                &def("Hi {{1}}{{2}} there", json!({"body_text":[["a","b"]]})),
                true
            )
            .is_err(),
            "adjacent"
        );
        assert!(
            validate_definition(
                &def("Hi {{1}} and {{3}} x", json!({"body_text":[["a","b"]]})),
                true
            )
            .is_err(),
            "not sequential"
        );
        assert!(
            validate_definition(&def("Hi {{1}} there", json!({})), true).is_err(),
            "no example"
        );
        let named = json!({"category":"UTILITY","parameter_format":"NAMED","components":[{"type":"BODY","text":"Hi {{first_name}} there","example":{"body_text_named_params":[{"param_name":"first_name","example":"Ann"}]}}]});
        assert!(validate_definition(&named, true).is_ok());
        let mut no_format = named.clone();
        no_format
            .as_object_mut()
            .unwrap()
            .remove("parameter_format");
        assert!(
            validate_definition(&no_format, true).is_err(),
            "named variables need parameter_format NAMED"
        );
    }
}
