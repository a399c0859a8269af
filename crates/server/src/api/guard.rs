//! What stands between the network and every handler (API and UI alike):
//! a panic becomes a JSON 500 with its cause logged, a body must arrive
//! whole and in time, and an error answer without a body gets the API's
//! error shape (a 405 says which methods the path takes).

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, MAX_BODY_BYTES};

/// Wraps the whole app. `body_read`: how long a request's body may take to
/// arrive in full.
pub fn guard(app: Router, body_read: Duration) -> Router {
    app.layer(axum::middleware::map_response(error_body))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| bounded_body(req, next, body_read),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

/// The answer to a request whose handler panicked. The cause goes to the
/// log (cut short: a panic message is not meant to carry data, but may),
/// the client learns only that it was carehook's fault.
fn panicked(payload: Box<dyn Any + Send + 'static>) -> Response {
    let cause = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    let cause: String = cause.chars().take(300).collect();
    tracing::error!(cause = %cause, "a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "carehook hit an internal error; see its log",
    )
    .into_response()
}

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) within `body_read`, so
/// the handler gets it at once and a client that trickles it is answered
/// 408 instead of holding a task. Every endpoint reads its body whole
/// anyway (JSON or a form).
async fn bounded_body(req: Request, next: Next, body_read: Duration) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(body_read, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) if is_too_large(&e) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        Ok(Err(_)) => ApiError::bad_request("the body could not be read").into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the body did not arrive within {} s",
                body_read.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// An error answer the router made up without a body (a 405 for a path
/// that takes other methods, an extractor's bare rejection) gets the error
/// shape every client of the API parses.
async fn error_body(answer: Response) -> Response {
    let status = answer.status();
    if !(status.is_client_error() || status.is_server_error())
        || answer.headers().contains_key(header::CONTENT_TYPE)
    {
        return answer;
    }
    let (mut parts, _) = answer.into_parts();
    let mut error = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        ApiError::new(
            status,
            "method_not_allowed",
            format!("this path does not take that method; it takes: {allowed}"),
        )
    } else {
        ApiError::new(
            status,
            "bad_request",
            status
                .canonical_reason()
                .unwrap_or("refused")
                .to_lowercase(),
        )
    };
    if status.is_server_error() {
        error.code = "internal";
    }
    let (body_parts, body) = error.into_response().into_parts();
    parts.headers.extend(body_parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}
