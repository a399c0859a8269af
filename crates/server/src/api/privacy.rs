//! Patient data: a patient's erasure, a purge by hand, and the audit trail.

use axum::Json;
use axum::extract::State;
use carehook_store::{AuditFilter, AuditRow, ErasureCounts, PurgeCounts};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::{check_limit, nonempty};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use super::{AppState, Caller};
use crate::service::{audit, privacy};
use crate::time::{now_ms, parse_time, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(erase))
        .routes(routes!(purge))
        .routes(routes!(list_audit))
}

/// What an erasure changed, per table.
#[derive(Debug, Serialize, ToSchema)]
struct Erased {
    patient_id: String,
    /// Event snapshots erased.
    events: u64,
    /// Attempts whose request and response bodies were erased.
    attempts: u64,
    /// Pending deliveries cancelled (failed, with the reason).
    deliveries_cancelled: u64,
    /// Clinic records made tombstones, per table.
    records: std::collections::BTreeMap<String, u64>,
}

/// Erases a patient's data: the snapshots of events linked to them (`patient_id` in the
/// event's data), their deliveries' request and response bodies, and their clinic records
/// (made tombstones). Their pending deliveries are cancelled. Audited; calling it again
/// changes nothing more.
#[utoipa::path(post, path = "/patients/{id}/erase", tag = "patient data",
    params(("id" = String, Path, description = "The patient's id, as events carry it in patient_id", pattern = r"^[A-Za-z0-9._-]{1,100}$")),
    responses((status = 200, body = Erased), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Erased>> {
    let ErasureCounts {
        events,
        attempts,
        deliveries_cancelled,
        records,
    } = privacy::erase(&*state.store, &caller.actor(), &id, now_ms()).await?;
    Ok(Json(Erased {
        patient_id: id.trim().to_string(),
        events,
        attempts,
        deliveries_cancelled,
        records,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    /// Remove payloads from before this time (RFC 3339, or unix ms).
    #[schema(
        example = "2026-10-01T00:00:00Z",
        pattern = r"^(-?[0-9]{1,15}|(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
    )]
    before: String,
    /// Count only; change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct Purged {
    before: String,
    dry_run: bool,
    /// Event snapshots removed (or, dry run, that would be).
    events: u64,
    /// Attempts whose bodies were removed (or would be).
    attempts: u64,
}

/// Removes event snapshots and attempt bodies from before a time, whatever the retention
/// settings; deliveries still pending keep theirs. Metadata (ids, status, times, sizes,
/// SHA-256) stays. Audited.
#[utoipa::path(post, path = "/purge", tag = "patient data", request_body = PurgeRequest,
    responses((status = 200, body = Purged), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PurgeRequest>,
) -> ApiResult<Json<Purged>> {
    let before = parse_time(&body.before).ok_or_else(|| {
        ApiError::invalid(
            "before",
            format!(
                "\"{}\" is not an RFC 3339 time or unix milliseconds",
                body.before
            ),
        )
    })?;
    let PurgeCounts { events, attempts } = privacy::purge_before(
        &*state.store,
        &caller.actor(),
        before,
        now_ms(),
        body.dry_run,
    )
    .await?;
    Ok(Json(Purged {
        before: rfc3339(before),
        dry_run: body.dry_run,
        events,
        attempts,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// An action (`delivery.read`), or every action under a prefix ending in `.` (`webhook.`)
    action: Option<String>,
    /// A resource (`delivery/0190…`)
    resource: Option<String>,
    /// An actor, as the trail writes it
    actor: Option<String>,
    /// At or after (RFC 3339, or unix ms)
    #[param(
        pattern = r"^(-?[0-9]{1,15}|(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-3]):[0-5][0-9]))?$"
    )]
    since: Option<String>,
    /// Before (RFC 3339, or unix ms)
    #[param(
        pattern = r"^(-?[0-9]{1,15}|(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-3]):[0-5][0-9]))?$"
    )]
    until: Option<String>,
    /// Page size, 1 to 1000 (default 50)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page
    #[param(pattern = r"^[0-9]{0,15}$")]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its place in the chain, from 1.
    seq: i64,
    at: String,
    actor: String,
    client_addr: Option<String>,
    action: String,
    resource: String,
    outcome: String,
    details: serde_json::Value,
    prev_hash: String,
    hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct AuditPage {
    items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

pub fn entry(r: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: r.seq,
        at: rfc3339(r.at),
        actor: r.actor,
        client_addr: r.client_addr,
        action: r.action,
        resource: r.resource,
        outcome: r.outcome,
        details: r.details,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

/// The audit trail, newest first, filtered and paged. Export it by paging to the end;
/// `carehook audit verify` checks its hash chain.
#[utoipa::path(get, path = "/audit", tag = "patient data", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_audit(
    State(state): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let time = |field: &str, v: Option<String>| -> ApiResult<Option<i64>> {
        nonempty(v)
            .map(|t| {
                parse_time(&t).ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        format!("\"{t}\" is not an RFC 3339 time or unix milliseconds"),
                    )
                })
            })
            .transpose()
    };
    let page = audit::list(
        &state,
        AuditFilter {
            action: nonempty(q.action),
            resource: nonempty(q.resource),
            actor: nonempty(q.actor),
            since: time("since", q.since)?,
            until: time("until", q.until)?,
            limit: check_limit(q.limit)?,
            cursor: nonempty(q.cursor),
        },
    )
    .await?;
    Ok(Json(AuditPage {
        items: page.items.into_iter().map(entry).collect(),
        next_cursor: page.next_cursor,
    }))
}
