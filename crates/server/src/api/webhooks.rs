//! Webhooks: create, read, change, delete, rotate the signing secret, retry
//! the failed deliveries of a time range, and statistics.
//!
//! The rules (compiling before writing, sealing secrets, the registry, who
//! disabled what) live in [`crate::service::webhooks`]; here is HTTP.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehook_core::ids::WebhookId;
use carehook_core::webhook::WebhookSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody, LaterJson};
use super::{AppState, Caller};
use crate::service::access;
use crate::service::webhooks;
use crate::time::{now_ms, parse_time, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(retry_failed))
        .routes(routes!(stats))
        .routes(routes!(replay))
}

/// A webhook as the API shows it: its spec with every secret masked
/// (`"password":"********"`, and `has_password` etc. saying one is set),
/// plus what carehook keeps about it. `signing_secret` is shown in full
/// only in the answers to create and rotate-secret.
#[derive(Debug)]
pub struct WebhookView;

impl utoipa::PartialSchema for WebhookView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
        use utoipa::openapi::{RefOr, schema::AdditionalProperties};
        let RefOr::T(Schema::Object(spec)) = <WebhookSpec as utoipa::PartialSchema>::schema()
        else {
            unreachable!("WebhookSpec is an object schema")
        };
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let mut view: Object = spec;
        // The view adds fields, and its `auth` adds `has_password` etc.
        view.additional_properties = None;
        let auth = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The auth as saved, its secrets masked as \"********\"; `has_password`, `has_token`, `has_value`, `has_client_secret` or `has_refresh_token` says whether one is set."))
            .property("type", text())
            .required("type")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)));
        view.properties.insert("auth".into(), auth.build().into());
        let tls = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("Mutual TLS as saved: `client_cert` and `ca_certs` (PEM), `client_key` masked with `has_client_key`; \
                `client_cert_subject`, `client_cert_expires_at` (RFC 3339) and `client_cert_expires_soon` (within 14 days)."))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)));
        view.properties.insert("tls".into(), tls.build().into());
        let oauth = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("For an OAuth 2.0 auth: the access token's state, never the token. `state` is `ok`, `failing` \
                (the last token request failed: `last_error`, with the provider's error, secrets masked; no request before \
                `blocked_until` unless the auth is saved again) or `no_token` (none asked for yet)."))
            .property("state", text().enum_values(Some(["ok", "failing", "no_token"])))
            .property("token_expires_at", text().description(Some("RFC 3339, or null")))
            .property("last_error", text())
            .property("failed_at", text())
            .property("blocked_until", text())
            .property("refresh_token_rotated", ObjectBuilder::new().schema_type(Type::Boolean))
            .property("token_requests", ObjectBuilder::new().schema_type(Type::Integer))
            .required("state");
        view.properties.insert("oauth".into(), oauth.build().into());
        let extra: [(&str, ObjectBuilder); 6] = [
            (
                "id",
                text().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Uuid,
                ))),
            ),
            (
                "version",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("1 on create, +1 on every change")),
            ),
            ("created_at", text().description(Some("RFC 3339"))),
            ("updated_at", text().description(Some("RFC 3339"))),
            (
                "signing_secret",
                text().description(Some(
                    "`whsec_…` in the answer to create and rotate-secret; masked elsewhere",
                )),
            ),
            (
                "previous_secret_expires_at",
                text().description(Some(
                    "After rotate-secret: when the old secret stops signing (RFC 3339)",
                )),
            ),
        ];
        for (name, schema) in extra {
            view.properties.insert(name.into(), schema.build().into());
        }
        view.properties.insert(
            "disabled_reason".into(),
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .description(Some(
                    "Why carehook disabled it (410 Gone, failing for days)",
                ))
                .build()
                .into(),
        );
        let nullable_text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .description(Some(description))
                .build()
        };
        view.properties.insert(
            "disabled_by".into(),
            nullable_text("Who or what disabled it: `api token <name>`, `admin UI: token <name>`, `dispatcher: endpoint answered 410 Gone`, `auto-disable`").into(),
        );
        view.properties.insert(
            "broken_reason".into(),
            nullable_text("Why it cannot be sent (its secrets do not open with this master key); its deliveries wait").into(),
        );
        view.properties.insert(
            "data_sent".into(),
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "The patient data its URL, headers, query and body send, whatever its `data_policy` says: whether any is identifying or phi, and the variables",
                ))
                .property("identifying", ObjectBuilder::new().schema_type(Type::Boolean))
                .property("phi", ObjectBuilder::new().schema_type(Type::Boolean))
                .property(
                    "variables",
                    utoipa::openapi::schema::ArrayBuilder::new().items(text()),
                )
                .required("identifying")
                .required("phi")
                .required("variables")
                .build()
                .into(),
        );
        view.properties.insert(
            "state".into(),
            text()
                .enum_values(Some(["enabled", "disabled", "broken"]))
                .description(Some("`broken` when its secrets cannot be decrypted"))
                .build()
                .into(),
        );
        view.properties.insert(
            "warnings".into(),
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(utoipa::openapi::Ref::from_schema_name("Warning"))
                .description(Some(
                    "In the answers to create and update: saved, but worth a look",
                ))
                .build()
                .into(),
        );
        for r in [
            "id",
            "version",
            "created_at",
            "updated_at",
            "signing_secret",
        ] {
            view.required.push(r.into());
        }
        RefOr::T(Schema::Object(view))
    }
}

