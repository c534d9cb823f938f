//! Access control and hostile input, as a client (and an operator reading
//! the logs) would notice them (issue 5):
//!
//! - the route table is exactly SPEC §4's routes with the scopes of
//!   docs/SERVER.md, and `/openapi.json` lists the same routes: a route
//!   added to `routes.rs` fails here until this test knows its scope;
//! - every guarded route × {no key, every kind of wrong key or malformed
//!   header, a key in the query string} is 401 with `WWW-Authenticate`, and
//!   × every under-scoped key is 403, all in the one error shape, before
//!   the body is read, and without any effect on state;
//! - keys exist only as hashes: never in answers, log lines or the data
//!   directory, and presenting the stored hash is not a key;
//! - puzzle answers (configured riddles and generated puzzles) never appear
//!   in any response, stream message or log line;
//! - oversized bodies are 413 after reading at most the limit, and deeply
//!   nested JSON or TOML bodies are refused with a 400 (or a rejection with
//!   a reason), never a crash.
//!
//! Log lines are captured by one global subscriber for this whole test
//! binary (a global one, so no call site is cached as "nobody listens").

mod common;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::ServiceExt;
use veltrix_config::Scope;
use veltrix_core::Plan;
use veltrix_server::routes::{Access, routes};
use veltrix_server::{Server, ServerOptions, api_key_hash};

const INGEST_KEY: &str = "3f1c1a0e9b7d4c2a8e6f5b4a3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
const READ_KEY: &str = "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8";
const BACKEND_KEY: &str = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
const ADMIN_KEY: &str = "7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d";
/// An admin key that tests only ever send in a query string (which is
/// refused): kept apart so that `a_key_sent_in_the_query_string_never_reaches_the_logs`
/// can look for it in the logs.
const QUERY_KEY: &str = "5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c";
/// Every configured key with its name and scopes.
const KEYS: [(&str, &str, &[&str]); 4] = [
    ("game-ingest", INGEST_KEY, &["ingest"]),
    ("dashboard", READ_KEY, &["read"]),
    ("game-backend", BACKEND_KEY, &["ingest", "read"]),
    ("ops", ADMIN_KEY, &["admin"]),
];

/// SPEC §4's routes (plus the OpenAPI document) with the scope
/// docs/SERVER.md gives each. `None`: open to anyone.
const KNOWN_ROUTES: [(&str, &str, Option<Scope>); 20] = [
    ("POST", "/v1/events", Some(Scope::Ingest)),
    ("GET", "/v1/state", Some(Scope::Admin)),
    ("GET", "/v1/players/{player}", Some(Scope::Read)),
    ("GET", "/v1/players/{player}/ledger", Some(Scope::Read)),
    ("POST", "/v1/players/{player}/spend", Some(Scope::Ingest)),
    (
        "GET",
        "/v1/players/{player}/hunts/{hunt}",
        Some(Scope::Read),
    ),
    ("GET", "/v1/hunts/{hunt}", Some(Scope::Read)),
    ("GET", "/v1/leaderboards/{name}", Some(Scope::Read)),
    (
        "GET",
        "/v1/leaderboards/{name}/players/{player}",
        Some(Scope::Read),
    ),
    ("GET", "/v1/views/{view}", Some(Scope::Read)),
    ("GET", "/v1/deadletters", Some(Scope::Read)),
    ("POST", "/v1/deadletters/replay", Some(Scope::Admin)),
    ("GET", "/v1/config", Some(Scope::Admin)),
    ("POST", "/v1/config", Some(Scope::Admin)),
    ("POST", "/v1/config/check", Some(Scope::Admin)),
    ("GET", "/v1/stream", Some(Scope::Read)),
    ("GET", "/metrics", None),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/openapi.json", None),
];

// ---------------------------------------------------------------------------
// Captured log lines
// ---------------------------------------------------------------------------

/// Everything logged so far by any test of this binary, at every level.
fn logs() -> String {
    common::global_logs(tracing::Level::TRACE)
}

// ---------------------------------------------------------------------------
// A server with keys
// ---------------------------------------------------------------------------

fn example_text() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass/veltrix.toml");
    std::fs::read_to_string(path).unwrap()
}

