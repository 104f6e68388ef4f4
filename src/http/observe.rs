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

/// What the events a request appends record of it: its id (the client's
/// `x-request-id` if usable, else a new one, sent back either way) and its
/// trace context.
#[derive(Clone)]
pub struct RequestTrail {
    pub id: String,
    pub traceparent: Option<String>,
}

/// The request id a client sent, if it is usable.
fn sent_request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A new request id: a UUIDv7 in 32 hex digits (written straight into a
/// buffer; through `Display` it cost a sixth of a create's telemetry).
fn new_request_id() -> String {
    let mut buffer = [0; 32];
    uuid::Uuid::now_v7()
        .simple()
        .encode_lower(&mut buffer)
        .to_owned()
}

/// The name of the token a request presented, as its answer carries it to
/// the request's log line.
#[derive(Clone)]
pub struct TokenName(pub String);

/// Gives every request an id and a log line, counts it, and with traces
/// exported, makes it a span.
pub async fn requests(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = sent_request_id(request.headers()).map_or_else(new_request_id, str::to_owned);
    // The route's template is shared: cloning it copies a reference.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |path| path.as_str());
    let method = request.method().clone();
    // A span per request costs a good part of a request's CPU: only when
    // someone collects it. The log line below says what a span would.
    let span = if traces::exporting() {
        tracing::info_span!(target: "tasklog::request", "request",
            method = %method, route = %route, request_id = %id,
            token = tracing::field::Empty, trace_id = tracing::field::Empty)
    } else {
        tracing::Span::none()
    };
    let traceparent = traces::start_request(&span, request.headers());
    let trace_id = traceparent.as_deref().map(traces::trace_id);
    if let Some(trace_id) = trace_id {
        span.record("trace_id", trace_id);
    }
    request.extensions_mut().insert(RequestTrail {
        id: id.clone(),
        traceparent: traceparent.clone(),
    });
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let token = response
        .extensions()
        .get::<TokenName>()
        .map(|t| t.0.as_str());
    span.in_scope(|| {
        // Microseconds are enough, and print short. Strings go through
        // `Display`: `Debug` would escape them character by character.
        let latency_ms = elapsed.as_micros() as f64 / 1e3;
        let token = token.map(tracing::field::display);
        let trace_id = trace_id.map(tracing::field::display);
        if status >= 500 {
            tracing::warn!(target: "tasklog::request", %method, %route, status, latency_ms,
                request_id = %id, token, trace_id, "answered");
        } else {
            tracing::info!(target: "tasklog::request", %method, %route, status, latency_ms,
                request_id = %id, token, trace_id, "answered");
        }
    });
    metrics::request(&method, route, status, elapsed);
    if let Ok(id) = HeaderValue::try_from(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
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
