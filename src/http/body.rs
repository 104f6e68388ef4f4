//! Reading request bodies: the [`Json`] extractor, and `Query` and `Path`
//! with the contract's error body. The field types that check themselves
//! are part of the wire contract, in `tasklog-api`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use deserr::Deserr;
use serde_json::Value;

pub use tasklog_api::body::*;

use super::connections::Limits;
use super::error::ApiError;

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::NotAnObject => ApiError::NotAnObject,
            BodyError::Fields(details) => ApiError::InvalidFields(details),
        }
    }
}

/// The body as a `T`, or the contract's 400 naming every bad field (413 for
/// a body over the limit, 415 for one not sent as JSON).
pub struct Json<T>(pub T);

/// How long a request body may take to arrive: the server's
/// [`Limits::body_read_timeout`], handed to the extractor with each request.
#[derive(Clone, Copy, Debug)]
pub struct BodyReadTimeout(pub std::time::Duration);

impl<T, S> FromRequest<S> for Json<T>
where
    T: Deserr<BodyError>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let timeout = request
            .extensions()
            .get::<BodyReadTimeout>()
            .map_or(Limits::default().body_read_timeout, |t| t.0);
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(request, state))
            .await
            .map_err(|_| ApiError::BodyTimeout)?
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
                _ => ApiError::MalformedJson(rejection.body_text()),
            })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
        Ok(Json(deserr::deserialize::<T, Value, BodyError>(value)?))
    }
}

/// `application/json` or `application/<something>+json`, as `axum::Json` takes.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence.starts_with("application/") && essence.ends_with("+json")
}

/// `axum::extract::Query`, with rejections in the contract's error body.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| {
                    let text = rejection.body_text();
                    let why = text.strip_prefix("Failed to deserialize query string: ");
                    ApiError::MalformedQuery(why.unwrap_or(&text).to_owned())
                })?;
        Ok(Query(value))
    }
}

/// `axum::extract::Path`, with rejections (a path segment that is not UTF-8)
/// in the contract's error body.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::MalformedPath(rejection.body_text()))?;
        Ok(Path(value))
    }
}
