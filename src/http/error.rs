//! The one error type of the HTTP layer and its table. Every error answers
//! `{"code": <status>, "reason": "...", "message": "...", "details": {...}?}`:
//! [`ApiError::status_and_reason`] gives each variant its status and a stable
//! `reason` that clients can match on; the message is the variant's `Display`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
pub use tasklog_api::errors::ErrorBody;

use super::auth::Scope;
use super::MAX_BODY_BYTES;
use crate::app::idempotency::IDEMPOTENCY_KEY_LIFETIME;
use crate::app::service::ServiceError;
use crate::rules::Rejection;

/// Everything the API can answer instead of what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// HTTP 404: the task finished before the retention window
    /// (`--retain-finished`) and left the views; `details.events` is where
    /// its history is.
    #[error("task {id} finished before the retention window (--retain-finished) and left the views; its history is at /v1/tasks/{id}/events, and ?asOf= or ?revision= show it as it was")]
    NotRetained { id: String },
    /// HTTP 400: the body or the query has invalid fields, each named in `details`.
    #[error("the request has invalid fields")]
    InvalidFields(Map<String, Value>),
    /// HTTP 400: the body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// HTTP 400: the body is JSON, but not an object.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// HTTP 400: a path segment cannot be read (not UTF-8).
    #[error("the path is not valid: {0}")]
    MalformedPath(String),
    /// HTTP 400: the query string cannot be read.
    #[error("the query is not valid: {0}")]
    MalformedQuery(String),
    /// HTTP 400: a request header the API reads is malformed.
    #[error("{name} must be {expected}")]
    InvalidHeader {
        name: &'static str,
        expected: &'static str,
    },
    /// HTTP 401, with `WWW-Authenticate`: no bearer token, or not one of ours.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// HTTP 403: the token lacks the route's scope.
    #[error("the token {token:?} lacks the scope {}", scope.as_str())]
    Forbidden { token: String, scope: Scope },
    /// HTTP 404 or 409, by the rejection (see [`ApiError::status_and_reason`]).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// HTTP 404: no durable consumer has this name.
    #[error("no such consumer")]
    ConsumerNotFound,
    /// HTTP 404: no route has this path.
    #[error("no such route")]
    RouteNotFound,
    /// HTTP 405: the route exists, not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// HTTP 409: the task or schedule changed under the write too often.
    #[error("the task or schedule is changing too fast; try again")]
    Contended,
    /// HTTP 409: a rebuild of the read models is running on this node.
    #[error(
        "a rebuild of the read models is running on this node; follow it at GET /v1/admin/rebuild"
    )]
    RebuildRunning,
    /// HTTP 409: another node sharing the store is rebuilding its read models.
    #[error("another node is rebuilding the read models this store's nodes share; follow it at GET /v1/admin/rebuild on that node")]
    RebuildRunningElsewhere,
    /// HTTP 409: this store's read models are not rebuilt beside a serving node.
    #[error("this node's read models live in its memory and are folded at each start: there is nothing to rebuild")]
    RebuildNotSupported,
    /// HTTP 408: the request body did not arrive within the body read timeout.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// HTTP 413: the body is over the limit.
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// HTTP 415: a body that is not sent as JSON.
    #[error("the body must be sent as Content-Type: application/json")]
    UnsupportedMediaType,
    /// HTTP 422: an `Idempotency-Key` came back with another body.
    #[error("the Idempotency-Key was used with a different request body within the last {} hours", IDEMPOTENCY_KEY_LIFETIME.num_hours())]
    KeyReused,
    /// HTTP 429, with `Retry-After`: the token spent its request budget.
    #[error("too many requests for this token; try again in {retry_after} s")]
    RateLimited { retry_after: u32 },
    /// HTTP 503, with `Retry-After`: the store failed; nothing was acknowledged.
    /// The cause is logged, not shown.
    #[error("the event store is unavailable; try again")]
    Unavailable { cause: String },
    /// HTTP 503, with `Retry-After`: the views here lag `Tasklog-Min-Position`.
    #[error("this node has not reached log position {0} yet")]
    NotCaughtUp(u64),
    /// HTTP 503, with `Retry-After`: `/readyz` when the store does not answer or
    /// the views lag it.
    #[error("this node is not ready: {0}")]
    NotReady(&'static str),
    /// HTTP 503, with `Retry-After`: the server has as many connections open
    /// as it takes (`--max-connections`); this one is closed.
    #[error("the server has as many connections open as it takes; try again")]
    TooManyConnections,
    /// HTTP 500: a bug. The cause is logged, not shown.
    #[error("the server failed to answer; the cause is in its log")]
    Internal { cause: String },
}

