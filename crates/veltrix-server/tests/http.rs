//! The HTTP API as a client sees it, in process: `tower::ServiceExt::oneshot`
//! on the router, a temporary data directory per test, the example
//! configuration of `examples/golden-compass`.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_server::{Server, ServerOptions};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass")
}

fn plan() -> Arc<Plan> {
    let path = example_dir().join("veltrix.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = veltrix_config::compile(&[veltrix_config::Source::new(
        path.display().to_string(),
        text,
    )])
    .expect("the example configuration is valid");
    Arc::new(Plan::new(Arc::new(config)))
}

fn example_events() -> Vec<u8> {
    std::fs::read(example_dir().join("events.ndjson")).unwrap()
}

fn open(dir: &Path) -> Server {
    open_with(ServerOptions::new(dir))
}

fn open_with(mut options: ServerOptions) -> Server {
    options.partitions = 2;
    Server::open(plan(), options).expect("server opens")
}

struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn call(router: &Router, method: &str, uri: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some((content_type, bytes)) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        })
    };
    Reply {
        status,
        retry_after,
        body,
    }
}

async fn get_text(router: &Router, uri: &str) -> String {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn get(router: &Router, uri: &str) -> Reply {
    call(router, "GET", uri, None).await
}

async fn post_json(router: &Router, uri: &str, body: Value) -> Reply {
    call(
        router,
        "POST",
        uri,
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

async fn post_ndjson(router: &Router, body: &[u8]) -> Reply {
    call(
        router,
        "POST",
        "/v1/events",
        Some(("application/x-ndjson", body.to_vec())),
    )
    .await
}

fn login(id: &str, player: &str, ts: &str) -> Value {
    json!({"id": id, "player": player, "type": "login", "ts": ts})
}

/// Blocks the engine thread inside a read command until the returned
/// sender sends; returns once the thread is held.
fn hold_engine_thread(server: &Server) -> std::sync::mpsc::Sender<()> {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    server
        .handle()
        .send(veltrix_server::Command::Read(Box::new(move |_| {
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })))
        .unwrap();
    entered_rx.recv().unwrap();
    release_tx
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    assert!(reply.body["error"]["message"].is_string(), "{}", reply.body);
}

#[tokio::test]
async fn ingest_single_array_and_ndjson_with_a_malformed_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();

    let reply = post_json(
        &router,
        "/v1/events",
        login("e1", "ann", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"accepted": 1, "duplicates": 0, "rejected": []})
    );

    let reply = post_json(
        &router,
        "/v1/events",
        json!([
            login("e2", "ann", "2026-12-02T09:00:00Z"),
            login("e3", "bob", "2026-12-02T09:00:00Z")
        ]),
    )
    .await;
    assert_eq!(
        reply.body,
        json!({"accepted": 2, "duplicates": 0, "rejected": []})
    );

    let ndjson = b"{\"id\":\"e4\",\"player\":\"cat\",\"type\":\"login\",\"ts\":1764579600000}\n{\"id\":\"e5\",\"player\":\n\n{\"id\":\"e6\",\"player\":\"cat\",\"type\":\"login\",\"ts\":1764666000000}\n";
    let reply = post_ndjson(&router, ndjson).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["accepted"], 2);
    let rejected = reply.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{}", reply.body);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["line"], 2);
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{}",
        reply.body
    );

    let state = get(&router, "/v1/state").await;
    assert_eq!(
        state.body["events"],
        json!({"accepted": 5, "duplicates": 0, "rejected": 1})
    );
    assert_eq!(state.body["players"]["ann"]["points"], 10);
}

#[tokio::test]
async fn duplicates_and_validation_errors_name_index_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let batch = json!([
        login("e1", "ann", "2026-12-01T09:00:00Z"),
        login("e1", "ann", "2026-12-01T09:00:00Z"),
        {"id": "p1", "player": "ann", "type": "purchase", "ts": 1, "data": {"amount": "ten"}},
        {"id": "p2", "player": "ann", "type": "purchse", "ts": 1, "data": {"amount": 5}},
    ]);
    let reply = post_json(&router, "/v1/events", batch.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["accepted"], 1);
    assert_eq!(reply.body["duplicates"], 1);
    let rejected = reply.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 2);
    assert_eq!(rejected[0]["id"], "p1");
    assert_eq!(
        rejected[0]["error"],
        "data.amount: expected a number >= 0, got \"ten\""
    );
    assert_eq!(rejected[1]["index"], 3);
    assert!(
        rejected[1]["error"]
            .as_str()
            .unwrap()
            .contains("did you mean \"purchase\"?"),
        "{}",
        reply.body
    );

    // The whole batch again: the accepted id is a duplicate; the rejected
    // ones did not use up their ids and are rejected again.
    let reply = post_json(&router, "/v1/events", batch).await;
    assert_eq!(reply.body["accepted"], 0);
    assert_eq!(reply.body["duplicates"], 2);

    let dead = get(&router, "/v1/deadletters").await;
    assert_eq!(dead.body["total"], 4);
    assert_eq!(dead.body["rejected"][0]["id"], "p1");
}

