//! `/v1/token`: who the caller is and what it may do, for clients that show
//! only the actions a token allows (the console hides what it cannot do).

use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Actor, AppState, Granted};
use crate::http::auth::Scope;

pub fn routes(state: &AppState) -> Router<AppState> {
    super::authenticated(Router::new().route("/v1/token", get(show)), state)
}

/// The token a request was made with.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    /// Its name: the actor of the events its requests cause.
    pub name: String,
    /// What it may do; `admin` is everything.
    #[schema(value_type = Vec<String>, example = json!(["tasks:read", "tasks:write"]))]
    pub scopes: Vec<Scope>,
}

/// The calling token's name and scopes. Any valid token may ask.
#[utoipa::path(get, path = "/v1/token", tag = "access", operation_id = "showToken",
    responses((status = 200, description = "the calling token", body = TokenInfo)))]
pub async fn show(
    Extension(actor): Extension<Actor>,
    Extension(Granted(scopes)): Extension<Granted>,
) -> axum::Json<TokenInfo> {
    axum::Json(TokenInfo {
        name: actor.name,
        scopes,
    })
}
