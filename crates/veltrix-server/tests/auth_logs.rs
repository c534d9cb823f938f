//! Keys never reach the logs. Its own test binary: tracing caches per
//! call site whether anyone listens, and tests running in parallel threads
//! of one process (without a subscriber) would hide the request traces from
//! this test's thread-local subscriber.

mod common;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_server::{Server, ServerOptions, api_key_hash};

const READ_KEY: &str = "read-key-0123456789abcdef0123456789abcdef0123456789abcdef0123456";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef0123456789abcdef0123456789abcdef012345";
const UNKNOWN_KEY: &str = "not-a-configured-key-0123456789abcdef0123456789abcdef0123456789";

fn open(dir: &std::path::Path) -> Server {
    let mut text = String::from("[events.login]\n");
    for (name, key, scope) in [("dashboard", READ_KEY, "read"), ("ops", ADMIN_KEY, "admin")] {
        text.push_str(&format!(
            "[[server.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"{scope}\"]\n",
            api_key_hash(key)
        ));
    }
    let config = veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", text)])
        .expect("valid");
    Server::open(
        Arc::new(Plan::new(Arc::new(config))),
        ServerOptions::new(dir),
    )
    .unwrap()
}

async fn call(router: &axum::Router, method: &str, uri: &str, key: Option<&str>) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let body = Body::from(r#"{"id":"x1","player":"alice","type":"login"}"#);
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let _ = response.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn keys_never_reach_the_logs() {
    let captured = common::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    for key in [ADMIN_KEY, UNKNOWN_KEY, READ_KEY] {
        call(&router, "POST", "/v1/events", Some(key)).await;
        call(&router, "GET", "/v1/state", Some(key)).await;
    }
    drop(router);
    server.shutdown();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/v1/events"),
        "the request trace is captured: {logs}"
    );
    for key in [ADMIN_KEY, UNKNOWN_KEY, READ_KEY] {
        assert!(!logs.contains(key), "a key was logged");
        assert!(!logs.contains(&api_key_hash(key)), "a key hash was logged");
    }
}