#[tokio::test]
async fn malformed_bodies_are_400_and_oversized_bodies_413() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    options.body_limit = 1024;
    let server = open_with(options);
    let router = server.router();

    let reply = call(
        &router,
        "POST",
        "/v1/events",
        Some(("application/json", b"[{\"id\":".to_vec())),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "malformed_json");
    let reply = call(
        &router,
        "POST",
        "/v1/events",
        Some(("application/json", b"  ".to_vec())),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "empty_body");

    let big: Vec<Value> = (0..100)
        .map(|i| login(&format!("e{i}"), "ann", "2026-12-01T09:00:00Z"))
        .collect();
    let reply = post_json(&router, "/v1/events", json!(big)).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_eq!(reply.body["error"]["details"]["limit_bytes"], 1024);

    let reply = get(&router, "/v1/nope").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "no_route");
}

/// The server's state dump is exactly what `veltrix run` computes over the
/// same events (every accepted example event has a `ts`, so the acceptance
/// time does not matter).
#[tokio::test]
async fn state_dump_equals_the_offline_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let events = example_events();
    let reply = post_ndjson(&router, &events).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let (ingest, engine) = veltrix_core::run_ndjson(plan(), &events, 0, 1);
    let offline = veltrix_core::dump::dump(&veltrix_core::dump::DumpSource::from_engine(
        &ingest, &engine,
    ));
    let offline: Value = serde_json::to_value(&offline).unwrap();
    let state = get(&router, "/v1/state").await;
    assert_eq!(state.status, StatusCode::OK);
    assert_eq!(state.body, offline);
    assert!(offline["grants"].as_array().unwrap().len() > 5);
}

#[tokio::test]
async fn restart_rebuilds_the_same_state_and_keeps_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let events = example_events();
    let before = {
        let server = open(dir.path());
        let router = server.router();
        let reply = post_ndjson(&router, &events).await;
        assert_eq!(reply.status, StatusCode::OK);
        let spend = post_json(
            &router,
            "/v1/players/alice/spend",
            json!({"currency": "coins", "amount": 1, "key": "k1"}),
        )
        .await;
        assert_eq!(spend.status, StatusCode::OK, "{}", spend.body);
        get(&router, "/v1/state").await.body
    };
    let server = open(dir.path());
    assert!(server.recovery.records > 0);
    let router = server.router();
    let after = get(&router, "/v1/state").await.body;
    assert_eq!(after, before);

    let reply = post_ndjson(&router, &events).await;
    assert_eq!(reply.body["accepted"], 0, "{}", reply.body);
    let state = get(&router, "/v1/state").await.body;
    // Every event accepted before the restart is now a duplicate (and so is
    // an invalid copy of an accepted id).
    let retried_duplicates = reply.body["duplicates"].as_u64().unwrap();
    assert!(retried_duplicates >= before["events"]["accepted"].as_u64().unwrap());
    assert_eq!(
        state["events"]["duplicates"].as_u64().unwrap(),
        before["events"]["duplicates"].as_u64().unwrap() + retried_duplicates
    );
    assert_eq!(state["players"], before["players"]);
}

