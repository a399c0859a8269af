//! Clinic records over HTTP: `/clinics`, `/doctors`, `/receptionists`, `/patients`,
//! `/appointments`, `/encounters`, `/encounters/{id}/medical-records`,
//! `/encounters/{id}/prescriptions`, `/bills`, `/bills/{id}/payments`, each with create, get,
//! list (paged; filtered by clinic, patient, doctor, parent and date), PATCH and DELETE.
//!
//! One set of handlers serves every kind: a kind is its field table in carehook-core, so the
//! routes are generated from [`Kind::ALL`]. What a change does (validation, the cross-record
//! rules, billing, the events it fires) is [`crate::service::clinic`]'s, which the demo clinic
//! calls too.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use carehook_core::clinic::{Kind, Ref};
use carehook_store::RecordFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::{AppState, Caller};
use crate::service::clinic::{self, Records};

/// The header that says which clinic user acted (`current_user_id` in the events).
pub const USER_HEADER: &str = "x-carehook-user-id";

/// Kinds created under their parent's path rather than at their own collection.
pub(super) const NESTED: [Kind; 3] = [Kind::MedicalRecord, Kind::Prescription, Kind::Payment];

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for kind in Kind::ALL {
        let base = format!("/{}", kind.collection());
        let list_route = get(
            move |s: State<AppState>, c: Caller, q: ApiQuery<ListQuery>| list(s, c, q, kind, None),
        );
        let collection = if NESTED.contains(&kind) {
            list_route
        } else {
            list_route.post(
                move |s: State<AppState>, c: Caller, h: HeaderMap, b: ApiJson<Value>| {
                    create_handler(s, c, h, b, kind, None)
                },
            )
        };
        r = r.route(&base, collection).route(
            &format!("{base}/{{id}}"),
            get(move |s: State<AppState>, c: Caller, id: ApiPath<i64>| get_one(s, c, id, kind))
                .patch(
                    move |s: State<AppState>,
                          c: Caller,
                          h: HeaderMap,
                          id: ApiPath<i64>,
                          b: ApiJson<Value>| {
                        update_handler(s, c, h, id, b, kind)
                    },
                )
                .delete(
                    move |s: State<AppState>, c: Caller, h: HeaderMap, id: ApiPath<i64>| {
                        delete_handler(s, c, h, id, kind)
                    },
                ),
        );
        if let (true, Some(parent)) = (NESTED.contains(&kind), kind.parent()) {
            r = r.route(
                &format!(
                    "/{}/{{id}}/{}",
                    parent.kind().collection(),
                    kind.collection()
                ),
                post(
                    move |s: State<AppState>,
                          c: Caller,
                          h: HeaderMap,
                          ApiPath(id): ApiPath<i64>,
                          b: ApiJson<Value>| {
                        create_handler(s, c, h, b, kind, Some((parent, id)))
                    },
                )
                .get(
                    move |s: State<AppState>,
                          c: Caller,
                          ApiPath(id): ApiPath<i64>,
                          q: ApiQuery<ListQuery>| {
                        list(s, c, q, kind, Some((parent, id)))
                    },
                ),
            );
        }
    }
    r
}

// --- handlers -------------------------------------------------------------------------------

async fn create_handler(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
    kind: Kind,
    parent: Option<(Ref, i64)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = user_id(&headers)?;
    let answer = clinic::create(
        &Records::of(&state),
        &caller.actor(),
        kind,
        parent,
        body,
        user,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn update_handler(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    let user = user_id(&headers)?;
    Ok(Json(
        clinic::update(&Records::of(&state), &caller.actor(), kind, id, body, user).await?,
    ))
}

async fn delete_handler(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    let user = user_id(&headers)?;
    Ok(Json(
        clinic::delete(&Records::of(&state), &caller.actor(), kind, id, user).await?,
    ))
}

async fn get_one(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    Ok(Json(clinic::view(&clinic::get(&state, kind, id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    clinic_id: Option<i64>,
    doctor_id: Option<i64>,
    patient_id: Option<i64>,
    appointment_id: Option<i64>,
    encounter_id: Option<i64>,
    bill_id: Option<i64>,
    /// One day, or the first day of a range with `date_to`.
    date: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
    kind: Kind,
    parent: Option<(Ref, i64)>,
) -> ApiResult<Json<Value>> {
    let mut refs: Vec<(Ref, i64)> = parent.into_iter().collect();
    for (r, id) in [
        (Ref::Clinic, q.clinic_id),
        (Ref::Doctor, q.doctor_id),
        (Ref::Patient, q.patient_id),
        (Ref::Appointment, q.appointment_id),
        (Ref::Encounter, q.encounter_id),
        (Ref::Bill, q.bill_id),
    ] {
        if let Some(id) = id {
            if !kind.filterable_by(r) {
                return Err(ApiError::invalid(
                    r.column(),
                    format!("{}s cannot be filtered by {}", kind.noun(), r.column()),
                ));
            }
            refs.push((r, id));
        }
    }
    let day = |field: &str, d: Option<String>| -> ApiResult<Option<String>> {
        if d.is_some() && !kind.has_day() {
            return Err(ApiError::invalid(
                field,
                format!("{}s have no date to filter by", kind.noun()),
            ));
        }
        d.map(|d| {
            carehook_core::clinic::parse_date(&d)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .map_err(|e| ApiError::invalid(field, e))
        })
        .transpose()
    };
    let exact = day("date", q.date)?;
    let page = clinic::list(
        &state,
        kind,
        RecordFilter {
            refs,
            day_from: day("date_from", q.date_from)?.or(exact.clone()),
            day_to: day("date_to", q.date_to)?.or(exact),
            limit: super::deliveries::check_limit(q.limit)?,
            cursor: super::deliveries::nonempty(q.cursor),
        },
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(clinic::view).collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

fn user_id(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(USER_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                USER_HEADER,
                "must be the id (an integer) of the clinic user who acted",
            )
        })
}