fn keys_toml() -> String {
    let mut text = String::new();
    for (name, key, scopes) in KEYS {
        let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        text.push_str(&format!(
            "\n[[server.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [{}]\n",
            api_key_hash(key),
            scopes.join(", ")
        ));
    }
    text.push_str(&format!(
        "\n[[server.api_keys]]\nname = \"ops-query\"\nsha256 = \"{}\"\nscopes = [\"admin\"]\n",
        api_key_hash(QUERY_KEY)
    ));
    text
}

fn plan_of(text: &str) -> Arc<Plan> {
    let config = veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", text)])
        .unwrap_or_else(|d| panic!("invalid test configuration: {d:?}"));
    Arc::new(Plan::with_secret(
        Arc::new(config),
        Arc::from(&b"access-test-secret"[..]),
    ))
}

fn open_with(dir: &Path, text: &str, body_limit: usize) -> Server {
    logs(); // install the capture before anything logs
    let mut options = ServerOptions::new(dir);
    options.body_limit = body_limit;
    options.snapshot_every = Some(1_000_000); // one at shutdown
    Server::open(plan_of(text), options).unwrap()
}

fn open(dir: &Path) -> Server {
    open_with(dir, &(example_text() + &keys_toml()), 16 << 20)
}

/// A concrete URI for a route template.
fn uri(path: &str) -> String {
    path.replace("{player}", "alice")
        .replace("{hunt}", "golden_compass")
        .replace("{name}", "global")
        .replace("{view}", "purchases_by_currency")
}

/// A body that would change something if the route let it through: an
/// accepted event, a spend, a configuration with one more event type.
fn body_for(method: &str, path: &str) -> (Option<&'static str>, String) {
    match (method, path) {
        ("POST", "/v1/events") => (
            Some("application/json"),
            r#"{"id":"x1","player":"alice","type":"login","ts":"2026-12-01T09:00:00Z"}"#.into(),
        ),
        ("POST", "/v1/players/{player}/spend") => (
            Some("application/json"),
            r#"{"currency":"coins","amount":1,"key":"k"}"#.into(),
        ),
        ("POST", "/v1/config/check") => (Some("application/toml"), "[events.login]\n".into()),
        ("POST", "/v1/config") => (
            Some("application/toml"),
            example_text() + "\n[events.added_by_a_refused_request]\n" + &keys_toml(),
        ),
        ("POST", "/v1/deadletters/replay") => (Some("application/json"), "{}".into()),
        _ => (None, String::new()),
    }
}

