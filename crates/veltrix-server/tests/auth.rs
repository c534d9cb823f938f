//! API keys and scopes as a client sees them: every guarded route refuses a
//! missing, unknown or under-scoped key and accepts the right one; the open
//! routes stay open; keys are never echoed.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_config::Scope;
use veltrix_core::Plan;
use veltrix_server::routes::{Access, routes};
use veltrix_server::{Server, ServerOptions, api_key_hash};

const INGEST_KEY: &str = "ingest-key-0123456789abcdef0123456789abcdef0123456789abcdef01234";
const READ_KEY: &str = "read-key-0123456789abcdef0123456789abcdef0123456789abcdef0123456";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef0123456789abcdef0123456789abcdef012345";
const UNKNOWN_KEY: &str = "not-a-configured-key-0123456789abcdef0123456789abcdef0123456789";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass")
}

/// The example configuration plus three keys, one per scope.
fn config_text() -> String {
    let mut text = std::fs::read_to_string(example_dir().join("veltrix.toml")).unwrap();
    for (name, key, scope) in [
        ("backend", INGEST_KEY, "ingest"),
        ("dashboard", READ_KEY, "read"),
        ("ops", ADMIN_KEY, "admin"),
    ] {
        text.push_str(&format!(
            "\n[[server.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"{scope}\"]\n",
            api_key_hash(key)
        ));
    }
    text
}

fn open(dir: &Path) -> Server {
    let config =
        veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", config_text())])
            .expect("valid");
    assert_eq!(config.server.api_keys.len(), 3);
    Server::open(
        Arc::new(Plan::new(Arc::new(config))),
        ServerOptions::new(dir),
    )
    .unwrap()
}

/// A concrete URI for a route template.
fn uri(path: &str) -> String {
    path.replace("{player}", "alice")
        .replace("{hunt}", "golden_compass")
        .replace("{name}", "global")
        .replace("{view}", "purchases_by_currency")
}

fn body_for(method: &str, path: &str) -> Body {
    match (method, path) {
        ("POST", "/v1/events") => {
            Body::from(r#"{"id":"x1","player":"alice","type":"login","ts":"2026-12-01T09:00:00Z"}"#)
        }
        ("POST", "/v1/players/{player}/spend") => {
            Body::from(r#"{"currency":"coins","amount":1,"key":"k"}"#)
        }
        ("POST", "/v1/config/check") => Body::from("[events.login]\n"),
        // The active configuration: a no-op switch.
        ("POST", "/v1/config") => Body::from(config_text()),
        _ => Body::empty(),
    }
}

struct Reply {
    status: StatusCode,
    www_authenticate: Option<String>,
    text: String,
}

async fn call(router: &Router, method: &str, path: &str, key: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri(path));
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(body_for(method, path)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let www_authenticate = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    // The stream never ends: read its body only when it is an error.
    let text = if path == "/v1/stream" && status == StatusCode::OK {
        String::new()
    } else {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Reply {
        status,
        www_authenticate,
        text,
    }
}

fn key_of(scope: Scope) -> &'static str {
    match scope {
        Scope::Ingest => INGEST_KEY,
        Scope::Read => READ_KEY,
        Scope::Admin => ADMIN_KEY,
    }
}

#[tokio::test]
async fn every_route_checks_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let mut guarded = 0;
    for route in routes() {
        let (method, path) = (route.method, route.path);
        let Access::Key(scope) = route.access else {
            let reply = call(&router, method, path, None).await;
            assert!(
                reply.status.is_success(),
                "{method} {path} is open but answered {}: {}",
                reply.status,
                reply.text
            );
            continue;
        };
        guarded += 1;
        for key in [None, Some(UNKNOWN_KEY)] {
            let reply = call(&router, method, path, key).await;
            assert_eq!(
                reply.status, 401,
                "{method} {path} with {key:?}: {}",
                reply.text
            );
            let body: Value = serde_json::from_str(&reply.text).unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(reply.www_authenticate.unwrap().starts_with("Bearer"));
            assert!(!reply.text.contains(UNKNOWN_KEY), "the key is echoed");
        }
        for other in Scope::ALL {
            let key = key_of(other);
            let reply = call(&router, method, path, Some(key)).await;
            let allowed = other == scope || other == Scope::Admin;
            if allowed {
                assert!(
                    reply.status != 401 && reply.status != 403,
                    "{method} {path} refused a {} key: {}",
                    other.name(),
                    reply.text
                );
            } else {
                assert_eq!(
                    reply.status,
                    403,
                    "{method} {path} with a {} key: {}",
                    other.name(),
                    reply.text
                );
                let body: Value = serde_json::from_str(&reply.text).unwrap();
                assert_eq!(body["error"]["code"], "forbidden");
                assert_eq!(body["error"]["details"]["required_scope"], scope.name());
                assert!(!reply.text.contains(key), "the key is echoed");
            }
        }
    }
    assert!(guarded >= 15, "only {guarded} guarded routes");
}

#[tokio::test]
async fn ingest_then_read_with_the_right_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let reply = call(&router, "POST", "/v1/events", Some(INGEST_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = call(&router, "GET", "/v1/players/{player}", Some(READ_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // An unknown route is a 404 whatever the key.
    let reply = call(&router, "GET", "/v1/nothing", None).await;
    assert_eq!(reply.status, 404);
}

#[test]
fn with_keys_any_address_may_be_bound() {
    assert!(veltrix_server::check_listen("0.0.0.0:7400", true).is_ok());
    let err = veltrix_server::check_listen("0.0.0.0:7400", false).unwrap_err();
    assert!(err.to_string().contains("no API keys"), "{err}");
}

#[test]
fn the_configuration_holds_only_hashes() {
    let config =
        veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", config_text())])
            .unwrap();
    let debug = format!("{:?}", config.server);
    for key in [INGEST_KEY, READ_KEY, ADMIN_KEY] {
        assert!(!debug.contains(key));
        assert!(!config_text().contains(key));
    }
    let ops = &config.server.api_keys[2];
    assert_eq!(hex_of(&ops.sha256), api_key_hash(ADMIN_KEY));
    assert!(Scope::ALL.iter().all(|&s| ops.allows(s)));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
