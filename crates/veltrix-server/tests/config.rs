//! `POST /v1/config` and `GET /v1/config`: applying a configuration at a
//! recorded log position, refusals, and restarts (whole log, snapshot plus
//! tail) that reproduce the switch.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::Path;
use tower::ServiceExt;
use veltrix_server::rebuild::{Source, comparable_state, rebuild};
use veltrix_server::{Server, ServerOptions};

mod common;
use common::{call, open, plan};

const CONFIG_A: &str = "[currencies.coins]\n[currencies.gems]\n[events.login]\n[events.bonus]\n\
[rules.hello]\non = \"login\"\nreward = { points = 1, coins = 1 }\n";
/// A plus a rule on `bonus`.
const CONFIG_B: &str = "[currencies.coins]\n[currencies.gems]\n[events.login]\n[events.bonus]\n\
[rules.hello]\non = \"login\"\nreward = { points = 1, coins = 1 }\n\
[rules.bonus]\non = \"bonus\"\nreward = { points = 5 }\n";
/// A without `coins`.
const CONFIG_NO_COINS: &str = "[currencies.gems]\n[events.login]\n[events.bonus]\n\
[rules.hello]\non = \"login\"\nreward = { points = 1 }\n";

fn version(text: &str) -> String {
    plan(text).config.version.clone()
}

async fn event(router: &Router, id: &str, kind: &str) {
    let body = json!({"id": id, "player": "alice", "type": kind, "ts": "2026-12-01T09:00:00Z"});
    let (status, value) = call(
        router,
        "POST",
        "/v1/events",
        Some(("application/json", &body.to_string())),
    )
    .await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(value["accepted"], 1, "{value}");
}

async fn apply(router: &Router, text: &str) -> (StatusCode, Value) {
    call(
        router,
        "POST",
        "/v1/config",
        Some(("application/toml", text)),
    )
    .await
}

async fn get(router: &Router, uri: &str) -> Value {
    let (status, value) = call(router, "GET", uri, None).await;
    assert_eq!(status, 200, "{uri}: {value}");
    value
}

async fn points(router: &Router) -> Value {
    get(router, "/v1/players/alice").await["points"].clone()
}

#[tokio::test]
async fn a_new_rule_fires_for_later_events_only_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    event(&router, "e1", "login").await;
    event(&router, "b1", "bonus").await;
    assert_eq!(points(&router).await, 1);
    let before = get(&router, "/v1/config").await;
    assert_eq!(before["version"], version(CONFIG_A));
    assert_eq!(before["history"].as_array().unwrap().len(), 1, "{before}");

    let (status, answer) = apply(&router, CONFIG_B).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], true);
    assert_eq!(answer["version"], version(CONFIG_B));
    assert_eq!(answer["previous_version"], version(CONFIG_A));
    let seq = answer["seq"].as_u64().unwrap();
    assert_eq!(answer["report"]["from_version"], version(CONFIG_A));
    assert_eq!(answer["report"]["to_version"], version(CONFIG_B));
    assert_eq!(answer["report"]["dropped_rules"], json!([]));

    // The earlier bonus event is not re-evaluated; a later one fires.
    assert_eq!(points(&router).await, 1);
    event(&router, "b2", "bonus").await;
    assert_eq!(points(&router).await, 6);
    // Dedup spans versions.
    let body = json!({"id": "b1", "player": "alice", "type": "bonus"}).to_string();
    let (_, dup) = call(
        &router,
        "POST",
        "/v1/events",
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(dup["duplicates"], 1, "{dup}");

    let config = get(&router, "/v1/config").await;
    assert_eq!(config["version"], version(CONFIG_B));
    assert_eq!(config["seq"], seq);
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{config}");
    assert_eq!(history[0]["version"], version(CONFIG_A));
    assert_eq!(
        history[1],
        json!({"version": version(CONFIG_B), "seq": seq})
    );

    // The same version again: nothing changes, nothing is logged.
    let next_seq = get(&router, "/readyz").await["last_seq"].clone();
    let (status, again) = apply(&router, CONFIG_B).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["changed"], false);
    assert_eq!(again["version"], version(CONFIG_B));
    assert_eq!(again["seq"], seq);
    assert_eq!(get(&router, "/readyz").await["last_seq"], next_seq);
    assert_eq!(get(&router, "/v1/config").await, config);

    let state = get(&router, "/v1/state").await;
    drop(router);
    server.shutdown();

    // Restart with the original start-up file: the log replays the switch
    // at its seq, and the switched configuration stays in force.
    let server = open(dir.path(), CONFIG_A, false);
    assert_eq!(server.snapshot_seq, None);
    let router = server.router();
    assert_eq!(get(&router, "/v1/state").await, state);
    assert_eq!(get(&router, "/v1/config").await, config);
    event(&router, "b3", "bonus").await;
    assert_eq!(points(&router).await, 11);
    drop(router);
    server.shutdown();

    // Without a snapshot after the switch, the records before it need the
    // configuration that was in force then: another start-up file is refused.
    let mut options = ServerOptions::new(dir.path());
    options.snapshot_every = None;
    let Err(error) = Server::open(plan(CONFIG_NO_COINS), options) else {
        panic!("replaying the switch over other records must be refused");
    };
    let error = error.to_string();
    assert!(error.contains(&version(CONFIG_A)), "{error}");
}