struct Reply {
    status: StatusCode,
    www_authenticate: Option<String>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn send(router: &Router, request: Request<Body>, streaming: bool) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let www_authenticate = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    // The stream never ends: read its body only when it is an error.
    let text = if streaming && status == StatusCode::OK {
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

/// How a request presents (or fails to present) a key.
#[derive(Clone, Debug)]
enum Credential {
    None,
    /// The raw `Authorization` header value.
    Header(String),
    /// A key in the query string, no header.
    Query(&'static str, &'static str),
}

async fn call(router: &Router, method: &str, path: &str, credential: &Credential) -> Reply {
    let mut target = uri(path);
    if let Credential::Query(name, key) = credential {
        target.push_str(&format!("?{name}={key}"));
    }
    let mut request = Request::builder().method(method).uri(target);
    if let Credential::Header(value) = credential {
        request = request.header(header::AUTHORIZATION, value.as_str());
    }
    let (content_type, body) = body_for(method, path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    send(
        router,
        request.body(Body::from(body)).unwrap(),
        path == "/v1/stream",
    )
    .await
}

fn bearer(key: &str) -> Credential {
    Credential::Header(format!("Bearer {key}"))
}

/// No key, and every way of presenting a wrong one.
fn wrong_credentials() -> Vec<(&'static str, Credential)> {
    let mut changed = ADMIN_KEY.to_string();
    changed.replace_range(63.., "0");
    vec![
        ("no Authorization header", Credential::None),
        (
            "an unknown key",
            bearer("c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"),
        ),
        (
            "the stored hash presented as the key",
            bearer(&api_key_hash(ADMIN_KEY)),
        ),
        (
            "the admin key with its last character changed",
            bearer(&changed),
        ),
        (
            "the admin key with a character added",
            bearer(&format!("{ADMIN_KEY}0")),
        ),
        (
            "the admin key without its last character",
            bearer(&ADMIN_KEY[..63]),
        ),
        (
            "the admin key in upper case",
            bearer(&ADMIN_KEY.to_uppercase()),
        ),
        (
            "the admin key after another word",
            bearer(&format!("x {ADMIN_KEY}")),
        ),
        ("an empty bearer token", Credential::Header("Bearer".into())),
        (
            "a blank bearer token",
            Credential::Header("Bearer    ".into()),
        ),
        (
            "the admin key without a scheme",
            Credential::Header(ADMIN_KEY.into()),
        ),
        (
            "the admin key as Basic credentials",
            Credential::Header(format!("Basic {ADMIN_KEY}")),
        ),
        (
            "the admin key under another scheme",
            Credential::Header(format!("Token {ADMIN_KEY}")),
        ),
        ("a 100 KB token", bearer(&"k".repeat(100_000))),
        ("an admin key as ?key=", Credential::Query("key", QUERY_KEY)),
        (
            "an admin key as ?api_key=",
            Credential::Query("api_key", QUERY_KEY),
        ),
        (
            "an admin key as ?access_token=",
            Credential::Query("access_token", QUERY_KEY),
        ),
    ]
}

/// `{"error": {"code", "message", "details"}}` and nothing else.
fn assert_error_shape(reply: &Reply, status: StatusCode, code: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    let body = reply.json();
    let outer: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(outer, ["error"], "{what}: {body}");
    let error = body["error"].as_object().unwrap();
    let mut inner: Vec<&String> = error.keys().collect();
    inner.sort();
    assert_eq!(inner, ["code", "details", "message"], "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty(), "{what}");
}

/// No configured key, nor its hash, in `text`.
fn assert_no_key_material(text: &str, what: &str) {
    for (name, key, _) in KEYS {
        if let Some(at) = text.find(key) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!(
                "{what}: the key of {name} appears: {}",
                &text[line_start..line_end]
            );
        }
        assert!(
            !text.contains(&api_key_hash(key)),
            "{what}: the hash of {name}'s key appears"
        );
    }
}

fn scopes_of(key: &str) -> Vec<Scope> {
    KEYS.iter()
        .find(|(_, k, _)| *k == key)
        .unwrap()
        .2
        .iter()
        .map(|s| Scope::ALL.into_iter().find(|x| x.name() == *s).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_route_table_is_specs_routes_with_documented_scopes_and_openapi_agrees() {
    let table: BTreeSet<(String, String, Option<Scope>)> = routes()
        .iter()
        .map(|r| {
            let scope = match r.access {
                Access::Open => None,
                Access::Key(scope) => Some(scope),
            };
            (r.method.to_string(), r.path.to_string(), scope)
        })
        .collect();
    let known: BTreeSet<(String, String, Option<Scope>)> = KNOWN_ROUTES
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
        .collect();
    let unknown: Vec<_> = table.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "routes.rs has routes (or scopes) this test does not know; add them to KNOWN_ROUTES with the scope docs/SERVER.md gives them: {unknown:?}"
    );
    let missing: Vec<_> = known.difference(&table).collect();
    assert!(missing.is_empty(), "SPEC §4 routes missing: {missing:?}");

    // The published document lists the same routes with the same scopes.
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let reply = call(&server.router(), "GET", "/openapi.json", &Credential::None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let scope = operation["x-veltrix-scope"]
                .as_str()
                .map(|s| Scope::ALL.into_iter().find(|x| x.name() == s).unwrap());
            documented.insert((method.to_ascii_uppercase(), path.clone(), scope));
        }
    }
    assert_eq!(
        documented, known,
        "/openapi.json differs from the route table"
    );
}

// ---------------------------------------------------------------------------
// 401 and 403 on every route
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_route_refuses_missing_wrong_and_under_scoped_keys_without_effect() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let version_before = call(&router, "GET", "/v1/config", &bearer(ADMIN_KEY))
        .await
        .json();
    let mut refusals = 0;
    for route in routes() {
        let (method, path) = (route.method, route.path);
        let Access::Key(scope) = route.access else {
            // Open routes answer without a key, and a bad key changes nothing.
            for (what, credential) in [
                ("no key", Credential::None),
                ("an unknown key", bearer("nope")),
            ] {
                let reply = call(&router, method, path, &credential).await;
                assert!(
                    reply.status.is_success(),
                    "{method} {path} is open but answered {} with {what}",
                    reply.status
                );
                assert_no_key_material(&reply.text, path);
            }
            continue;
        };
        for (what, credential) in wrong_credentials() {
            let reply = call(&router, method, path, &credential).await;
            let what = format!("{method} {path} with {what}");
            assert_error_shape(&reply, StatusCode::UNAUTHORIZED, "unauthorized", &what);
            assert_eq!(
                reply.www_authenticate.as_deref(),
                Some("Bearer realm=\"veltrix\""),
                "{what}"
            );
            assert_no_key_material(&reply.text, &what);
            refusals += 1;
        }
        for (name, key, _) in KEYS {
            let scopes = scopes_of(key);
            if scopes.contains(&scope) || scopes.contains(&Scope::Admin) {
                continue;
            }
            let reply = call(&router, method, path, &bearer(key)).await;
            let what = format!("{method} {path} with the {name} key");
            assert_error_shape(&reply, StatusCode::FORBIDDEN, "forbidden", &what);
            let details = &reply.json()["error"]["details"];
            assert_eq!(details["key"], name, "{what}");
            assert_eq!(details["required_scope"], scope.name(), "{what}");
            let listed: Vec<&str> = details["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let configured: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
            assert_eq!(listed, configured, "{what}");
            assert!(reply.www_authenticate.is_none(), "{what}");
            assert_no_key_material(&reply.text, &what);
            refusals += 1;
        }
    }
    // 16 guarded routes × 17 wrong credentials, plus the under-scoped keys.
    assert!(refusals >= 16 * 17 + 20, "{refusals}");

    // Nothing any refused request carried took effect.
    let admin = bearer(ADMIN_KEY);
    let state = call(&router, "GET", "/v1/state", &admin).await.json();
    assert_eq!(
        state["events"],
        json!({"accepted": 0, "duplicates": 0, "rejected": 0})
    );
    assert_eq!(state["grants"], json!([]));
    assert_eq!(
        call(&router, "GET", "/v1/config", &admin).await.json(),
        version_before,
        "a refused POST /v1/config switched the configuration"
    );
    let dead = call(&router, "GET", "/v1/deadletters", &admin).await.json();
    assert_eq!(dead["total"], 0);
    assert_no_key_material(&logs(), "the log lines");
}

#[tokio::test]
async fn every_key_is_accepted_where_its_scope_allows() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    for route in routes() {
        let Access::Key(scope) = route.access else {
            continue;
        };
        for (name, key, _) in KEYS {
            let scopes = scopes_of(key);
            if !(scopes.contains(&scope) || scopes.contains(&Scope::Admin)) {
                continue;
            }
            let reply = call(&router, route.method, route.path, &bearer(key)).await;
            assert!(
                reply.status != 401 && reply.status != 403,
                "{} {} refused the {name} key: {}",
                route.method,
                route.path,
                reply.text
            );
            assert!(
                !reply.status.is_server_error(),
                "{} {} with the {name} key: {}",
                route.method,
                route.path,
                reply.text
            );
        }
    }
    // An ingest-only key wrote; a read-only key sees it; the case of the
    // scheme does not matter.
    let reply = call(
        &router,
        "GET",
        "/v1/players/{player}",
        &Credential::Header(format!("bEaReR {READ_KEY}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["player"], "alice");
}

/// Authentication runs before the body is read: a request without a
/// usable key gets its 401/403 after reading none of a large body.
#[tokio::test]
async fn refusals_come_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_with(dir.path(), &(example_text() + &keys_toml()), 64 * 1024);
    let router = server.router();
    for route in routes() {
        let Access::Key(scope) = route.access else {
            continue;
        };
        if route.method != "POST" {
            continue;
        }
        let under = KEYS
            .iter()
            .find(|(_, k, _)| {
                let s = scopes_of(k);
                !s.contains(&scope) && !s.contains(&Scope::Admin)
            })
            .map(|(_, k, _)| *k)
            .unwrap();
        for (credential, status) in [
            (Credential::None, StatusCode::UNAUTHORIZED),
            (bearer(under), StatusCode::FORBIDDEN),
        ] {
            let pulled = Arc::new(AtomicUsize::new(0));
            let body = counting_body(pulled.clone(), 1024);
            let mut request = Request::builder().method("POST").uri(uri(route.path));
            if let Credential::Header(value) = &credential {
                request = request.header(header::AUTHORIZATION, value.as_str());
            }
            let reply = send(&router, request.body(body).unwrap(), false).await;
            let what = format!("POST {} with {credential:?}", route.path);
            assert_eq!(reply.status, status, "{what}: {}", reply.text);
            assert_eq!(
                pulled.load(Ordering::SeqCst),
                0,
                "{what}: the body was read"
            );
        }
    }
}

/// A body of `chunks` chunks of 64 KiB that counts how many were pulled.
fn counting_body(pulled: Arc<AtomicUsize>, chunks: usize) -> Body {
    let stream = futures_util::stream::iter((0..chunks).map(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 * 1024]))
    }));
    Body::from_stream(stream)
}

