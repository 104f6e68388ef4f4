//! Who may do what, and how much: every route checks its scope, and a
//! rate-limited token gets 429 with `Retry-After` once its budget is spent.

use reqwest::{Method, StatusCode};

use super::errors::rejected;
use super::*;

#[tokio::test]
async fn every_route_in_the_api_document_checks_the_token_and_its_scope() {
    let api = TestServer::start().await;
    let document = api
        .request(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", &"0".repeat(32))
            .replace("{name}", "reports")
            .replace("{type}", "email");
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = (method != Method::GET).then(|| json!({}));
            let anonymous = api
                .request(method.clone(), &concrete, None, body.clone())
                .await;
            assert_eq!(
                anonymous.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token"
            );
            let scopeless = api
                .request(method.clone(), &concrete, Some(NOBODY), body)
                .await;
            if path == "/v1/token" {
                // Any valid token may ask what it is.
                assert_eq!(scopeless.status, StatusCode::OK, "{:?}", scopeless.body);
                checked += 1;
                continue;
            }
            assert_eq!(
                scopeless.status,
                StatusCode::FORBIDDEN,
                "{method} {path} without the scope"
            );
            assert!(scopeless.body["message"]
                .as_str()
                .unwrap()
                .contains("lacks the scope"));
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} routes in the document");
}

#[tokio::test]
async fn a_token_says_its_name_and_scopes() {
    let api = TestServer::start().await;
    let admin = api
        .request(Method::GET, "/v1/token", Some(ADMIN), None)
        .await;
    assert_eq!(admin.body, json!({"name": "admin", "scopes": ["admin"]}));
    let worker = api
        .request(Method::GET, "/v1/token", Some(WORKER), None)
        .await;
    assert_eq!(
        worker.body,
        json!({"name": "worker", "scopes": ["tasks:work", "tasks:read"]})
    );
    let nobody = api
        .request(Method::GET, "/v1/token", Some(NOBODY), None)
        .await;
    assert_eq!(nobody.body, json!({"name": "nobody", "scopes": []}));
    let stranger = api
        .request(Method::GET, "/v1/token", Some("not-a-token"), None)
        .await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_over_its_rate_limit_gets_429_with_retry_after() {
    let api = TestServer::start().await;
    let list = || api.request(Method::GET, "/v1/tasks", Some(LIMITED), None);
    for _ in 0..3 {
        assert_eq!(list().await.status, StatusCode::OK, "the burst is allowed");
    }
    let answer = list().await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers["retry-after"], "1");
    insta::assert_json_snapshot!("rate_limited", answer.snapshot());
    // Other tokens are not held back by it.
    assert_eq!(api.get("/v1/tasks").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(list().await.status, StatusCode::OK, "the budget refills");
    rejected(
        &api,
        "no_scope",
        api.request(Method::GET, "/v1/tasks", Some(NOBODY), None),
        StatusCode::FORBIDDEN,
    )
    .await;
}
