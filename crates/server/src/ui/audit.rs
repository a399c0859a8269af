//! The audit trail, newest first, filtered by action and resource.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use carehook_store::AuditFilter;
use serde::Deserialize;

use super::session::Admin;
use super::{Page, UiError, UiState, html};

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
    cursor: Option<String>,
}

struct Row {
    seq: i64,
    at: super::When,
    actor: String,
    client: String,
    action: String,
    resource: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage {
    page: Page,
    action: String,
    resource: String,
    rows: Vec<Row>,
    next: Option<String>,
}

pub async fn page(
    State(state): State<UiState>,
    admin: Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Response, UiError> {
    let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let found = crate::service::audit::list(
        &state.app,
        AuditFilter {
            action: nonempty(&q.action),
            resource: nonempty(&q.resource),
            limit: 100,
            cursor: q.cursor.as_deref().and_then(nonempty),
            ..AuditFilter::default()
        },
    )
    .await?;
    let zone = super::clinic_zone(&state).await;
    let now = crate::time::now_ms();
    let rows = found
        .items
        .into_iter()
        .map(|r| Row {
            seq: r.seq,
            at: super::When::new(r.at, now, zone),
            actor: r.actor,
            client: r.client_addr.unwrap_or_else(|| "-".into()),
            action: r.action,
            resource: r.resource,
            outcome: r.outcome,
        })
        .collect();
    Ok(html(&AuditPage {
        page: Page::new(&state, &admin, "Audit trail", "audit").await,
        action: q.action,
        resource: q.resource,
        rows,
        next: found.next_cursor,
    }))
}
