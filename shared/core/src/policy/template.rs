//! Checks a template message against the stored template definition before any Graph call, as
//! Meta does at send time (132000 "number of parameters does not match", 132001, 132018): the
//! header, body and button parameters a job supplies must be the ones the template declares.

use crate::webhook::TemplateCategory;
use serde::Serialize;
use serde_json::Value;

use crate::job::{
    ButtonParameter, ButtonSubType, TemplateComponent, TemplateMessage, TemplateParameter,
};

/// How a template names its variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`, ...
    Positional,
    /// `{{first_name}}`, ... (`parameter_format: NAMED`).
    Named,
}

/// The parameters a stored template expects, read from Meta's `components` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateShape {
    pub format: ParameterFormat,
    /// `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT` or `LOCATION`; `None` without a header.
    pub header_format: Option<String>,
    /// Variables of a text header, in order of appearance.
    pub header_vars: Vec<String>,
    /// Variables of the body, in order of appearance.
    pub body_vars: Vec<String>,
    /// Buttons in order: what a send must supply for each.
    pub buttons: Vec<ButtonShape>,
}

/// What one template button needs at send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonShape {
    /// Quick reply: an optional payload.
    QuickReply,
    /// A URL button; `dynamic` when its URL ends in a variable (one text parameter required).
    Url { dynamic: bool },
    /// Copy-code (marketing coupon): one `coupon_code` parameter.
    CopyCode,
    /// Authentication one-time password: sent as a `url` button carrying the code.
    Otp,
    /// Flow, catalog and the like: an optional action parameter.
    Action,
    /// Phone number and other static buttons: nothing to supply.
    Static,
}

