//! The template sync: the backstop for a missed or late status webhook. Reads every template
//! Meta lists for an account and stores each as Meta reports it.

use serde::Serialize;

use crate::graph::ErrorAction;
use crate::ports::{GraphCallError, StoreError, TemplateApi, TemplateStore};
use crate::templates::TemplateDefinition;

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Templates Meta listed.
    pub seen: usize,
    /// Records the sync changed (a status, category or definition we did not have).
    pub updated: usize,
    pub pages: usize,
    /// Times the listing started over because Meta refused a paging cursor (131059).
    pub restarts: usize,
}

/// A sync starts its listing over at most this many times after 131059 (a cursor that went
/// stale while we paged: templates were deleted meanwhile).
pub const MAX_SYNC_RESTARTS: usize = 3;

/// A sync stops after this many pages (100 templates each): far above Meta's per-WABA cap.
pub const MAX_SYNC_PAGES: usize = 100;

/// Reads every template of `waba_id` (following the paging cursors) and stores each as Meta
/// reports it at `now`: the backstop for a missed or late status webhook. A Graph error stops the
/// sync and is returned (4 and 80007 are rate limits: retry later).
pub async fn sync_templates<A: TemplateApi, S: TemplateStore>(
    api: &A,
    store: &S,
    waba_id: &str,
    access_token: &str,
    now: i64,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = match api
            .list_templates(waba_id, after.as_deref(), access_token)
            .await
        {
            // Meta no longer takes the cursor (v24+): list again from the start. Storing is
            // idempotent, so the pages already read are only read again.
            Err(e)
                if after.is_some()
                    && e.classification().action == ErrorAction::RestartListing
                    && report.restarts < MAX_SYNC_RESTARTS =>
            {
                report.restarts += 1;
                after = None;
                tracing::info!(
                    waba_id,
                    "template listing cursor refused (131059); listing again from the start"
                );
                continue;
            }
            other => other?,
        };
        report.pages += 1;
        for t in &page.data {
            report.seen += 1;
            let before = store.template(waba_id, &t.name, &t.language).await?;
            let definition = TemplateDefinition {
                name: t.name.clone(),
                language: t.language.clone(),
                template_id: Some(t.id.clone()),
                status: t.status.clone(),
                category: t.category.clone(),
                parameter_format: t.parameter_format.clone(),
                components: t.components.clone(),
                rejected_reason: t.rejected_reason.clone(),
            };
            let differs = before.as_ref().is_none_or(|b| {
                b.status.as_ref() != Some(&t.status)
                    || b.category.as_ref() != Some(&t.category)
                    || b.components.as_deref() != Some(t.components.to_string().as_str())
            });
            if store.put_definition(waba_id, &definition, now).await? && differs {
                report.updated += 1;
            }
        }
        match page.next_after() {
            Some(a) if report.pages < MAX_SYNC_PAGES => after = Some(a.to_owned()),
            _ => return Ok(report),
        }
    }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Graph(#[from] GraphCallError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