// ---------------------------------------------------------------------------
// Keys only as hashes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    // A plain key in the configuration is refused, by the compiler and by
    // the server's check route; the answer does not repeat the key.
    let plain = format!(
        "[events.login]\n[[server.api_keys]]\nname = \"oops\"\nkey = \"{ADMIN_KEY}\"\nscopes = [\"admin\"]\n"
    );
    let diagnostics =
        veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", plain.as_str())])
            .unwrap_err();
    assert!(
        diagnostics.iter().any(|d| d.code == "plain-api-key"),
        "{diagnostics:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/config/check")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .header(header::CONTENT_TYPE, "application/toml");
    let reply = send(&router, request.body(Body::from(plain)).unwrap(), false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["valid"], false);
    assert!(
        body["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "plain-api-key"),
        "{body}"
    );
    assert!(!reply.text.contains(ADMIN_KEY), "the plain key is echoed");

    // The compiled configuration holds 32-byte digests, not keys.
    let config = &plan_of(&(example_text() + &keys_toml())).config;
    let debug = format!("{:?}", config.server);
    for (name, key, _) in KEYS {
        assert!(!debug.contains(key), "{name}");
        let stored = config
            .server
            .api_keys
            .iter()
            .find(|k| k.name == name)
            .unwrap();
        assert_eq!(hex::encode(stored.sha256), api_key_hash(key));
    }

    // Traffic with every key, then the data directory (log and snapshot)
    // holds none of them.
    for (_, key, _) in KEYS {
        for route in routes() {
            call(&router, route.method, route.path, &bearer(key)).await;
        }
    }
    drop(router);
    server.shutdown();
    let mut files = 0;
    for sub in ["wal", "snapshots"] {
        for entry in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            // Hashes may be stored (a configuration switch records its
            // sources, [server] included); keys never.
            let text = String::from_utf8_lossy(&bytes);
            for (name, key, _) in KEYS {
                assert!(!text.contains(key), "{sub}: the key of {name} is stored");
            }
            files += 1;
        }
    }
    assert!(files >= 2, "a segment and a snapshot were written");
    assert_no_key_material(&logs(), "the log lines");
}