/// Every variable in `text` (`{{1}}`, `{{name}}`), in order.
pub fn variables(text: &str) -> Vec<String> {
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

impl TemplateShape {
    /// Reads the shape of a template from its `parameter_format` and Meta's `components` array
    /// (as returned by `GET /{waba}/message_templates`). Authentication templates carry no body
    /// text: their body takes the one-time code.
    pub fn from_definition(
        parameter_format: Option<&str>,
        category: Option<&TemplateCategory>,
        components: &Value,
    ) -> TemplateShape {
        let format = if parameter_format.is_some_and(|f| f.eq_ignore_ascii_case("NAMED")) {
            ParameterFormat::Named
        } else {
            ParameterFormat::Positional
        };
        let comps = components.as_array().map(Vec::as_slice).unwrap_or_default();
        let find = |kind: &str| {
            comps.iter().find(|c| {
                c.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
        };
        let text_of = |c: &Value| {
            c.get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let header = find("HEADER");
        let header_format = header.map(|h| {
            h.get("format")
                .and_then(Value::as_str)
                .unwrap_or("TEXT")
                .to_ascii_uppercase()
        });
        let header_vars = match (header, header_format.as_deref()) {
            (Some(h), Some("TEXT")) => variables(&text_of(h)),
            _ => Vec::new(),
        };
        let authentication = category == Some(&TemplateCategory::Authentication);
        let body_vars = if authentication {
            vec!["1".to_owned()]
        } else {
            find("BODY")
                .map(|b| variables(&text_of(b)))
                .unwrap_or_default()
        };
        let buttons = find("BUTTONS")
            .and_then(|b| b.get("buttons"))
            .and_then(Value::as_array)
            .map(|bs| {
                bs.iter()
                    .map(|b| {
                        match b
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_ascii_uppercase()
                            .as_str()
                        {
                            "QUICK_REPLY" => ButtonShape::QuickReply,
                            "URL" => ButtonShape::Url {
                                dynamic: b
                                    .get("url")
                                    .and_then(Value::as_str)
                                    .is_some_and(|u| u.contains("{{")),
                            },
                            "COPY_CODE" => ButtonShape::CopyCode,
                            "OTP" => ButtonShape::Otp,
                            "FLOW" | "CATALOG" | "MPM" | "SPM" => ButtonShape::Action,
                            _ => ButtonShape::Static,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        TemplateShape {
            format,
            header_format,
            header_vars,
            body_vars,
            buttons,
        }
    }
}

/// One way a template message does not fit its template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterProblem {
    /// Where in the job, e.g. `message.template.components[1].parameters`.
    pub path: String,
    /// Machine-readable: `parameter_count`, `parameter_names`, `header_format`,
    /// `button_unknown`, `button_sub_type`, `button_parameter`.
    pub code: &'static str,
    pub detail: String,
}

fn problem(path: String, code: &'static str, detail: String) -> ParameterProblem {
    ParameterProblem { path, code, detail }
}

/// Every mismatch between `message` and `shape` (empty when the message fits).
pub fn check_parameters(shape: &TemplateShape, message: &TemplateMessage) -> Vec<ParameterProblem> {
    let mut out = Vec::new();
    let base = "message.template.components";
    let position = |want: &str| {
        message.components.iter().position(|c| {
            matches!(
                (c, want),
                (TemplateComponent::Header { .. }, "header")
                    | (TemplateComponent::Body { .. }, "body")
            )
        })
    };
    for kind in ["header", "body"] {
        let index = position(kind);
        let given: &[TemplateParameter] = match index.map(|i| &message.components[i]) {
            Some(
                TemplateComponent::Header { parameters } | TemplateComponent::Body { parameters },
            ) => parameters,
            _ => &[],
        };
        let path = index.map_or_else(|| base.to_owned(), |i| format!("{base}[{i}].parameters"));
        let media_header =
            kind == "header" && shape.header_format.as_deref().is_some_and(|f| f != "TEXT");
        if media_header {
            let want = shape
                .header_format
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match given {
                [p] => {
                    let got = match p {
                        TemplateParameter::Image { .. } => "image",
                        TemplateParameter::Video { .. } => "video",
                        TemplateParameter::Document { .. } => "document",
                        TemplateParameter::Location { .. } => "location",
                        _ => "text",
                    };
                    if got != want {
                        out.push(problem(
                            path,
                            "header_format",
                            format!("the template's header is {want}; the job gives {got}"),
                        ));
                    }
                }
                _ => out.push(problem(
                    path,
                    "parameter_count",
                    format!(
                        "the template's {want} header takes 1 parameter; the job gives {}",
                        given.len()
                    ),
                )),
            }
            continue;
        }
        let expected = if kind == "header" {
            &shape.header_vars
        } else {
            &shape.body_vars
        };
        if given.len() != expected.len() {
            out.push(problem(
                path,
                "parameter_count",
                format!(
                    "the template's {kind} takes {} parameter(s); the job gives {}",
                    expected.len(),
                    given.len()
                ),
            ));
            continue;
        }
        if shape.format == ParameterFormat::Named {
            let mut names: Vec<&str> = given
                .iter()
                .filter_map(TemplateParameter::parameter_name)
                .collect();
            let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
            names.sort_unstable();
            want.sort_unstable();
            if names != want {
                out.push(problem(
                    path,
                    "parameter_names",
                    format!(
                        "the template's {kind} names {}; the job names {}",
                        want.join(", "),
                        names.join(", ")
                    ),
                ));
            }
        } else if given.iter().any(|p| p.parameter_name().is_some()) {
            out.push(problem(
                path,
                "parameter_names",
                format!("the template's {kind} is positional; parameter_name must be absent"),
            ));
        }
    }

    // Buttons: each supplied one must exist with the right sub-type; each that needs a value must
    // get one.
    let mut supplied = vec![false; shape.buttons.len()];
    for (i, c) in message.components.iter().enumerate() {
        let TemplateComponent::Button {
            sub_type,
            index,
            parameters,
        } = c
        else {
            continue;
        };
        let path = format!("{base}[{i}]");
        let Some(button) = shape.buttons.get(usize::from(*index)) else {
            out.push(problem(
                path,
                "button_unknown",
                format!(
                    "the template has {} button(s); there is no index {index}",
                    shape.buttons.len()
                ),
            ));
            continue;
        };
        supplied[usize::from(*index)] = true;
        let fits = match (button, sub_type) {
            (ButtonShape::QuickReply, ButtonSubType::QuickReply) => parameters
                .iter()
                .all(|p| matches!(p, ButtonParameter::Payload { .. })),
            (ButtonShape::Url { dynamic: true } | ButtonShape::Otp, ButtonSubType::Url) => {
                matches!(parameters.as_slice(), [ButtonParameter::Text { .. }])
            }
            (ButtonShape::Url { dynamic: false }, ButtonSubType::Url) => parameters.is_empty(),
            (ButtonShape::CopyCode, ButtonSubType::CopyCode) => {
                matches!(parameters.as_slice(), [ButtonParameter::CouponCode { .. }])
            }
            (ButtonShape::Action, ButtonSubType::Flow | ButtonSubType::Catalog) => parameters
                .iter()
                .all(|p| matches!(p, ButtonParameter::Action { .. })),
            (ButtonShape::Static, _) => false,
            _ => {
                out.push(problem(
                    path,
                    "button_sub_type",
                    format!("button {index} of the template is {button:?}; the job sends sub_type {sub_type:?}"),
                ));
                continue;
            }
        };
        if !fits {
            out.push(problem(
                format!("{path}.parameters"),
                "button_parameter",
                format!("button {index} ({button:?}) does not take these parameters"),
            ));
        }
    }
    for (index, button) in shape.buttons.iter().enumerate() {
        let needs = matches!(
            button,
            ButtonShape::Url { dynamic: true } | ButtonShape::CopyCode | ButtonShape::Otp
        );
        if needs && !supplied[index] {
            out.push(problem(
                base.to_owned(),
                "button_parameter",
                format!("button {index} ({button:?}) needs a parameter; the job gives none"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(components: Value) -> TemplateMessage {
        serde_json::from_value(
            json!({"name": "t", "language": {"code": "en_US"}, "components": components}),
        )
        .unwrap()
    }

    fn order_update() -> TemplateShape {
        TemplateShape::from_definition(
            Some("POSITIONAL"),
            Some(&TemplateCategory::Utility),
            &json!([
                {"type": "HEADER", "format": "IMAGE"},
                {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships {{3}}."},
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "OK"},
                    {"type": "URL", "text": "Track", "url": "https://x.example/o/{{1}}"}
                ]}
            ]),
        )
    }

    #[test]
    fn reads_the_shape_of_a_definition() {
        let s = order_update();
        assert_eq!(s.header_format.as_deref(), Some("IMAGE"));
        assert_eq!(s.body_vars, ["1", "2", "3"]);
        assert_eq!(
            s.buttons,
            [ButtonShape::QuickReply, ButtonShape::Url { dynamic: true }]
        );
    }

    #[test]
    fn a_fitting_message_has_no_problems() {
        let m = message(json!([
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/h.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "#1"},
                {"type": "date_time", "date_time": {"fallback_value": "Monday"}}]},
            {"type": "button", "sub_type": "url", "index": 1, "parameters": [{"type": "text", "text": "o/1"}]}
        ]));
        assert_eq!(check_parameters(&order_update(), &m), []);
    }

    #[test]
    fn every_mismatch_is_reported() {
        let m = message(json!([
            {"type": "header", "parameters": [{"type": "text", "text": "x"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ann"}]},
            {"type": "button", "sub_type": "quick_reply", "index": 1, "parameters": [{"type": "payload", "payload": "p"}]},
            {"type": "button", "sub_type": "quick_reply", "index": 5, "parameters": []}
        ]));
        let codes: Vec<_> = check_parameters(&order_update(), &m)
            .iter()
            .map(|p| (p.path.clone(), p.code))
            .collect();
        assert_eq!(
            codes,
            [
                (
                    "message.template.components[0].parameters".to_owned(),
                    "header_format"
                ),
                (
                    "message.template.components[1].parameters".to_owned(),
                    "parameter_count"
                ),
                (
                    "message.template.components[2]".to_owned(),
                    "button_sub_type"
                ),
                (
                    "message.template.components[3]".to_owned(),
                    "button_unknown"
                ),
            ]
        );
    }

    #[test]
    fn named_parameters_must_match_by_name() {
        let shape = TemplateShape::from_definition(
            Some("NAMED"),
            Some(&TemplateCategory::Marketing),
            &json!([{"type": "BODY", "text": "Hi {{first_name}}, {{offer}} today"}]),
        );
        let ok = message(json!([{"type": "body", "parameters": [
            {"type": "text", "text": "20%", "parameter_name": "offer"},
            {"type": "text", "text": "Ann", "parameter_name": "first_name"}]}]));
        assert_eq!(check_parameters(&shape, &ok), []);
        let wrong = message(json!([{"type": "body", "parameters": [
            {"type": "text", "text": "20%", "parameter_name": "offer"},
            {"type": "text", "text": "Ann", "parameter_name": "name"}]}]));
        assert_eq!(check_parameters(&shape, &wrong)[0].code, "parameter_names");
    }

    #[test]
    fn authentication_templates_take_the_code_in_body_and_button() {
        let shape = TemplateShape::from_definition(
            None,
            Some(&TemplateCategory::Authentication),
            &json!([{"type": "BODY", "add_security_recommendation": true},
                    {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}]),
        );
        let ok = message(json!([
            {"type": "body", "parameters": [{"type": "text", "text": "123456"}]},
            {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "123456"}]}
        ]));
        assert_eq!(check_parameters(&shape, &ok), []);
        let missing =
            message(json!([{"type": "body", "parameters": [{"type": "text", "text": "123456"}]}]));
        assert_eq!(
            check_parameters(&shape, &missing)[0].code,
            "button_parameter"
        );
    }
}
