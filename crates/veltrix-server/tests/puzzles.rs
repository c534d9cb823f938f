//! The hunt-progress route serves each player's own generated puzzle (issue
//! 4): the text of their instance for the active stage, never its answer;
//! only that player's answer solves the stage.
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_core::puzzles::puzzle_instance;
use veltrix_server::{Server, ServerOptions};

fn plan() -> Arc<Plan> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass/veltrix.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config =
        veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", text)]).unwrap();
    Arc::new(Plan::with_secret(
        Arc::new(config),
        Arc::from(&b"test-secret"[..]),
    ))
}

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<String>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/x-ndjson")
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn events(player: &str, cipher_answer: &str) -> String {
    let e = |id: &str, minute: u32, kind: &str, data: Value| {
        json!({"id": format!("{player}-{id}"), "player": player, "type": kind,
               "ts": format!("2026-12-02T10:{minute:02}:00Z"), "data": data})
        .to_string()
    };
    [
        e("v", 0, "location_visited", json!({"place": "harbor"})),
        e(
            "r",
            1,
            "answer",
            json!({"hunt": "golden_compass", "stage": "riddle", "answer": "keyboard"}),
        ),
        e("m", 2, "item_found", json!({"item": "map"})),
        e("k", 3, "item_found", json!({"item": "key"})),
        e("l", 4, "item_found", json!({"item": "lantern"})),
        e(
            "c",
            5,
            "answer",
            json!({"hunt": "golden_compass", "stage": "cipher", "answer": cipher_answer}),
        ),
    ]
    .join("\n")
}

#[tokio::test]
async fn hunt_progress_serves_the_players_own_puzzle_and_only_their_answer_solves_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let server = Server::open(plan.clone(), ServerOptions::new(dir.path())).unwrap();
    let router = server.router();
    let hunt = plan.config.hunt("golden_compass").unwrap();
    let alice = puzzle_instance(&plan, hunt, 3, "alice").unwrap().unwrap();
    // A second player whose word differs from alice's.
    let (bob_name, bob) = (0..50)
        .map(|i| format!("friend{i}"))
        .map(|name| {
            let instance = puzzle_instance(&plan, hunt, 3, &name).unwrap().unwrap();
            (name, instance)
        })
        .find(|(_, i)| i.answer != alice.answer)
        .unwrap();

    // Everything but the cipher; bob tries alice's answer for his cipher.
    let (status, _) = call(
        &router,
        "POST",
        "/v1/events",
        Some(events("alice", "not it")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, progress) = call(
        &router,
        "GET",
        "/v1/players/alice/hunts/golden_compass",
        None,
    )
    .await;
    assert_eq!(progress["solved"], json!(["harbor", "riddle", "relics"]));
    let active = &progress["active"][0];
    assert_eq!(active["id"], "cipher");
    assert_eq!(
        active["clue"],
        "The last word is hidden in a shifted alphabet."
    );
    assert_eq!(active["puzzle"]["kind"], "caesar");
    assert_eq!(active["puzzle"]["text"], json!(alice.text));
    assert!(
        !progress
            .to_string()
            .contains(&format!("\"{}\"", alice.answer))
    );

    call(
        &router,
        "POST",
        "/v1/events",
        Some(events(&bob_name, &alice.answer)),
    )
    .await;
    let uri = format!("/v1/players/{bob_name}/hunts/golden_compass");
    let (_, bob_progress) = call(&router, "GET", &uri, None).await;
    assert_eq!(
        bob_progress["active"][0]["id"], "cipher",
        "a friend's answer must not solve the stage"
    );
    assert_eq!(bob_progress["active"][0]["puzzle"]["text"], json!(bob.text));

    let answer = json!({"id": "alice-c2", "player": "alice", "type": "answer", "ts": "2026-12-02T10:06:00Z",
                        "data": {"hunt": "golden_compass", "stage": "cipher", "answer": alice.answer.to_uppercase()}});
    call(&router, "POST", "/v1/events", Some(answer.to_string())).await;
    let (_, done) = call(
        &router,
        "GET",
        "/v1/players/alice/hunts/golden_compass",
        None,
    )
    .await;
    assert_eq!(done["completed"], true);
    assert_eq!(done["active"], json!([]));
    drop(router);
    server.shutdown();
}
