//! The one error type of the HTTP layer, rendered as the contract's body
//! `{"code": <status>, "message": "...", "details": {...}?}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::task_service::ServiceError;
use crate::rules::task::Rejection;

/// The error body of every 4xx and 5xx.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    /// For validation errors: what is wrong with each field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    details: Option<serde_json::Map<String, serde_json::Value>>,
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 with a reason per field.
    pub fn invalid_fields(details: serde_json::Map<String, serde_json::Value>) -> Self {
        ApiError {
            details: Some(details),
            ..ApiError::new(StatusCode::BAD_REQUEST, "the request has invalid fields")
        }
    }

    /// 404 for a task that does not exist (or an id that cannot be one).
    pub fn task_not_found(id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no task {id}"))
    }

    /// 503 with `Retry-After`: the store is down; nothing was acknowledged.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 429 with `Retry-After`: the token made too many requests.
    pub fn too_many_requests(retry_after_seconds: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after_seconds),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many requests for this token; try again in {retry_after_seconds} s"),
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            code: self.status.as_u16(),
            message: self.message,
            details: self.details,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Rejected(Rejection::NotFound) => {
                ApiError::new(StatusCode::NOT_FOUND, "no such task")
            }
            ServiceError::Rejected(Rejection::Conflict(message)) => {
                ApiError::new(StatusCode::CONFLICT, message)
            }
            ServiceError::Contended => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            ServiceError::Unavailable(cause) => ApiError::unavailable(cause.to_string()),
            ServiceError::KeyReused => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, rejection.body_text())
    }
}

/// `axum::Json`, with rejections in the contract's error body.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Json(value))
    }
}
