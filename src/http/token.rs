//! `/v1/token`: who the caller is and what it may do, for clients that show
//! only the actions a token allows (the console hides what it cannot do).

use axum::routing::get;
use axum::{Extension, Router};
use tasklog_api::token::TokenInfo;

use super::{Actor, AppState, Granted};

pub fn routes(state: &AppState) -> Router<AppState> {
    super::authenticated(Router::new().route("/v1/token", get(show)), state)
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