// ---------------------------------------------------------------------------
// Puzzle answers never leave the server
// ---------------------------------------------------------------------------

const RIDDLE_ANSWER: &str = "xylophone quartz";
const CIPHER_WORDS: [&str; 4] = ["wombat", "quokka", "jackal", "zephyr"];

fn vault_toml() -> String {
    format!(
        r#"
[events.login]
[hunts.vault]
title = "The Vault"
ordered = true
completion = {{ points = 5, badge = "opener" }}

[[hunts.vault.stages]]
id = "riddle"
clue = "Say the two secret words."
answer_sha256 = "{}"
reward = {{ points = 10 }}
first_finders = [3]

[[hunts.vault.stages]]
id = "cipher"
clue = "A shifted word."
puzzle = {{ kind = "caesar", words = {:?} }}
reward = {{ points = 20 }}

[leaderboards.global]

[[views]]
name = "logins"
on = "login"
group_by = ["player"]
bucket = "1h"
measures = ["count"]
"#,
        api_key_hash(RIDDLE_ANSWER),
        CIPHER_WORDS
    )
}

fn answer(id: &str, player: &str, stage: &str, text: &str) -> String {
    json!({"id": id, "player": player, "type": "answer", "ts": "2026-12-02T10:00:00Z",
           "data": {"hunt": "vault", "stage": stage, "answer": text}})
    .to_string()
}

