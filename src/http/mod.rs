//! The HTTP API: [`app`] builds the router, [`run`] serves it.
//!
//! Every response carries `Tasklog-Position`, the log position the answer
//! reflects; a request with `Tasklog-Min-Position` waits (bounded) until the
//! views are at least that new, so a client can read its writes on any node.
//!
//! # Layout
//! - [`tasks`], [`schedules`], [`queues`], [`audit`], [`stream`]: the routes, a
//!   module per resource, each with its `routes()`.
//! - [`wire`]: the JSON shapes on the wire, from `tasklog-api`, and the
//!   views turned into them.
//! - [`body`]: the `Json` extractor and the field types that check themselves.
//! - [`error`]: the one `ApiError` and its body; [`auth`]: bearer tokens, scopes
//!   and rate limits; [`openapi`]: the API document.
//! - [`observe`]: a span, a log line and metrics per request; `/metrics`.
//! - [`console`]: the web console at `/ui/`, drawn in the browser from the API.
//! - [`connections`]: the accept loop: the connection cap, header and body
//!   timeouts, the shutdown drain.

mod audit;
pub mod auth;
mod body;
mod bulk;
pub mod connections;
mod console;
mod error;
pub mod observe;
pub mod openapi;
mod queues;
mod rebuilds;
mod schedules;
mod stream;
mod tasks;
mod token;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tasklog_events::{Metadata, Position};
use tokio::net::TcpListener;

pub use connections::Limits;
pub use error::{ApiError, ErrorBody};
pub use stream::KEEP_ALIVE;

use crate::app::service::Service;
use crate::http::auth::{Scope, TokenTable};

pub const POSITION_HEADER: HeaderName = HeaderName::from_static("tasklog-position");
pub const MIN_POSITION_HEADER: HeaderName = HeaderName::from_static("tasklog-min-position");
/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a read waits for `Tasklog-Min-Position`.
const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);

/// What every handler shares. Requests clone it several times on their way
/// through the routes, so it is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub service: Service,
    /// The tokens taken now, read again when their file changes.
    pub tokens: Arc<TokenTable>,
    /// What the server takes from its clients at most.
    pub limits: Limits,
    /// Turns true when the server stops: event streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Recent events as CloudEvents JSON, made once for every stream.
    pub encoded_events: Arc<stream::EncodedEvents>,
    /// Rebuilds of the read models beside this node.
    pub rebuilds: Arc<crate::app::rebuild::Rebuilds>,
}

/// The token name behind a request: the actor of the events it causes.
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub request_id: String,
    /// The request's W3C trace context, if it has one.
    pub traceparent: Option<String>,
}

impl Actor {
    pub fn metadata(&self) -> Metadata {
        Metadata {
            actor: Some(self.name.clone()),
            request_id: Some(self.request_id.clone()),
            causation_id: None,
            traceparent: self.traceparent.clone(),
        }
    }
}

/// Sets `Tasklog-Position` on a response.
pub struct PositionHeader(pub Position);

impl axum::response::IntoResponseParts for PositionHeader {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut parts: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        parts
            .headers_mut()
            .insert(POSITION_HEADER, HeaderValue::from(self.0 .0));
        Ok(parts)
    }
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let v1 = tasks::routes(&state)
        .merge(bulk::routes(&state))
        .merge(schedules::routes(&state))
        .merge(queues::routes(&state))
        .merge(audit::routes(&state))
        .merge(rebuilds::routes(&state))
        .merge(stream::routes(&state))
        .merge(observe::routes(&state))
        .merge(token::routes(&state));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .merge(v1)
        .merge(console::routes())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(body::BodyReadTimeout(
            state.limits.body_read_timeout,
        )))
        .layer(middleware::from_fn_with_state(state.clone(), every_request))
        .with_state(state)
}

/// How long `/readyz` gives the store to answer and the views to reach its head.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// What `/readyz` answers when the node can serve.
#[derive(serde::Serialize)]
struct Readiness {
    /// The head of the log.
    head: u64,
    /// The position the views have applied.
    views: u64,
}