impl ToSchema for WebhookView {
    fn name() -> std::borrow::Cow<'static, str> {
        "Webhook".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema as _;
        schemas.push(("WebhookSpec".into(), WebhookSpec::schema()));
        <WebhookSpec as ToSchema>::schemas(schemas);
        schemas.push(("Warning".into(), carehook_core::webhook::Warning::schema()));
        <carehook_core::webhook::Warning as ToSchema>::schemas(schemas);
    }
}

/// A webhook as written, or one made from a preset.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // read as JSON by `service::webhooks::spec_from_json`; described here
enum NewWebhookBody {
    Spec(WebhookSpec),
    Preset(super::presets::FromPreset),
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built as JSON; described here
struct WebhookList {
    items: Vec<WebhookView>,
}

/// Creates a webhook. The answer carries its signing secret, once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhookBody,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, description = "Invalid: the error names the field, and for a template its line and column", body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = webhooks::spec_from_json(body)?;
    access::check_spec_clinics(&caller, &spec.clinics)?;
    let view = webhooks::create(&state, &caller.actor(), spec).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Every webhook, oldest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), ))]
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let mut all = webhooks::list(&state).await?;
    all.retain(|w| caller.sees_webhook(w));
    let items = webhooks::views(&state, &all).await;
    Ok(Json(json!({ "items": items })))
}

/// One webhook.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
) -> ApiResult<Json<Value>> {
    let w = access::webhook(&state, &caller, id).await?;
    Ok(Json(webhooks::view(&state, &w).await))
}

/// Changes a webhook with a JSON merge patch (RFC 7396): the fields sent
/// replace the webhook's, `null` resets one to its default. A secret not
/// sent, or sent back masked, stays as it was.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body(content = Object, description = "The fields to change", content_type = "application/json"),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The webhook is broken (its stored configuration cannot be read); see its `broken` reason", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
    patch: LaterJson,
) -> ApiResult<Json<Value>> {
    access::webhook(&state, &caller, id).await?;
    let patch: Value = patch.parse()?;
    if let Some(clinics) = patch.get("clinics") {
        access::check_spec_clinics(&caller, &access::clinics_of_json(clinics))?;
    }
    Ok(Json(
        webhooks::update(&state, &caller.actor(), id, patch).await?,
    ))
}