#[tokio::test]
async fn spend_is_409_when_short_and_idempotent_by_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = open(dir.path());
        let router = server.router();
        // first_login pays 1 coin.
        post_json(
            &router,
            "/v1/events",
            login("e1", "ann", "2026-12-01T09:00:00Z"),
        )
        .await;
        let short = post_json(
            &router,
            "/v1/players/ann/spend",
            json!({"currency": "coins", "amount": 2, "key": "k1"}),
        )
        .await;
        assert_error(&short, StatusCode::CONFLICT, "insufficient_balance");
        assert_eq!(short.body["error"]["details"]["balance"], 1);

        let spent = post_json(
            &router,
            "/v1/players/ann/spend",
            json!({"currency": "coins", "amount": 1, "key": "k1"}),
        )
        .await;
        assert_eq!(spent.status, StatusCode::OK, "{}", spent.body);
        assert_eq!(spent.body["applied"], true);
        assert_eq!(spent.body["balance"], 0);
        assert_eq!(spent.body["spend"]["amount"], 1);
        let unit = spent.body["spend"]["units"][0]["from"].as_str().unwrap();
        assert!(unit.ends_with("/1"), "{unit}");

        let again = post_json(
            &router,
            "/v1/players/ann/spend",
            json!({"currency": "coins", "amount": 1, "key": "k1"}),
        )
        .await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["applied"], false);
        assert_eq!(again.body["spend"], spent.body["spend"]);

        let bad = post_json(
            &router,
            "/v1/players/ann/spend",
            json!({"currency": "coin", "amount": 1, "key": "k2"}),
        )
        .await;
        assert_error(&bad, StatusCode::BAD_REQUEST, "unknown_currency");
        assert!(
            bad.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("did you mean \"coins\"?")
        );
        let bad = post_json(
            &router,
            "/v1/players/ann/spend",
            json!({"currency": "coins", "amount": 0, "key": "k2"}),
        )
        .await;
        assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_amount");
        let bad = post_json(
            &router,
            "/v1/players/ann/spend",
            json!({"currency": "coins"}),
        )
        .await;
        assert_error(&bad, StatusCode::BAD_REQUEST, "malformed_json");
        let nobody = post_json(
            &router,
            "/v1/players/nobody/spend",
            json!({"currency": "coins", "amount": 1, "key": "k1"}),
        )
        .await;
        assert_error(&nobody, StatusCode::NOT_FOUND, "unknown_player");
    }
    let server = open(dir.path());
    let router = server.router();
    let again = post_json(
        &router,
        "/v1/players/ann/spend",
        json!({"currency": "coins", "amount": 1, "key": "k1"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["applied"], false);
    let ledger = get(&router, "/v1/players/ann/ledger").await;
    let entries = ledger.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", ledger.body);
    assert_eq!(entries[0]["kind"], "grant");
    assert_eq!(entries[0]["events"], json!(["e1"]));
    assert_eq!(entries[1]["kind"], "spend");
    assert_eq!(entries[1]["key"], "k1");
    // The nobody spend did not create a player.
    let state = get(&router, "/v1/state").await;
    assert!(state.body["players"].get("nobody").is_none());
}

#[tokio::test]
async fn leaderboards_page_and_around() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    // first_login gives 10 points; five players in order.
    let batch: Vec<Value> = (0..5)
        .map(|i| login(&format!("e{i}"), &format!("p{i}"), "2026-12-01T09:00:00Z"))
        .collect();
    post_json(&router, "/v1/events", json!(batch)).await;

    let page = get(&router, "/v1/leaderboards/global?offset=1&limit=2").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["total"], 5);
    assert_eq!(
        page.body["rows"],
        json!([{"rank": 2, "player": "p1", "score": 10}, {"rank": 3, "player": "p2", "score": 10}])
    );
    let all = get(&router, "/v1/leaderboards/global").await;
    assert_eq!(all.body["rows"].as_array().unwrap().len(), 5);

    let around = get(&router, "/v1/leaderboards/global/players/p2?around=1").await;
    assert_eq!(around.status, StatusCode::OK, "{}", around.body);
    assert_eq!(around.body["player"]["rank"], 3);
    let players: Vec<&str> = around.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["player"].as_str().unwrap())
        .collect();
    assert_eq!(players, ["p1", "p2", "p3"]);

    let bad = get(&router, "/v1/leaderboards/global?limit=5000").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_query");
    let missing = get(&router, "/v1/leaderboards/global/players/zed").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_ranked");
}