/// Readiness, for load balancers: 200 when the store answers and the views
/// reach its head within [`READY_WITHIN`], else 503 saying which did not.
/// `/healthz` only says that the process is up.
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Readiness>, ApiError> {
    let head = match tokio::time::timeout(READY_WITHIN, state.service.store.head()).await {
        Err(_) => return Err(ApiError::NotReady("the store did not answer in time")),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the store failed a readiness check");
            return Err(ApiError::NotReady("the store failed to answer"));
        }
        Ok(Ok(head)) => head,
    };
    if !state.service.views.wait_for(head, READY_WITHIN).await {
        return Err(ApiError::NotReady("the views lag the log"));
    }
    Ok(axum::Json(Readiness {
        head: head.0,
        views: state.service.views.position().0,
    }))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    connections::serve(listener, app(state), limits, shutdown).await
}

/// Puts `router` behind a bearer token with `scope`, then the position headers
/// (the last layer added runs first: no token, no waiting).
fn scoped(router: Router<AppState>, state: &AppState, scope: Scope) -> Router<AppState> {
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), consistency))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Some(scope)),
            authorize,
        ))
}

/// Puts `router` behind any valid bearer token, whatever its scopes; the
/// handlers find the token's scopes in the request's [`Granted`].
fn authenticated(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), consistency))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), None),
            authorize,
        ))
}

/// The scopes of the token behind a request to an [`authenticated`] route.
#[derive(Clone, Debug)]
pub struct Granted(pub Vec<Scope>);

async fn authorize(
    State((state, scope)): State<(AppState, Option<Scope>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let keyring = state.tokens.current();
    let Some(token) = presented.and_then(|p| keyring.find(p.trim())) else {
        return ApiError::Unauthorized.into_response();
    };
    // The request's log line names the token, whatever the answer.
    let named = observe::TokenName(token.name.clone());
    tracing::Span::current().record("token", token.name.as_str());
    let mut response = match admit(&keyring, token, scope) {
        Err(refused) => refused.into_response(),
        Ok(()) => {
            let trail = request.extensions().get::<observe::RequestTrail>();
            let trail = trail
                .cloned()
                .expect("every_request gives each request its trail");
            request.extensions_mut().insert(Actor {
                name: token.name.clone(),
                request_id: trail.id,
                traceparent: trail.traceparent,
            });
            if scope.is_none() {
                request
                    .extensions_mut()
                    .insert(Granted(token.scopes.clone()));
            }
            next.run(request).await
        }
    };
    response.extensions_mut().insert(named);
    response
}

/// Whether `token` may make a request needing `scope` (if any) now (its rate limit).
fn admit(
    keyring: &auth::Keyring,
    token: &auth::Token,
    scope: Option<Scope>,
) -> Result<(), ApiError> {
    if let Err(wait) = keyring.rate_limits.check(token) {
        crate::telemetry::metrics::rate_limited(&token.name);
        let retry_after = wait.as_secs_f64().ceil().max(1.0) as u32;
        return Err(ApiError::RateLimited { retry_after });
    }
    if let Some(scope) = scope.filter(|scope| !token.allows(*scope)) {
        return Err(ApiError::Forbidden {
            token: token.name.clone(),
            scope,
        });
    }
    Ok(())
}

/// Around every request, in one layer (each costs its share of a request):
/// its id, log line and metrics ([`observe::requests`]), and
/// `Tasklog-Position` on every answer that has none yet: errors of the token
/// check, unknown routes, `/healthz`.
async fn every_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let position = state.service.views.position();
    with_position(observe::requests(request, next).await, position)
}

/// `response` with `Tasklog-Position: position`, unless its handler set one.
fn with_position(mut response: Response, position: Position) -> Response {
    response
        .headers_mut()
        .entry(POSITION_HEADER)
        .or_insert(HeaderValue::from(position.0));
    response
}

/// Honours `Tasklog-Min-Position` and sets `Tasklog-Position` where a handler
/// did not, to the position the views had once they were new enough.
async fn consistency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(value) = request.headers().get(MIN_POSITION_HEADER) {
        let wanted = value
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(ApiError::InvalidHeader {
                name: "Tasklog-Min-Position",
                expected: "a log position (a whole number)",
            })?;
        let wanted = Position(wanted);
        if state.service.views.position() < wanted {
            // A position past the log's head names no write: no wait makes it true.
            let head = state.service.head().await?;
            if wanted > head {
                return Err(ApiError::InvalidHeader {
                    name: "Tasklog-Min-Position",
                    expected: "a log position no further than the head of the log",
                });
            }
            if !state
                .service
                .views
                .wait_for(wanted, MIN_POSITION_WAIT)
                .await
            {
                return Err(ApiError::NotCaughtUp(wanted.0));
            }
        }
    }
    let position = state.service.views.position();
    Ok(with_position(next.run(request).await, position))
}
