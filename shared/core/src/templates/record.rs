//! What the templates table keeps about a template, and Meta's edit limits on approved ones.

use super::TemplateViolation;
use crate::webhook::{TemplateCategory, TemplateStatus};

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