#[tokio::test]
async fn hunt_progress_shows_the_active_clue_and_funnel() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    post_json(
        &router,
        "/v1/events",
        json!({"id": "v1", "player": "ann", "type": "location_visited",
               "ts": "2026-12-01T09:05:00Z", "data": {"place": "harbor"}}),
    )
    .await;
    let progress = get(&router, "/v1/players/ann/hunts/golden_compass").await;
    assert_eq!(progress.status, StatusCode::OK, "{}", progress.body);
    assert_eq!(progress.body["solved"], json!(["harbor"]));
    assert_eq!(progress.body["active"][0]["id"], "riddle");
    assert_eq!(
        progress.body["active"][0]["clue"],
        "I have keys but open no locks. What am I?"
    );

    let funnel = get(&router, "/v1/hunts/golden_compass").await;
    assert_eq!(funnel.body["started"], 1);
    assert_eq!(
        funnel.body["stages"][0],
        json!({"id": "harbor", "solved": 1})
    );
    assert_eq!(funnel.body["prizes_left"], 2);

    let player = get(&router, "/v1/players/ann").await;
    assert_eq!(player.body["points"], 100);
    assert_eq!(player.body["player"], "ann");
}

#[tokio::test]
async fn unknown_names_are_404_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let reply = get(&router, "/v1/hunts/golden_compas").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "unknown_hunt");
    assert_eq!(
        reply.body["error"]["details"]["suggestion"],
        "did you mean \"golden_compass\"?"
    );
    let reply = get(&router, "/v1/leaderboards/globl").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "unknown_leaderboard");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"global\"?")
    );
    let reply = get(&router, "/v1/players/ann/hunts/sky_light").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "unknown_hunt");
    let reply = get(&router, "/v1/players/nobody").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "unknown_player");
    let reply = get(&router, "/v1/players/nobody/ledger").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "unknown_player");
}