/// Deletes a webhook. Its delivery log stays; its pending deliveries end as failed.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
) -> ApiResult<StatusCode> {
    access::webhook(&state, &caller, id).await?;
    webhooks::delete(&state, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the old one keeps signing for 24 hours so
/// receivers can switch without dropping a request.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook with its new `signing_secret` and `previous_secret_expires_at`", body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The webhook is broken (its stored configuration cannot be read); see its `broken` reason", body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
) -> ApiResult<Json<Value>> {
    access::webhook(&state, &caller, id).await?;
    Ok(Json(
        webhooks::rotate_secret(&state, &caller.actor(), id).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryFailed {
    /// Deliveries created at or after this (RFC 3339, or unix ms). Default: the beginning.
    #[serde(default)]
    #[schema(example = "2026-11-26T00:00:00Z")]
    pub(crate) since: Option<String>,
    /// Deliveries created before this (RFC 3339, or unix ms). Default: now.
    #[serde(default)]
    pub(crate) until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Retried {
    /// The deliveries set to be sent again now, by id.
    pub(crate) retried: Vec<Uuid>,
    pub(crate) count: usize,
}

/// Sends every failed delivery of this webhook created in `[since, until)`
/// again, now. Succeeded and pending ones are left alone.
#[utoipa::path(post, path = "/webhooks/{id}/retry-failed", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = RetryFailed,
    responses((status = 200, body = Retried), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn retry_failed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
    body: LaterJson,
) -> ApiResult<Json<Retried>> {
    access::webhook(&state, &caller, id).await?;
    let body: RetryFailed = body.parse()?;
    let time = |field: &str, v: Option<String>, default: i64| -> ApiResult<i64> {
        match v {
            None => Ok(default),
            Some(t) => parse_time(&t).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("\"{t}\" is not an RFC 3339 time (2026-11-26T14:05:00Z) or unix milliseconds"),
                )
            }),
        }
    };
    let now = now_ms();
    let since = time("since", body.since.filter(|t| !t.is_empty()), 0)?;
    let until = time("until", body.until.filter(|t| !t.is_empty()), now + 1)?;
    let retried = webhooks::retry_failed(&state, &caller.actor(), id, since, until).await?;
    Ok(Json(Retried {
        count: retried.len(),
        retried: retried.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Stats {
    webhook_id: Uuid,
    /// The last hour, day and week (`1h`, `24h`, `7d`). Test sends are left out.
    windows: Vec<WindowStats>,
    /// The newest delivery that was tried.
    last: Option<LastDeliveryView>,
}

#[derive(Debug, Serialize, ToSchema)]
struct WindowStats {
    /// `1h`, `24h` or `7d`
    window: String,
    /// Deliveries created in the window, by status.
    deliveries: DeliveryCounts,
    /// Attempts made in the window, by outcome.
    attempts: AttemptCounts,
    /// Succeeded / (succeeded + failed) deliveries; null when none finished.
    success_rate: Option<f64>,
    /// Median attempt duration, in ms.
    p50_ms: Option<i64>,
    /// 95th percentile attempt duration, in ms.
    p95_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct DeliveryCounts {
    pending: u64,
    succeeded: u64,
    failed: u64,
    /// Withdrawn before they were sent (scheduled deliveries); not failures.
    superseded: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct AttemptCounts {
    succeeded: u64,
    failed: u64,
    retry: u64,
    gave_up: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct LastDeliveryView {
    delivery_id: Uuid,
    /// pending, succeeded, failed or superseded
    #[schema(value_type = super::deliveries::DeliveryStatusName)]
    status: String,
    /// The HTTP status of its last answer, if there was one.
    http_status: Option<i64>,
    error: Option<String>,
    /// When it last changed (RFC 3339).
    at: String,
}

/// Counts by outcome, success rate and attempt durations (p50, p95) over
/// the last hour, day and week, and the last status and error.
#[utoipa::path(get, path = "/webhooks/{id}/stats", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
) -> ApiResult<Json<Stats>> {
    access::webhook(&state, &caller, id).await?;
    let s = webhooks::stats(&state, id).await?;
    Ok(Json(Stats {
        webhook_id: id.into(),
        windows: s
            .windows
            .into_iter()
            .map(|w| WindowStats {
                window: w.window.to_string(),
                deliveries: DeliveryCounts {
                    pending: w.pending,
                    succeeded: w.succeeded,
                    failed: w.failed,
                    superseded: w.superseded,
                },
                attempts: AttemptCounts {
                    succeeded: w.attempts_succeeded,
                    failed: w.attempts_failed,
                    retry: w.attempts_retry,
                    gave_up: w.attempts_gave_up,
                },
                success_rate: w.success_rate,
                p50_ms: w.p50_ms,
                p95_ms: w.p95_ms,
            })
            .collect(),
        last: s.last.map(|l| LastDeliveryView {
            delivery_id: l.delivery_id.into(),
            status: l.status.to_string(),
            http_status: l.http_status,
            error: l.error,
            at: rfc3339(l.at),
        }),
    }))
}

// --- replay ---------------------------------------------------------------------------------

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// Events created at or after this (RFC 3339, or unix ms).
    #[schema(example = "2026-11-26T00:00:00Z")]
    pub(crate) since: String,
    /// Events created before this (RFC 3339, or unix ms). Default: now.
    #[serde(default)]
    pub(crate) until: Option<String>,
    /// Only these events (names or aliases the webhook subscribes to). Default: all of its events.
    #[serde(default)]
    pub(crate) events: Option<Vec<String>>,
    /// Skip events the webhook already has a succeeded delivery of. Default true; false sends
    /// those again too. An event with a pending delivery to the webhook is always skipped.
    #[serde(default = "yes")]
    pub(crate) only_missing: bool,
    /// Count only, create nothing (what the UI shows before confirming).
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// `next_cursor` of the previous answer, to go on through a long range.
    #[serde(default)]
    pub(crate) cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayAnswer {
    dry_run: bool,
    only_missing: bool,
    /// The events considered (canonical names).
    events: Vec<String>,
    /// Events read in the range (at most 5,000 per call).
    scanned: u64,
    /// Deliveries created (dry run: that would be created).
    created: u64,
    skipped_already_delivered: u64,
    /// A delivery of the event to this webhook is still pending: it is not doubled.
    skipped_in_flight: u64,
    /// The event's stored data is purged or past the retention.
    skipped_expired: u64,
    /// The patient's data was erased.
    skipped_erased: u64,
    /// The webhook's conditions do not hold on the event.
    skipped_conditions: u64,
    /// The event's stored data cannot be opened with this master key.
    skipped_unreadable: u64,
    /// Why, in words, for each non-zero skip count.
    reasons: std::collections::BTreeMap<String, String>,
    /// The deliveries created (the first 100).
    delivery_ids: Vec<Uuid>,
    /// Present when the range holds more events than one call reads: send the same request
    /// again with this `cursor`.
    next_cursor: Option<String>,
}

/// Sends the webhook's stored events of `[since, until)` to it again, rendered through its
/// current templates, as new deliveries (sent under its rate limit). `only_missing` (default)
/// skips events it already delivered; an event with a pending delivery to it is always skipped,
/// so repeating a call creates nothing new. Events whose stored data is gone (retention,
/// erasure) are counted, not sent. `dry_run` counts only.
#[utoipa::path(post, path = "/webhooks/{id}/replay", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = ReplayBody,
    responses((status = 200, body = ReplayAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
    body: LaterJson,
) -> ApiResult<Json<ReplayAnswer>> {
    access::webhook(&state, &caller, id).await?;
    let body: ReplayBody = body.parse()?;
    let time = |field: &str, t: &str| -> ApiResult<i64> {
        parse_time(t).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!(
                    "\"{t}\" is not an RFC 3339 time (2026-11-26T14:05:00Z) or unix milliseconds"
                ),
            )
        })
    };
    let since = time("since", &body.since)?;
    let until = match body.until.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => time("until", t)?,
        None => now_ms() + 1,
    };
    let r = crate::service::replay::replay(
        &state,
        &caller.actor(),
        id,
        crate::service::replay::Replay {
            since,
            until,
            events: body.events,
            only_missing: body.only_missing,
            dry_run: body.dry_run,
            cursor: body.cursor.filter(|c| !c.is_empty()),
        },
    )
    .await?;
    Ok(Json(ReplayAnswer {
        dry_run: r.dry_run,
        only_missing: r.only_missing,
        events: r.events,
        scanned: r.scanned,
        created: r.created,
        skipped_already_delivered: r.skipped_already_delivered,
        skipped_in_flight: r.skipped_in_flight,
        skipped_expired: r.skipped_expired,
        skipped_erased: r.skipped_erased,
        skipped_conditions: r.skipped_conditions,
        skipped_unreadable: r.skipped_unreadable,
        reasons: r
            .reasons
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        delivery_ids: r.delivery_ids.into_iter().map(Into::into).collect(),
        next_cursor: r.next_cursor,
    }))
}
