//! The API's one error shape: `{"error":{"code","message","field"?}}`, and
//! the JSON body extractor that turns malformed input into it.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use carehook_core::webhook::ValidationError;

/// Largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Extra members of the error object (line, column, variable…).
    pub details: Option<serde_json::Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} with that id"),
        )
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
        e.field = Some(field.into());
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "carehook hit an internal error; see its log",
        )
    }
}

impl From<crate::service::Error> for ApiError {
    fn from(e: crate::service::Error) -> Self {
        use crate::service::Error;
        match e {
            Error::Invalid {
                field,
                message,
                details,
            } => {
                let mut api = ApiError::invalid(field, message);
                if !details.is_empty() {
                    api.details = Some(details.into());
                }
                api
            }
            Error::BadRequest(m) => ApiError::bad_request(m),
            Error::NotFound(what) => ApiError::not_found(what),
            Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            Error::Unauthorized(m) => ApiError::unauthorized(m),
            Error::Forbidden(m) => ApiError::forbidden(m),
            // Logged where it happened.
            Error::Internal => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "carehook hit an internal error; see its log",
            ),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        crate::service::Error::from(e).into()
    }
}

impl From<carehook_store::StoreError> for ApiError {
    fn from(e: carehook_store::StoreError) -> Self {
        crate::service::Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = field.into();
        }
        if let Some(serde_json::Value::Object(extra)) = self.details {
            for (k, v) in extra {
                error[k] = v;
            }
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

/// A JSON body, parsed strictly: a syntax error is a 400 with its line and
/// column, a wrong or unknown field a 422 naming the field's path.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (is_json, bytes) = read_body(req, state).await?;
        if !is_json {
            return Err(not_json());
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out: no body at all is `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (is_json, bytes) = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(not_json());
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// A JSON body read now and parsed when the handler asks: a handler that names a webhook or
/// delivery by its path first checks the caller may see it, so another clinic's is a 404
/// whatever the body holds (a 400 or 422 about the body would confirm that it exists).
#[derive(Debug)]
pub struct LaterJson {
    is_json: bool,
    bytes: axum::body::Bytes,
}

impl LaterJson {
    /// The body, parsed as [`ApiJson`] does.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.is_json {
            return Err(not_json());
        }
        parse_json(&self.bytes)
    }

    /// The body, parsed as [`OptionalJson`] does: none at all is `T::default()`.
    pub fn parse_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.bytes.is_empty() {
            return Ok(T::default());
        }
        self.parse()
    }
}

impl<S: Send + Sync> FromRequest<S> for LaterJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (is_json, bytes) = read_body(req, state).await?;
        Ok(LaterJson { is_json, bytes })
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
    )
}

/// The body, within [`MAX_BODY_BYTES`] (else a 413), and whether it says it is JSON.
async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(bool, axum::body::Bytes), ApiError> {
    let is_json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is larger than {} bytes", MAX_BODY_BYTES),
                )
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
    Ok((is_json, bytes))
}

/// Parses JSON with the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::service::parse_json(bytes).map_err(ApiError::from)
}

/// The error body every endpoint answers with (for the OpenAPI document).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // built as JSON by `IntoResponse`; described here
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// `invalid`, `bad_request`, `not_found`, `unauthorized`, `conflict`,
    /// `too_large`, `unsupported_media_type`, `internal`…
    pub code: String,
    pub message: String,
    /// The field at fault, as a path: `body`, `auth.password`, `data.patient_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// In a template: where the mistake is (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The variable a template names that the events lack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// For `field: data_policy`: every placeholder sending more than the
    /// webhook's data policy allows, as `{"field", "line", "column",
    /// "variable", "sensitivity"}`; never a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<serde_json::Value>>,
}

/// A path parameter, with a malformed one answered in the error shape.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => {
                let mut err =
                    ApiError::bad_request(format!("bad id in the path: {}", e.body_text()));
                err.field = Some("id".into());
                Err(err)
            }
        }
    }
}

/// Query parameters, with a malformed or unknown one answered in the error
/// shape (422).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        // As axum's `Query`, with the parameter at fault named.
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let text = e.inner().to_string();
                let field = match text.strip_prefix("unknown field `") {
                    Some(rest) => rest.split('`').next().unwrap_or("").to_string(),
                    None if path == "." => String::new(),
                    None => path,
                };
                ApiError::invalid(field, format!("bad query parameter: {text}"))
            })
    }
}
