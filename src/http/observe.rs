//! What a request leaves behind for operators: an id, one log line when it
//! is answered (method, route, status, latency, request id, token, trace id),
//! its metrics, and a span while traces are exported; and `/metrics`, the
//! Prometheus scrape.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use super::auth::Scope;
use super::AppState;
use crate::telemetry::{metrics, traces};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The trace context of a request, for the events it appends.
#[derive(Clone)]
pub struct TraceParent(pub String);

/// The request id a client sent, if it is usable, else a new one: recorded
/// in the metadata of every event the request appends and sent back in
/// `x-request-id`.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The name of the token a request presented, as its answer carries it to
/// the request's log line.
#[derive(Clone)]
pub struct TokenName(pub String);

/// Gives every request an id and a log line, counts it, and with traces
/// exported, makes it a span.
pub async fn requests(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match request_id(request.headers()) {
        Some(id) => HeaderValue::from_str(id).expect("a header value it came from"),
        None => {
            let id = uuid::Uuid::now_v7().simple().to_string();
            let id = HeaderValue::from_str(&id).expect("hex digits");
            request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
            id
        }
    };
    // The route's template is shared: cloning it copies a reference.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |path| path.as_str());
    let method = request.method().clone();
    let id = request_id.to_str().unwrap_or_default();
    // A span per request costs a good part of a request's CPU: only when
    // someone collects it. The log line below says what a span would.
    let span = if traces::exporting() {
        tracing::info_span!(target: "tasklog::request", "request",
            method = %method, route = %route, request_id = id,
            token = tracing::field::Empty, trace_id = tracing::field::Empty)
    } else {
        tracing::Span::none()
    };
    let traceparent = traces::start_request(&span, request.headers());
    if let Some(traceparent) = &traceparent {
        span.record("trace_id", traces::trace_id(traceparent));
        request
            .extensions_mut()
            .insert(TraceParent(traceparent.clone()));
    }
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let token = response
        .extensions()
        .get::<TokenName>()
        .map(|t| t.0.as_str());
    let trace_id = traceparent.as_deref().map(traces::trace_id);
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1e3;
        if status >= 500 {
            tracing::warn!(target: "tasklog::request", %method, route, status, latency_ms,
                request_id = id, token, trace_id, "answered");
        } else {
            tracing::info!(target: "tasklog::request", %method, route, status, latency_ms,
                request_id = id, token, trace_id, "answered");
        }
    });
    metrics::request(&method, route, status, elapsed);
    response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
    response
}

/// `/metrics` on the API, for tokens with `metrics:read`.
pub fn routes(state: &AppState) -> Router<AppState> {
    super::scoped(
        Router::new().route("/metrics", get(scrape)),
        state,
        Scope::MetricsRead,
    )
}

/// Every metric in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "scrapeMetrics",
    responses((status = 200, description = "every metric, in Prometheus' text exposition format",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn scrape(State(state): State<AppState>) -> Response {
    let text = metrics::render(&state.service).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Serves `/metrics` alone, with no token, on `listener` until the server stops:
/// for a Prometheus that scrapes a private address.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> std::io::Result<()> {
    let limits = state.limits;
    let mut stopping = state.stopping.clone();
    let router = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { super::ApiError::RouteNotFound })
        .with_state(state);
    super::connections::serve(listener, router, limits, async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    })
    .await
}