#[tokio::test]
async fn an_invalid_configuration_answers_its_diagnostics_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    event(&router, "e1", "login").await;
    let config = get(&router, "/v1/config").await;
    let state = get(&router, "/v1/state").await;
    let last_seq = get(&router, "/readyz").await["last_seq"].clone();

    let bad = "[events.login]\n[rules.hello]\non = \"logn\"\nreward = { points = 1 }\n";
    let (status, answer) = apply(&router, bad).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_config");
    let diagnostics = answer["error"]["details"]["diagnostics"]
        .as_array()
        .unwrap();
    assert!(
        diagnostics
            .iter()
            .any(|d| d["code"] == "unknown-event-type" && d["file"] == "veltrix.toml"),
        "{answer}"
    );
    // The JSON form with several files names them in diagnostics.
    let files = json!({"files": {"a.toml": "[events.login]\n", "b.toml": "[rules.x]\non = \"nope\"\nreward = { points = 1 }\n"}});
    let (status, answer) = call(
        &router,
        "POST",
        "/v1/config",
        Some(("application/json", &files.to_string())),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let diagnostics = answer["error"]["details"]["diagnostics"]
        .as_array()
        .unwrap();
    assert!(
        diagnostics.iter().any(|d| d["file"] == "b.toml"),
        "{answer}"
    );

    assert_eq!(get(&router, "/v1/config").await, config);
    assert_eq!(get(&router, "/v1/state").await, state);
    assert_eq!(get(&router, "/readyz").await["last_seq"], last_seq);
}

#[tokio::test]
async fn dropping_a_held_currency_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    event(&router, "e1", "login").await;
    assert_eq!(
        get(&router, "/v1/players/alice").await["balances"]["coins"],
        1
    );
    let config = get(&router, "/v1/config").await;
    let state = get(&router, "/v1/state").await;
    let last_seq = get(&router, "/readyz").await["last_seq"].clone();

    let (status, answer) = apply(&router, CONFIG_NO_COINS).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "config_refused");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("coins"), "{message}");

    assert_eq!(get(&router, "/v1/config").await, config);
    assert_eq!(get(&router, "/v1/state").await, state);
    assert_eq!(get(&router, "/readyz").await["last_seq"], last_seq);
    drop(router);
    server.shutdown();

    // Nothing was logged: a restart has the same state and version.
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    assert_eq!(get(&router, "/v1/state").await, state);
    assert_eq!(get(&router, "/v1/config").await, config);
}

#[tokio::test]
async fn a_snapshot_after_a_switch_loads_with_the_switched_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, true);
    let router = server.router();
    event(&router, "e1", "login").await;
    event(&router, "b1", "bonus").await;
    let (status, answer) = apply(&router, CONFIG_B).await;
    assert_eq!(status, 200, "{answer}");
    event(&router, "b2", "bonus").await;
    let state = get(&router, "/v1/state").await;
    let config = get(&router, "/v1/config").await;
    drop(router);
    // The shutdown snapshot covers the switch.
    server.shutdown();

    let server = open(dir.path(), CONFIG_A, true);
    assert!(server.snapshot_seq.is_some(), "{:?}", server.warnings);
    assert!(server.warnings.is_empty(), "{:?}", server.warnings);
    let router = server.router();
    assert_eq!(get(&router, "/v1/state").await, state);
    assert_eq!(get(&router, "/v1/config").await, config);
    event(&router, "b3", "bonus").await;
    assert_eq!(points(&router).await, 11);
    drop(router);
    let seq = server.snapshot_seq;
    server.shutdown();

    let server = open(dir.path(), CONFIG_A, false);
    assert!(server.snapshot_seq >= seq);
    let router = server.router();
    assert_eq!(points(&router).await, 11);
    assert_eq!(get(&router, "/v1/config").await, config);
    drop(router);
    server.shutdown();

    // `veltrix verify`'s comparison: snapshot + tail equals the whole log.
    let (log, store, _) = veltrix_server::rebuild::open_data_dir(dir.path()).unwrap();
    let from_snapshot = rebuild(plan(CONFIG_A), 1, &log, &store, Source::LatestSnapshot).unwrap();
    assert!(from_snapshot.snapshot_seq.is_some());
    let from_log = rebuild(plan(CONFIG_A), 1, &log, &store, Source::LogOnly).unwrap();
    let (left, right) = (
        comparable_state(&from_snapshot.core),
        comparable_state(&from_log.core),
    );
    assert_eq!(left["config_version"], version(CONFIG_B));
    assert_eq!(left, right);
    assert_eq!(
        from_snapshot.core.config_history,
        from_log.core.config_history
    );
}