/// Riddle answers (right, wrong, differently spelt, sent to a stage that
/// does not exist) and generated-puzzle answers (the player's own, and a
/// friend's) go through ingest; then every read route, the dead-letter
/// replay, the live stream and every log line are searched for them.
#[tokio::test]
async fn puzzle_answers_never_appear_in_any_response_stream_or_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = vault_toml() + &keys_toml();
    let plan = plan_of(&text);
    let server = open_with(dir.path(), &text, 16 << 20);
    let router = server.router();
    let admin = format!("Bearer {ADMIN_KEY}");
    let hunt = plan.config.hunt("vault").unwrap();
    let cipher_of = |player: &str| {
        veltrix_core::puzzles::puzzle_instance(&plan, hunt, 1, player)
            .unwrap()
            .unwrap()
    };
    let alice = cipher_of("alice");
    assert!(CIPHER_WORDS.contains(&alice.answer.as_str()));
    let bob = ["bob", "bob2", "bob3", "bob4", "bob5", "bob6"]
        .into_iter()
        .find(|p| cipher_of(p).answer != alice.answer)
        .unwrap();

    // The stream, opened first so it sees everything.
    let stream = router
        .clone()
        .oneshot(
            Request::get("/v1/stream")
                .header(header::AUTHORIZATION, &admin)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut stream = stream.into_body();

    let mut responses = Vec::new();
    let post = async |body: String| {
        let request = Request::post("/v1/events")
            .header(header::AUTHORIZATION, &admin)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from(body))
            .unwrap();
        let reply = send(&router, request, false).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.text
    };
    responses.push(
        post(
            [
                answer("a1", "alice", "riddle", "xylophone quarts"),
                answer("a2", "alice", "ridle", RIDDLE_ANSWER),
                answer("a3", "alice", "riddle", "  XYLOPHONE   Quartz "),
                answer("a4", "alice", "cipher", "not it"),
            ]
            .join("\n"),
        )
        .await,
    );
    // Alice's puzzle while it is active: its text, never its answer.
    let active = call(
        &router,
        "GET",
        "/v1/players/alice/hunts/vault",
        &Credential::Header(admin.clone()),
    )
    .await;
    assert_eq!(
        active.json()["active"][0]["id"],
        "cipher",
        "{}",
        active.text
    );
    assert_eq!(
        active.json()["active"][0]["puzzle"]["text"],
        json!(alice.text)
    );
    responses.push(active.text);
    responses.push(
        post(
            [
                answer("b1", bob, "riddle", RIDDLE_ANSWER),
                answer("b2", bob, "cipher", &alice.answer),
                answer("a5", "alice", "cipher", &alice.answer.to_uppercase()),
            ]
            .join("\n"),
        )
        .await,
    );

    let get_routes = [
        "/v1/state",
        "/v1/players/alice",
        "/v1/players/alice/ledger",
        "/v1/players/alice/hunts/vault",
        &format!("/v1/players/{bob}/hunts/vault"),
        "/v1/hunts/vault",
        "/v1/leaderboards/global",
        "/v1/leaderboards/global/players/alice?around=5",
        "/v1/views/logins",
        "/v1/deadletters",
        "/v1/config",
        "/metrics",
        "/readyz",
        "/openapi.json",
    ];
    for path in get_routes {
        let reply = call(&router, "GET", path, &Credential::Header(admin.clone())).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        responses.push(reply.text);
    }
    let replay = call(
        &router,
        "POST",
        "/v1/deadletters/replay",
        &Credential::Header(admin.clone()),
    )
    .await;
    responses.push(replay.text);

    // The stream has alice's completion (so her answers went through it).
    let mut streamed = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !streamed.contains("hunt_completed") {
        let frame = tokio::time::timeout_at(deadline, stream.frame())
            .await
            .unwrap_or_else(|_| panic!("no completion streamed: {streamed}"))
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            streamed.push_str(&String::from_utf8_lossy(&data));
        }
    }
    responses.push(streamed);

    // The facts the responses must show (so they were not just empty).
    let state: Value = serde_json::from_str(&responses[3]).unwrap();
    assert_eq!(
        state["players"]["alice"]["hunts"]["vault"]["completed"], true,
        "{state}"
    );
    assert_eq!(
        state["events"]["rejected"], 1,
        "the answer to a missing stage"
    );

    let mut secrets: Vec<String> = vec![RIDDLE_ANSWER.into(), "xylophone".into(), "quartz".into()];
    secrets.extend(CIPHER_WORDS.iter().map(|w| w.to_string()));
    let logs = logs().to_lowercase();
    for secret in &secrets {
        for (i, text) in responses.iter().enumerate() {
            assert!(
                !text.to_lowercase().contains(secret.as_str()),
                "answer {secret:?} in response {i}: {text}"
            );
        }
        assert!(
            !logs.contains(secret.as_str()),
            "answer {secret:?} in a log line"
        );
    }
}

