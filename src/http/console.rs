//! The web console at `/ui/`: one page shell and its script and style,
//! embedded in the binary. The pages are drawn in the browser from the public
//! API with the operator's token, so scopes apply to the console as to any
//! client, and nothing here reads the store. The shell and assets hold no
//! data: they are served without a token.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;

/// An embedded file and what it is served as.
struct Asset {
    content_type: &'static str,
    body: &'static str,
    /// A strong ETag of the body: browsers ask again and get 304 until the
    /// binary changes.
    etag: HeaderValue,
}

impl Asset {
    fn new(content_type: &'static str, body: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest[..12]));
        Asset {
            content_type,
            body,
            etag: HeaderValue::from_str(&etag).expect("hex is a header value"),
        }
    }

    fn serve(&self, request: &HeaderMap) -> Response {
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            ),
            (header::ETAG, self.etag.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        if request.get(header::IF_NONE_MATCH) == Some(&self.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (headers, self.body).into_response()
    }
}

/// Only the console's own script and style, and requests to this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

static SHELL: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    )
});
static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    )
});

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(shell))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/{*page}", get(shell))
}

/// Every page of the console is the one shell; its script draws the page
/// the path names.
async fn shell(request: HeaderMap) -> Response {
    SHELL.serve(&request)
}

async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    match file.as_str() {
        "console.js" => SCRIPT.serve(&request),
        "console.css" => STYLE.serve(&request),
        _ => ApiError::RouteNotFound.into_response(),
    }
}