#[tokio::test]
async fn a_full_engine_queue_is_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    options.queue_capacity = 1;
    let server = open_with(options);
    let router = server.router();

    // Block the engine thread inside a read, then fill the one queue slot.
    let release_tx = hold_engine_thread(&server);
    server
        .handle()
        .send(veltrix_server::Command::Read(Box::new(|_| {})))
        .unwrap();

    let reply = post_json(
        &router,
        "/v1/events",
        login("e1", "ann", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, "overloaded");
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    let ready = get(&router, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    // Health does not go through the engine.
    assert_eq!(get(&router, "/healthz").await.status, StatusCode::OK);

    release_tx.send(()).unwrap();
    let reply = post_json(
        &router,
        "/v1/events",
        login("e1", "ann", "2026-12-01T09:00:00Z"),
    )
    .await;
    // The queue may still hold the filler read for a moment.
    if reply.status == StatusCode::OK {
        assert_eq!(reply.body["accepted"], 1);
    } else {
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn a_failed_fsync_is_503_and_not_ready_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let storage = veltrix_log::SimStorage::new();
    let mut options = ServerOptions::new(dir.path());
    options.storage = Some(Arc::new(storage.clone()));
    let server = open_with(options);
    let router = server.router();
    assert_eq!(get(&router, "/readyz").await.status, StatusCode::OK);
    let ok = post_json(
        &router,
        "/v1/events",
        login("e1", "ann", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);

    storage.fail_next_syncs(1);
    let failed = post_json(
        &router,
        "/v1/events",
        login("e2", "bob", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_error(&failed, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let later = post_json(
        &router,
        "/v1/events",
        login("e3", "cat", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_error(&later, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        get(&router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// A full disk refuses writes with 507 and a message that says so; reads go
/// on; once space returns the server reopens the log by itself, keeps
/// every acknowledged event, and takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_507_until_space_returns_then_writes_resume() {
    let dir = tempfile::tempdir().unwrap();
    let storage = veltrix_log::SimStorage::new();
    let mut options = ServerOptions::new(dir.path());
    options.storage = Some(Arc::new(storage.clone()));
    let server = open_with(options.clone());
    let router = server.router();
    let ok = post_json(
        &router,
        "/v1/events",
        login("e1", "ann", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    storage.set_space_left(Some(10));
    let full = post_json(
        &router,
        "/v1/events",
        login("e2", "bob", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_error(
        &full,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    let message = full.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("full"), "{message}");
    let again = post_json(
        &router,
        "/v1/events",
        login("e3", "cat", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_error(
        &again,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    let spend = post_json(
        &router,
        "/v1/players/ann/spend",
        json!({"currency": "coins", "amount": 1, "key": "k1"}),
    )
    .await;
    assert_error(
        &spend,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    assert_eq!(
        get(&router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&router, "/v1/players/ann").await.status, StatusCode::OK);
    // Still full a recovery interval later.
    tokio::time::sleep(veltrix_server::engine::RECOVERY_INTERVAL * 2).await;
    assert_eq!(
        get(&router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    storage.set_space_left(None);
    let mut ready = false;
    for _ in 0..100 {
        if get(&router, "/readyz").await.status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not resume after space returned");
    let resumed = post_json(
        &router,
        "/v1/events",
        login("e2", "bob", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    assert_eq!(
        resumed.body["accepted"], 1,
        "the refused event was not kept: {}",
        resumed.body
    );
    let metrics = get_text(&router, "/metrics").await;
    assert!(
        metrics.contains("veltrix_log_recoveries_total 1"),
        "{metrics}"
    );
    let state = get(&router, "/v1/state").await.body;
    drop(router);
    drop(server);

    // A restart on the same storage sees the same state.
    let reopened = open_with(options);
    let after = get(&reopened.router(), "/v1/state").await.body;
    assert_eq!(after, state);
    assert_eq!(after["events"]["accepted"], 2, "{after}");
}

/// Bodies in flight are bounded: while eight bodies of unknown size (each
/// reserving the body limit) are still arriving, a ninth request is refused
/// with 429 before its body is read; a body larger than the limit is 413
/// before it is read. Room returns when the slow requests end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_in_flight_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let limit = veltrix_server::DEFAULT_BODY_LIMIT;
    let stalled_request = || {
        // A body of unknown size that never arrives: the request holds its
        // reservation (the body limit).
        let body = Body::from_stream(futures_util::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >());
        Request::builder()
            .method("POST")
            .uri("/v1/events")
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .unwrap()
    };
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let router = router.clone();
        let request = stalled_request();
        stalled.push(tokio::spawn(async move { router.oneshot(request).await }));
    }
    // Let the eight reserve their room.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let refused = router.clone().oneshot(stalled_request()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));

    let oversized = Request::builder()
        .method("POST")
        .uri("/v1/events")
        .body(Body::from(vec![b' '; limit + 1]))
        .unwrap();
    let response = router.clone().oneshot(oversized).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    for task in &stalled {
        task.abort();
    }
    for task in stalled {
        let _ = task.await;
    }
    let ok = post_json(
        &router,
        "/v1/events",
        login("e1", "ann", "2026-12-01T09:00:00Z"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn config_health_and_serving_on_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let config = get(&router, "/v1/config").await;
    assert_eq!(config.body["version"], plan().config.version.as_str());
    assert_eq!(get(&router, "/healthz").await.body["status"], "ok");
    drop(router);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(veltrix_server::run(listener, server, async {
        let _ = stop_rx.await;
    }));
    stop_tx.send(()).unwrap();
    running.await.unwrap().unwrap();
    // The log is closed: the data directory can be opened again.
    let _again = open(dir.path());
}

#[test]
fn only_loopback_addresses_are_accepted_without_api_keys() {
    assert!(veltrix_server::check_loopback("127.0.0.1:7400").is_ok());
    assert!(veltrix_server::check_loopback("[::1]:7400").is_ok());
    let err = veltrix_server::check_loopback("0.0.0.0:7400").unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    assert!(veltrix_server::check_loopback("not an address").is_err());
}

#[tokio::test]
async fn metrics_count_ingest_grants_and_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    post_json(
        &router,
        "/v1/events",
        json!([
            login("e1", "ann", "2026-12-01T09:00:00Z"),
            login("e1", "ann", "2026-12-01T09:00:00Z"),
            {"id": "bad", "player": "ann", "type": "nope"}
        ]),
    )
    .await;
    let text = get_text(&router, "/metrics").await;
    for line in [
        "veltrix_events_accepted_total 1",
        "veltrix_events_duplicate_total 1",
        "veltrix_events_rejected_total 1",
        "veltrix_events_rejected_by_reason_total{reason=\"unknown_event_type\"} 1",
        "veltrix_grants_total{source=\"rule:first_login\"} 1",
        "veltrix_log_fsync_seconds_count",
        "veltrix_ingest_request_seconds_count 1",
        "veltrix_log_last_seq 3", // the configuration version record, the event, the tally
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// The processing lag in events counts the events of the ingest requests
/// waiting for the engine thread; the live stream's clients are counted
/// while connected.
#[tokio::test]
async fn metrics_show_queued_events_and_stream_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let metric = |text: &str, name: &str| -> i64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line[name.len() + 1..].parse().unwrap()
    };

    // Hold the engine thread inside a read while a request of 3 events waits.
    let release_tx = hold_engine_thread(&server);
    let waiting = tokio::spawn({
        let router = router.clone();
        async move {
            post_json(
                &router,
                "/v1/events",
                json!([
                    login("e1", "ann", "2026-12-01T09:00:00Z"),
                    login("e2", "bob", "2026-12-01T09:00:00Z"),
                    login("e3", "cy", "2026-12-01T09:00:00Z"),
                ]),
            )
            .await
        }
    });
    let mut queued = 0;
    for _ in 0..500 {
        queued = metric(
            &get_text(&router, "/metrics").await,
            "veltrix_engine_queue_events",
        );
        if queued == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(queued, 3, "the waiting request's events");
    release_tx.send(()).unwrap();
    assert_eq!(waiting.await.unwrap().body["accepted"], 3);
    let text = get_text(&router, "/metrics").await;
    assert_eq!(metric(&text, "veltrix_engine_queue_events"), 0);
    assert_eq!(metric(&text, "veltrix_stream_clients"), 0);

    let stream = router
        .clone()
        .oneshot(Request::get("/v1/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let text = get_text(&router, "/metrics").await;
    assert_eq!(metric(&text, "veltrix_stream_clients"), 1);
    drop(stream);
    let text = get_text(&router, "/metrics").await;
    assert_eq!(metric(&text, "veltrix_stream_clients"), 0);
}

/// Reads are timed (a 404 is a read too); writes, health checks and the
/// metrics page are not.
#[tokio::test]
async fn metrics_time_reads_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    post_json(
        &router,
        "/v1/events",
        json!([login("e1", "ann", "2026-12-01T09:00:00Z")]),
    )
    .await;
    get(&router, "/v1/players/ann").await;
    get(&router, "/v1/players/nobody").await;
    get(&router, "/healthz").await;
    get_text(&router, "/metrics").await;
    let text = get_text(&router, "/metrics").await;
    assert!(
        text.contains("veltrix_read_request_seconds_count 2"),
        "two reads timed in\n{text}"
    );
}

#[tokio::test]
async fn framework_rejections_use_the_error_shape_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let reply = call(&router, "DELETE", "/v1/events", None).await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let reply = get(&router, "/v1/players/%FF").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn too_many_events_and_non_object_elements() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    options.max_events_per_request = 2;
    let server = open_with(options);
    let router = server.router();
    let reply = post_json(&router, "/v1/events", json!([1, 2, 3])).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "too_many_events");
    let reply = post_json(
        &router,
        "/v1/events",
        json!([login("e1", "ann", "2026-12-01T09:00:00Z"), "nope"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["accepted"], 1);
    assert_eq!(reply.body["rejected"][0]["index"], 1);
}

#[tokio::test]
async fn a_record_that_no_longer_fits_the_configuration_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = open(dir.path());
        let router = server.router();
        let reply = post_json(
            &router,
            "/v1/events",
            json!({"id": "p1", "player": "ann", "type": "purchase", "ts": 1, "data": {"amount": 5}}),
        )
        .await;
        assert_eq!(reply.body["accepted"], 1);
    }
    let text = "[events.login]\n[rules.first_login]\non = \"login\"\nreward = { points = 1 }\n";
    let config =
        veltrix_config::compile(&[veltrix_config::Source::new("small.toml", text)]).expect("valid");
    let plan = Arc::new(Plan::new(Arc::new(config)));
    let error = Server::open(plan, ServerOptions::new(dir.path()))
        .err()
        .expect("start-up fails");
    let message = error.to_string();
    // seq 1 is the configuration version record; the purchase is seq 2.
    assert!(message.contains("seq 2"), "{message}");
    assert!(message.contains("\"purchase\""), "{message}");
}

/// Many clients at once: every request is acknowledged, seqs stay aligned
/// with the log (group commit shares fsyncs), and a restart replays to the
/// same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_then_restart_give_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let server = open(dir.path());
        let router = server.router();
        let mut tasks = Vec::new();
        for client in 0..8 {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                for request in 0..10 {
                    let batch: Vec<Value> = (0..5)
                        .map(|i| {
                            json!({
                                "id": format!("c{client}-r{request}-{i}"),
                                "player": format!("p{}", (client * 7 + request + i) % 13),
                                "type": "purchase",
                                "ts": 1_764_579_600_000i64 + (request * 5 + i) as i64 * 60_000,
                                "data": {"amount": 10 * (i + 1)}
                            })
                        })
                        .collect();
                    let reply = post_json(&router, "/v1/events", json!(batch)).await;
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                    assert_eq!(reply.body["accepted"], 5);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let state = get(&router, "/v1/state").await.body;
        assert_eq!(state["events"]["accepted"], 400);
        state
    };
    let server = open(dir.path());
    let after = get(&server.router(), "/v1/state").await.body;
    assert_eq!(after, before);
}

/// The log's own queue holds one append and every fsync is slow: the engine
/// thread must wait for room instead of having an append refused after it
/// applied the records (which would fail the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_queue_slows_the_engine_down_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = veltrix_log::SimStorage::new();
    storage.set_sync_delay(std::time::Duration::from_millis(5));
    let mut options = ServerOptions::new(dir.path());
    options.storage = Some(Arc::new(storage));
    options.log.queue_capacity = 1;
    let server = open_with(options);
    let router = server.router();
    let mut tasks = Vec::new();
    for client in 0..6 {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            for request in 0..4 {
                let id = format!("c{client}-r{request}");
                let reply = post_json(
                    &router,
                    "/v1/events",
                    login(&id, &format!("p{client}"), "2026-12-01T09:00:00Z"),
                )
                .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(get(&router, "/readyz").await.status, StatusCode::OK);
    let state = get(&router, "/v1/state").await.body;
    assert_eq!(state["events"]["accepted"], 24);
}

#[tokio::test]
async fn views_filter_by_time_and_dimension_and_explain_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    assert_eq!(
        post_ndjson(&router, &example_events()).await.status,
        StatusCode::OK
    );

    let all = get(&router, "/v1/views/purchases_by_currency").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["view"], "purchases_by_currency");
    assert_eq!(all.body["bucket_ms"], 60_000);
    let rows = all.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{}", all.body);
    assert_eq!(
        rows[0],
        json!({"bucket": "2026-12-01T11:00:00Z", "dimensions": {"data.currency": "coins"},
               "measures": {"count": 1, "sum(data.amount)": 60.0, "max(data.amount)": 60.0}})
    );
    // A purchase without a currency is grouped under null.
    assert_eq!(rows[1]["dimensions"]["data.currency"], Value::Null);

    let coins = get(
        &router,
        "/v1/views/purchases_by_currency?data.currency=coins",
    )
    .await;
    assert_eq!(
        coins.body["rows"].as_array().unwrap().len(),
        1,
        "{}",
        coins.body
    );

    // from is rounded down to its bucket; to is exclusive. RFC 3339 and ms.
    let ranged = get(
        &router,
        "/v1/views/purchases_by_currency?from=2026-12-01T11:10:30Z&to=2026-12-01T11:30:00Z",
    )
    .await;
    let buckets: Vec<&str> = ranged.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(buckets, ["2026-12-01T11:10:00Z", "2026-12-01T11:20:00Z"]);
    let ms = "2026-12-01T11:20:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let ranged = get(
        &router,
        &format!("/v1/views/purchases_by_currency?from={ms}&data.currency=gems"),
    )
    .await;
    assert_eq!(
        ranged.body["rows"].as_array().unwrap().len(),
        1,
        "{}",
        ranged.body
    );

    let unknown = get(&router, "/v1/views/purchases_by_curency").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "unknown_view");
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("purchases_by_currency"),
        "{}",
        unknown.body
    );
    let misspelt = get(&router, "/v1/views/purchases_by_currency?currency=coins").await;
    assert_error(&misspelt, StatusCode::BAD_REQUEST, "invalid_query");
    assert!(
        misspelt.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data.currency"),
        "{}",
        misspelt.body
    );
    let bad_time = get(&router, "/v1/views/purchases_by_currency?from=yesterday").await;
    assert_error(&bad_time, StatusCode::BAD_REQUEST, "invalid_query");
}

/// Reads SSE frames from `body` until `done` holds for the text so far (or
/// 10 s pass).
async fn read_sse(body: &mut Body, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done(&text) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("timed out; got so far:\n{text}"))
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

/// The SSE events in `text` as (event, data JSON) pairs.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let blocks: Vec<&str> = text.split("\n\n").collect();
    // The last piece is what follows the last complete event.
    blocks[..blocks.len() - 1]
        .iter()
        .filter_map(|block| {
            let mut kind = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = Some(k.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            Some((kind?, data?))
        })
        .collect()
}

#[tokio::test]
async fn the_stream_shows_grants_solves_completions_and_leaderboard_moves() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let response = router
        .clone()
        .oneshot(Request::get("/v1/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body();
    assert_eq!(
        post_ndjson(&router, &example_events()).await.status,
        StatusCode::OK
    );
    let text = read_sse(&mut body, |t| {
        t.contains("event: stage_solved")
            && t.contains("event: leaderboard")
            && t.contains("event: hunt_completed")
    })
    .await;
    let events = sse_events(&text);
    let (kind, first) = &events[0];
    assert_eq!(kind, "grant", "{text}");
    assert_eq!(first["source"], "rule:first_login", "{text}");
    assert!(first["seq"].is_u64() && first["id"].is_string(), "{text}");
    let board = events
        .iter()
        .find(|(k, _)| k == "leaderboard")
        .map(|(_, d)| d)
        .unwrap();
    assert!(
        board["leaderboard"].is_string() && board["rank"].is_u64(),
        "{board}"
    );
    let solved = events
        .iter()
        .find(|(k, _)| k == "stage_solved")
        .map(|(_, d)| d)
        .unwrap();
    assert_eq!(solved["hunt"], "golden_compass", "{solved}");
    assert!(solved["stage"].is_string() && solved["player"].is_string());
    let completed = events
        .iter()
        .find(|(k, _)| k == "hunt_completed")
        .map(|(_, d)| d)
        .unwrap();
    assert_eq!(completed["hunt"], "sky_lights", "{completed}");
    // Every grant the state shows was streamed, in log order.
    let state = get(&router, "/v1/state").await.body;
    let grant_ids: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "grant")
        .map(|(_, d)| &d["id"])
        .collect();
    let state_ids: Vec<&Value> = state["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["id"])
        .take(grant_ids.len())
        .collect();
    assert_eq!(grant_ids, state_ids);

    // Shutting down ends the stream instead of hanging.
    server.close_streams();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end at shutdown");
}

#[tokio::test]
async fn a_lagging_stream_client_is_told_and_never_slows_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let response = router
        .clone()
        .oneshot(Request::get("/v1/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    // Far more messages than the channel holds, while the client reads
    // nothing: ingest is not held up.
    let mut lines = String::new();
    for i in 0..6000 {
        lines.push_str(&format!(
            "{{\"id\":\"lag{i}\",\"player\":\"p{i}\",\"type\":\"login\",\"ts\":\"2026-12-01T09:00:00Z\"}}\n"
        ));
    }
    let reply = post_ndjson(&router, lines.as_bytes()).await;
    assert_eq!(reply.body["accepted"], 6000, "{}", reply.body);
    let text = read_sse(&mut body, |t| t.contains("event: lagged")).await;
    let lagged = sse_events(&text)
        .into_iter()
        .find(|(k, _)| k == "lagged")
        .unwrap()
        .1;
    assert!(lagged["missed"].as_u64().unwrap() > 0, "{lagged}");
}

#[tokio::test]
async fn a_graceful_shutdown_ends_open_streams_on_a_real_socket() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(veltrix_server::run(listener, server, async {
        let _ = stop_rx.await;
    }));
    // A blocking client on its own thread, kept open across the shutdown.
    let (client, head) = tokio::task::spawn_blocking(move || {
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .write_all(b"GET /v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        client.read_exact(&mut head).unwrap();
        (client, head)
    })
    .await
    .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("shutdown does not wait for stream clients")
        .unwrap()
        .unwrap();
    drop(client);
}

#[tokio::test]
async fn the_stream_filters_by_kind_and_player() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path());
    let router = server.router();
    let response = router
        .clone()
        .oneshot(
            Request::get("/v1/stream?kinds=stage_solved,hunt_completed&player=bob")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    post_ndjson(&router, &example_events()).await;
    // Bob solves at least two stages in the example.
    let text = read_sse(&mut body, |t| t.matches("event: stage_solved").count() >= 2).await;
    let events = sse_events(&text);
    assert!(!events.is_empty());
    for (kind, data) in &events {
        assert!(kind == "stage_solved" || kind == "hunt_completed", "{text}");
        assert_eq!(data["player"], "bob", "{text}");
    }

    let bad = get(&router, "/v1/stream?kinds=grnt").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_query");
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"grant\"?"),
        "{}",
        bad.body
    );
    let bad = get(&router, "/v1/stream?players=bob").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_query");
}