// ---------------------------------------------------------------------------
// Oversized and deeply nested bodies
// ---------------------------------------------------------------------------

/// Every POST route with the admin key and a body four times its limit
/// (streamed, no Content-Length): 413 `body_too_large` naming the limit,
/// after reading no more than the limit.
#[tokio::test]
async fn oversized_bodies_are_413_after_reading_at_most_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 * 1024;
    let server = open_with(dir.path(), &(example_text() + &keys_toml()), limit);
    let router = server.router();
    let mut checked = 0;
    for route in routes() {
        if route.method != "POST" {
            continue;
        }
        let pulled = Arc::new(AtomicUsize::new(0));
        let chunks = 4 * limit / (64 * 1024);
        let request = Request::post(uri(route.path))
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(counting_body(pulled.clone(), chunks))
            .unwrap();
        let reply = send(&router, request, false).await;
        let what = format!("POST {}", route.path);
        assert_error_shape(
            &reply,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &what,
        );
        let stated = reply.json()["error"]["details"]["limit_bytes"]
            .as_u64()
            .unwrap() as usize;
        assert!(stated <= limit, "{what}: limit {stated}");
        let read = pulled.load(Ordering::SeqCst) * 64 * 1024;
        assert!(
            read <= stated + 64 * 1024,
            "{what}: read {read} bytes for a limit of {stated}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "{checked}");
    // A Content-Length over the limit is refused the same way.
    let request = Request::post("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .header(header::CONTENT_LENGTH, (limit + 1).to_string())
        .body(Body::from(vec![b' '; limit + 1]))
        .unwrap();
    let reply = send(&router, request, false).await;
    assert_error_shape(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "content-length",
    );
}

fn nested_json(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

/// JSON nested 100,000 deep (and TOML nested as deep as a body limit
/// allows) on every route that parses a body: refused with a 400 in the
/// error shape, or — for one NDJSON line or one event — a rejection with
/// its reason; the server keeps serving and nothing was accepted.
#[tokio::test]
async fn deeply_nested_bodies_are_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let admin = format!("Bearer {ADMIN_KEY}");
    let deep = nested_json(100_000);
    let post = async |path: &str, content_type: &str, body: String| {
        let request = Request::post(path)
            .header(header::AUTHORIZATION, &admin)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        send(&router, request, false).await
    };

    // A JSON array whose one element is nested 100,000 deep: one
    // rejected event with its reason (the array is split without
    // recursing into its elements).
    let reply = post("/v1/events", "application/json", deep.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["accepted"], 0);
    let rejected = reply.json()["rejected"].clone();
    assert_eq!(rejected.as_array().unwrap().len(), 1, "{rejected}");
    assert_eq!(
        rejected[0]["error"],
        "expected an event object, got an array (at column 1)"
    );

    // Every other body that is one JSON document: a 400 for the request.
    for (path, body) in [
        ("/v1/players/alice/spend", nested_json(30_000)),
        (
            "/v1/deadletters/replay",
            format!("{{\"ids\":{}}}", nested_json(30_000)),
        ),
        ("/v1/config/check", format!("{{\"files\":{deep}}}")),
        ("/v1/config", format!("{{\"files\":{{\"a.toml\":{deep}}}}}")),
    ] {
        let reply = post(path, "application/json", body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        let code = reply.json()["error"]["code"].as_str().unwrap().to_string();
        assert_error_shape(&reply, StatusCode::BAD_REQUEST, &code, path);
    }

    // One event, or NDJSON lines among a good one: rejected with a reason
    // (the field, when the type is known before the data; the parser's
    // nesting limit otherwise), the good line accepted.
    let typed_first =
        format!(r#"{{"id":"n1","player":"alice","type":"purchase","data":{{"amount":{deep}}}}}"#);
    let data_first =
        format!(r#"{{"id":"n2","player":"alice","data":{{"amount":{deep}}},"type":"purchase"}}"#);
    let good = r#"{"id":"g1","player":"alice","type":"login","ts":"2026-12-01T09:00:00Z"}"#;
    for (content_type, body, accepted, reasons) in [
        (
            "application/json",
            typed_first.clone(),
            0,
            vec!["data.amount: expected a number"],
        ),
        (
            "application/json",
            data_first.clone(),
            0,
            vec!["recursion limit"],
        ),
        (
            "application/x-ndjson",
            format!("{good}\n{deep}\n{typed_first}\n{data_first}\n"),
            1,
            vec![
                "expected an event object",
                "data.amount: expected a number",
                "recursion limit",
            ],
        ),
    ] {
        let reply = post("/v1/events", content_type, body).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type}: {}",
            reply.text
        );
        let body = reply.json();
        assert_eq!(body["accepted"], accepted, "{body}");
        let errors: Vec<&str> = body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["error"].as_str().unwrap())
            .collect();
        assert_eq!(errors.len(), reasons.len(), "{errors:?}");
        for (error, reason) in errors.iter().zip(&reasons) {
            assert!(
                error.contains(reason),
                "{content_type}: {error:?} should say {reason:?}"
            );
        }
    }

    // TOML nested as deep as fits: arrays, inline tables, dotted keys and
    // table headers. Each is answered (a diagnostic), none crashes.
    let depth = 20_000;
    for (what, expect, toml) in [
        (
            "arrays",
            "recursion",
            format!("x = {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
        ),
        (
            "inline tables",
            "recursion",
            format!("x = {}1{}\n", "{a = ".repeat(depth), "}".repeat(depth)),
        ),
        (
            "dotted keys",
            "recursion",
            format!("{} = 1\n", vec!["a"; depth].join(".")),
        ),
        (
            "a table header",
            "recursion",
            format!("[{}]\n", vec!["a"; depth].join(".")),
        ),
        (
            "a deep expression",
            "nested too deeply",
            format!(
                "[events.login]\n[rules.r]\non = \"login\"\nwhen = \"{}true{}\"\nreward = {{ points = 1 }}\n",
                "!(".repeat(500),
                ")".repeat(500)
            ),
        ),
        (
            "a long expression",
            "too long",
            format!(
                "[events.login]\n[rules.r]\non = \"login\"\nwhen = \"{}true{}\"\nreward = {{ points = 1 }}\n",
                "(".repeat(4000),
                ")".repeat(4000)
            ),
        ),
    ] {
        let reply = post("/v1/config/check", "application/toml", toml).await;
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["valid"], false, "{what}: {body}");
        let message = body["diagnostics"][0]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{what}: {body}");
    }

    // Still serving, and nothing nested was accepted.
    let health = call(&router, "GET", "/healthz", &Credential::None).await;
    assert_eq!(health.status, StatusCode::OK);
    let state = call(
        &router,
        "GET",
        "/v1/state",
        &Credential::Header(admin.clone()),
    )
    .await
    .json();
    assert_eq!(state["events"]["accepted"], 1, "{}", state["events"]);
}

/// A key a client wrongly sends as `?key=...` (refused with 401) never
/// reaches the logs, even at `debug`: the request span (`Server::router`)
/// names the path only, never the query string. (It once logged the whole
/// URI; this test found it.)
#[tokio::test]
async fn a_key_sent_in_the_query_string_never_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    for name in ["key", "api_key", "access_token"] {
        let reply = call(
            &router,
            "GET",
            "/v1/state",
            &Credential::Query(name, QUERY_KEY),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let logs = logs();
    assert!(logs.contains("/v1/state"), "the request trace is captured");
    assert!(
        !logs.contains(QUERY_KEY),
        "a key from a query string was logged"
    );
}

// ---------------------------------------------------------------------------
// Fuzz regressions: the fuzz targets' bodies on every saved input
// ---------------------------------------------------------------------------

#[path = "../../../fuzz/src/targets.rs"]
mod fuzz_targets;

/// Every input under `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/`
/// (crash reproducers are saved there) through the same function the
/// fuzzer runs, so plain `cargo test` replays them without cargo-fuzz.
#[test]
fn fuzz_regressions_and_seeds_run_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut ran = 0;
    for (name, body) in fuzz_targets::TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = fuzz.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let bytes = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| body(&bytes));
                assert!(
                    outcome.is_ok(),
                    "fuzz target {name} fails on {}",
                    file.display()
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 50, "only {ran} saved inputs");
}