#[tokio::test]
async fn a_snapshot_tail_replays_a_switch() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, true);
    let router = server.router();
    event(&router, "e1", "login").await;
    drop(router);
    server.shutdown();

    // Snapshot with A; the switch lands in the tail.
    let server = open(dir.path(), CONFIG_A, false);
    assert!(server.snapshot_seq.is_some());
    let router = server.router();
    let (status, answer) = apply(&router, CONFIG_B).await;
    assert_eq!(status, 200, "{answer}");
    event(&router, "b1", "bonus").await;
    let state = get(&router, "/v1/state").await;
    let config = get(&router, "/v1/config").await;
    drop(router);
    server.shutdown();

    let server = open(dir.path(), CONFIG_A, false);
    assert!(server.snapshot_seq.is_some());
    assert!(server.records_replayed >= 2);
    let router = server.router();
    assert_eq!(get(&router, "/v1/state").await, state);
    assert_eq!(get(&router, "/v1/config").await, config);
    assert_eq!(points(&router).await, 6);
}

fn open_with_sources(dir: &Path, text: &str) -> Result<Server, veltrix_server::ServerError> {
    let mut options = ServerOptions::new(dir);
    options.snapshot_every = None;
    options.config_sources = Some(vec![("veltrix.toml".into(), text.into())]);
    Server::open(plan(text), options)
}

#[tokio::test]
async fn a_new_start_up_configuration_after_a_switch_is_applied_as_a_switch() {
    let dir = tempfile::tempdir().unwrap();
    // A shutdown snapshot after the switch: start-up does not need the
    // configuration in force before it.
    let server = open(dir.path(), CONFIG_A, true);
    let router = server.router();
    event(&router, "e1", "login").await;
    event(&router, "b1", "bonus").await;
    assert_eq!(apply(&router, CONFIG_B).await.0, 200);
    drop(router);
    server.shutdown();

    // The file the server first started with: outdated, the log's B stays.
    let server = open_with_sources(dir.path(), CONFIG_A).unwrap();
    let router = server.router();
    assert_eq!(
        get(&router, "/v1/config").await["version"],
        version(CONFIG_B)
    );
    drop(router);
    server.shutdown();

    // A version the log never had that the state refuses: start-up error.
    let Err(error) = open_with_sources(dir.path(), CONFIG_NO_COINS) else {
        panic!("dropping a held currency at start-up must be refused");
    };
    assert!(error.to_string().contains("coins"), "{error}");

    // A new version: applied at the end of the log, earlier events unchanged.
    let config_c =
        format!("{CONFIG_B}[rules.welcome]\non = \"login\"\nreward = {{ points = 100 }}\n");
    let server = open_with_sources(dir.path(), &config_c).unwrap();
    let router = server.router();
    let config = get(&router, "/v1/config").await;
    assert_eq!(config["version"], version(&config_c));
    assert_eq!(config["history"].as_array().unwrap().len(), 3, "{config}");
    assert_eq!(points(&router).await, 1);
    event(&router, "e2", "login").await;
    assert_eq!(points(&router).await, 102);
    let state = get(&router, "/v1/state").await;
    drop(router);
    server.shutdown();

    // Started again with the old file and no sources: C stays, replayed.
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    assert_eq!(get(&router, "/v1/config").await, config);
    assert_eq!(get(&router, "/v1/state").await, state);
}

#[tokio::test]
async fn the_stream_shows_a_switch_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    let response = router
        .clone()
        .oneshot(
            Request::get("/v1/stream?kinds=config")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (status, answer) = apply(&router, CONFIG_B).await;
    assert_eq!(status, 200, "{answer}");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("a config message")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.contains("event: config"), "{text}");
    assert!(text.contains(&format!("id: {}", answer["seq"])), "{text}");
    assert!(text.contains(&version(CONFIG_B)), "{text}");
}