impl ApiError {
    /// The table: each error's HTTP status and its `reason`.
    pub fn status_and_reason(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::InvalidFields(_) => (S::BAD_REQUEST, "invalid_fields"),
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json"),
            ApiError::NotAnObject => (S::BAD_REQUEST, "not_an_object"),
            ApiError::MalformedQuery(_) => (S::BAD_REQUEST, "malformed_query"),
            ApiError::MalformedPath(_) => (S::BAD_REQUEST, "malformed_path"),
            ApiError::InvalidHeader { .. } => (S::BAD_REQUEST, "invalid_header"),
            ApiError::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            ApiError::RebuildRunning | ApiError::RebuildRunningElsewhere => {
                (S::CONFLICT, "rebuild_running")
            }
            ApiError::RebuildNotSupported => (S::CONFLICT, "rebuild_not_supported"),
            ApiError::Forbidden { .. } => (S::FORBIDDEN, "forbidden"),
            ApiError::Rejected(rejection) => match rejection {
                Rejection::TaskNotFound => (S::NOT_FOUND, "task_not_found"),
                Rejection::TaskExists => (S::CONFLICT, "task_exists"),
                Rejection::WrongState { .. } => (S::CONFLICT, "wrong_state"),
                Rejection::NotLeaseHolder { .. } => (S::CONFLICT, "not_lease_holder"),
                Rejection::LeaseExpired { .. } => (S::CONFLICT, "lease_expired"),
                Rejection::NotAvailableYet { .. } => (S::CONFLICT, "not_available_yet"),
                Rejection::Expired => (S::CONFLICT, "task_expired"),
                Rejection::ExpirationPassed { .. } => (S::CONFLICT, "expiration_passed"),
                Rejection::NotExpiredYet => (S::CONFLICT, "not_expired_yet"),
                Rejection::LeaseNotLapsed => (S::CONFLICT, "lease_not_lapsed"),
                Rejection::NoLease => (S::CONFLICT, "no_lease"),
                Rejection::ScheduleNotFound => (S::NOT_FOUND, "schedule_not_found"),
                Rejection::ScheduleExists => (S::CONFLICT, "schedule_exists"),
                Rejection::SchedulePaused => (S::CONFLICT, "schedule_paused"),
                Rejection::ScheduleNotPaused => (S::CONFLICT, "schedule_not_paused"),
                Rejection::NotNextRun { .. } => (S::CONFLICT, "not_next_run"),
            },
            ApiError::NotRetained { .. } => (S::NOT_FOUND, "task_not_retained"),
            ApiError::ConsumerNotFound => (S::NOT_FOUND, "consumer_not_found"),
            ApiError::RouteNotFound => (S::NOT_FOUND, "route_not_found"),
            ApiError::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Contended => (S::CONFLICT, "contended"),
            ApiError::BodyTooLarge => (S::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::KeyReused => (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            ApiError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable { .. } => (S::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::NotCaughtUp(_) => (S::SERVICE_UNAVAILABLE, "not_caught_up"),
            ApiError::TooManyConnections => (S::SERVICE_UNAVAILABLE, "too_many_connections"),
            ApiError::NotReady(_) => (S::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::BodyTimeout => (S::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::Internal { .. } => (S::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_reason().0
    }

    /// 400 naming one field.
    pub fn invalid_field(field: &str, why: impl Into<String>) -> Self {
        ApiError::InvalidFields(Map::from_iter([(field.to_owned(), why.into().into())]))
    }

    /// 503: the store failed with `cause`; the log line names its sources too.
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let cause = cause.into();
        let mut text = cause.to_string();
        let mut source = cause.source();
        while let Some(error) = source {
            let next = error.to_string();
            // Many errors repeat their source's message in their own.
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = error.source();
        }
        ApiError::Unavailable { cause: text }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, retry_after, body) = self.parts();
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, seconds.into());
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiError {
    /// The status, the `Retry-After` seconds if any, and the body; logs the
    /// cause of a server error.
    pub fn parts(self) -> (StatusCode, Option<u32>, ErrorBody) {
        let (status, reason) = self.status_and_reason();
        let retry_after = match &self {
            ApiError::Unavailable { cause } => {
                tracing::warn!(%cause, "the event store is unavailable");
                Some(1)
            }
            ApiError::Internal { cause } => {
                tracing::error!(%cause, "request failed");
                None
            }
            ApiError::NotCaughtUp(_) | ApiError::TooManyConnections | ApiError::NotReady(_) => {
                Some(1)
            }
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        };
        let message = self.to_string();
        let details = match self {
            ApiError::InvalidFields(details) => Some(details),
            ApiError::NotRetained { id } => Some(Map::from_iter([(
                "events".to_owned(),
                format!("/v1/tasks/{id}/events").into(),
            )])),
            _ => None,
        };
        let body = ErrorBody {
            code: status.as_u16(),
            reason: reason.into(),
            message,
            details,
        };
        (status, retry_after, body)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Rejected(rejection) => ApiError::Rejected(rejection),
            ServiceError::Contended => ApiError::Contended,
            ServiceError::KeyReused => ApiError::KeyReused,
            ServiceError::Unavailable(cause) => ApiError::unavailable(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_show_no_cause() {
        let error = ApiError::Internal {
            cause: "secret detail".into(),
        };
        assert!(!error.to_string().contains("secret"));
        let error = ApiError::unavailable("disk full at /var/x");
        assert!(!error.to_string().contains("disk"));
    }
}
