//! Admin routes: `POST /v1/config/check`, `POST /v1/deadletters/replay`
//! (across restarts, a configuration change and snapshots) and
//! `GET /openapi.json`.

use axum::Router;
use serde_json::{Value, json};
use std::sync::Arc;
use veltrix_core::Plan;
use veltrix_server::{Server, ServerOptions};

mod common;
use common::{call, open};

const CONFIG_A: &str = "[events.login]\n[rules.hello]\non = \"login\"\nreward = { points = 1 }\n";
const CONFIG_B: &str = "[events.login]\n[rules.hello]\non = \"login\"\nreward = { points = 1 }\n\
[events.bonus]\nfields = { amount = \"integer\" }\n[rules.bonus]\non = \"bonus\"\nreward = { points = 5 }\n";

async fn replay(router: &Router, body: &str) -> Value {
    let (status, value) = call(
        router,
        "POST",
        "/v1/deadletters/replay",
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(status, 200, "{value}");
    value
}

async fn dead_letters(router: &Router) -> Value {
    let (status, value) = call(router, "GET", "/v1/deadletters", None).await;
    assert_eq!(status, 200);
    value
}

async fn points(router: &Router) -> Value {
    call(router, "GET", "/v1/players/alice", None).await.1["points"].clone()
}

#[tokio::test]
async fn config_check_validates_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, false);
    let router = server.router();
    let (_, before) = call(&router, "GET", "/readyz", None).await;

    let (status, valid) = call(
        &router,
        "POST",
        "/v1/config/check",
        Some(("application/toml", CONFIG_B)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["version"].as_str().unwrap().len(), 16);
    assert_eq!(valid["diagnostics"], json!([]));

    let broken = "[events.login]\n[rules.hello]\non = \"logn\"\nreward = { points = 1 }\n";
    let (status, invalid) = call(
        &router,
        "POST",
        "/v1/config/check",
        Some(("text/plain", broken)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(invalid["valid"], false);
    assert_eq!(invalid["version"], Value::Null);
    let first = &invalid["diagnostics"][0];
    assert_eq!(first["code"], "unknown-event-type", "{invalid}");
    assert_eq!(first["line"], 3);
    assert!(first["help"].as_str().unwrap().contains("login"), "{first}");

    // Several files: names locate diagnostics; a clash names both files.
    let files =
        json!({"files": {"a.toml": "[events.login]\n", "b.toml": "[events.login]\n"}}).to_string();
    let (status, clash) = call(
        &router,
        "POST",
        "/v1/config/check",
        Some(("application/json", &files)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(clash["valid"], false);
    assert_eq!(clash["diagnostics"][0]["file"], "b.toml", "{clash}");

    let (status, bad) = call(
        &router,
        "POST",
        "/v1/config/check",
        Some(("application/json", "{\"file\": {}}")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["code"], "malformed_json");

    let (_, after) = call(&router, "GET", "/readyz", None).await;
    assert_eq!(before, after, "checking must not change the state");
    let (_, version) = call(&router, "GET", "/v1/config", None).await;
    assert_ne!(version["version"], valid["version"]);
}

const EVENTS: &str = r#"{"id":"l1","player":"alice","type":"login","ts":"2026-12-01T09:00:00Z"}
{"id":"b1","player":"alice","type":"bonus","ts":"2026-12-01T09:01:00Z","data":{"amount":3}}
{"id":"b2","player":"alice","type":"bonus","ts":"2026-12-01T09:02:00Z","data":{"amount":4}}
not json
{"id":"l1","player":"alice","type":"login","ts":"2026-12-01T09:00:00Z"}
"#;

#[tokio::test]
async fn dead_letters_replay_after_a_configuration_fix_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = open(dir.path(), CONFIG_A, false);
        let router = server.router();
        let (status, answer) = call(
            &router,
            "POST",
            "/v1/events",
            Some(("application/x-ndjson", EVENTS)),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (answer["accepted"].clone(), answer["duplicates"].clone()),
            (json!(1), json!(1))
        );
        let list = dead_letters(&router).await;
        assert_eq!(list["total"], 3);
        assert_eq!(list["rejected"][0]["id"], "b1");
        assert_eq!(list["rejected"][0]["index"], 0);
        assert_eq!(list["rejected"][2]["replayable"], true);

        // The same configuration rejects them again: nothing changes.
        let (_, state_before) = call(&router, "GET", "/v1/state", None).await;
        let answer = replay(&router, "").await;
        assert_eq!(answer["accepted"], 0);
        assert_eq!(answer["rejected"].as_array().unwrap().len(), 3);
        assert_eq!(answer["removed"], json!([]));
        assert_eq!(answer["remaining"], 3);
        let (_, state_after) = call(&router, "GET", "/v1/state", None).await;
        assert_eq!(state_before, state_after);
        server.shutdown();
    }
    {
        // The fixed configuration accepts the bonus events.
        let server = open(dir.path(), CONFIG_B, false);
        let router = server.router();
        assert_eq!(
            dead_letters(&router).await["total"],
            3,
            "dead letters survive a restart"
        );
        let answer = replay(&router, r#"{"ids": ["b1", "zz"]}"#).await;
        assert_eq!(answer["accepted"], 1);
        assert_eq!(
            answer["removed"],
            json!([{"index": 0, "id": "b1", "outcome": "accepted"}])
        );
        assert_eq!(answer["not_found"], json!(["zz"]));
        assert_eq!(answer["remaining"], 2);
        assert_eq!(points(&router).await, 6);

        // b2 arrives on its own: its dead letter is then a duplicate.
        let b2 = r#"{"id":"b2","player":"alice","type":"bonus","ts":"2026-12-01T09:02:00Z","data":{"amount":4}}"#;
        let (status, _) = call(
            &router,
            "POST",
            "/v1/events",
            Some(("application/json", b2)),
        )
        .await;
        assert_eq!(status, 200);
        let answer = replay(&router, "{}").await;
        assert_eq!(answer["duplicates"], 1);
        assert_eq!(answer["removed"][0]["outcome"], "duplicate");
        assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
        assert_eq!(answer["remaining"], 1);
        assert_eq!(points(&router).await, 11);

        let (status, bad) = call(
            &router,
            "POST",
            "/v1/deadletters/replay",
            Some(("application/json", r#"{"indexes": [7]}"#)),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(bad["error"]["code"], "invalid_index");
        server.shutdown();
    }
    let expected_state = {
        // The log alone gives the same list and state.
        let server = open(dir.path(), CONFIG_B, true);
        let router = server.router();
        let list = dead_letters(&router).await;
        assert_eq!(list["total"], 1);
        assert_eq!(list["rejected"][0]["id"], Value::Null);
        assert_eq!(points(&router).await, 11);
        let (_, state) = call(&router, "GET", "/v1/state", None).await;
        server.shutdown(); // takes a snapshot
        state
    };
    // From the snapshot: the same, and the body is still there to replay.
    let server = open(dir.path(), CONFIG_B, true);
    assert!(server.snapshot_seq.is_some(), "started from the snapshot");
    let router = server.router();
    let (_, state) = call(&router, "GET", "/v1/state", None).await;
    assert_eq!(state, expected_state);
    let list = dead_letters(&router).await;
    assert_eq!(list["rejected"][0]["replayable"], true);
    let answer = replay(&router, r#"{"indexes": [0]}"#).await;
    let error = answer["rejected"][0]["error"].as_str().unwrap();
    assert!(error.contains("JSON"), "{answer}");
    assert_eq!(dead_letters(&router).await["total"], 1);
    drop(router);
    server.shutdown();

    // `veltrix verify`'s comparison: snapshot + tail equals the whole log,
    // dead-letter bodies included.
    let (log, store, _) = veltrix_server::rebuild::open_data_dir(dir.path()).unwrap();
    let plan = || {
        let config =
            veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", CONFIG_B)])
                .unwrap();
        Arc::new(Plan::new(Arc::new(config)))
    };
    use veltrix_server::rebuild::{Source, comparable_state, rebuild};
    let from_snapshot = rebuild(plan(), 1, &log, &store, Source::LatestSnapshot).unwrap();
    assert!(from_snapshot.snapshot_seq.is_some());
    let from_log = rebuild(plan(), 1, &log, &store, Source::LogOnly).unwrap();
    let (left, right) = (
        comparable_state(&from_snapshot.core),
        comparable_state(&from_log.core),
    );
    assert_eq!(left["dead_letter_bodies"], json!(["not json"]));
    assert_eq!(left, right);
}

#[tokio::test]
async fn dead_letters_of_older_servers_are_listed_but_not_replayable() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What a server before dead-letter bodies wrote: a Tally record.
        let (log, _) =
            veltrix_server::veltrix_log::Log::open(dir.path(), Default::default()).unwrap();
        let tally = veltrix_server::record::LogRecord::Tally {
            duplicates: 0,
            rejected: vec![veltrix_server::record::RejectionRecord {
                line: 1,
                id: Some("b1".into()),
                error: "unknown event type \"bonus\"".into(),
            }],
        };
        log.append_sync(vec![veltrix_server::record::encode(&tally)])
            .unwrap();
        log.close().unwrap();
    }
    let server = open(dir.path(), CONFIG_B, false);
    let router = server.router();
    let list = dead_letters(&router).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["rejected"][0]["replayable"], false);
    let answer = replay(&router, "").await;
    assert_eq!(answer["skipped"][0]["id"], "b1", "{answer}");
    assert_eq!(answer["remaining"], 1);
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path(), CONFIG_A, false);
    let (status, document) = call(&server.router(), "GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    for route in veltrix_server::routes::routes() {
        let operation = &document["paths"][route.path][route.method.to_ascii_lowercase()];
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{} {}",
            route.method,
            route.path
        );
        assert!(operation["responses"]["200"].is_object());
    }
    assert!(document["components"]["schemas"]["Error"].is_object());
}

#[tokio::test]
async fn a_large_replay_is_split_across_calls() {
    let dir = tempfile::tempdir().unwrap();
    let events: String = (0..10)
        .map(|i| {
            format!(
                "{{\"id\":\"b{i}\",\"player\":\"alice\",\"type\":\"bonus\",\"ts\":\"2026-12-01T09:00:00Z\",\"data\":{{\"amount\":{i}}}}}\n"
            )
        })
        .collect();
    {
        let server = open(dir.path(), CONFIG_A, false);
        let (status, _) = call(
            &server.router(),
            "POST",
            "/v1/events",
            Some(("application/x-ndjson", &events)),
        )
        .await;
        assert_eq!(status, 200);
        server.shutdown();
    }
    let config =
        veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", CONFIG_B)]).unwrap();
    let mut options = ServerOptions::new(dir.path());
    options.body_limit = 1024;
    options.log.max_record_bytes = 4096;
    options.log.queue_bytes = 8192;
    let server = Server::open(Arc::new(Plan::new(Arc::new(config))), options).unwrap();
    let router = server.router();
    let mut calls = 0;
    loop {
        calls += 1;
        let answer = replay(&router, "").await;
        assert!(
            answer["rejected"].as_array().unwrap().is_empty(),
            "{answer}"
        );
        if answer["unprocessed"] == 0 {
            assert_eq!(answer["remaining"], 0);
            break;
        }
        assert!(calls < 10, "{answer}");
    }
    assert!(calls > 1, "the budget never split the replay");
    assert_eq!(points(&router).await, 50);
}
