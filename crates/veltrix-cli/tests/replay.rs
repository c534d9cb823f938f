//! `veltrix replay` and `veltrix verify` with the real binary on data
//! directories written by the server (in process, with the same
//! configuration file, so the configuration versions match).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_server::veltrix_log::{Log, LogOptions, SnapshotOptions, SnapshotStore};
use veltrix_server::{Server, ServerOptions};

fn example_events() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass/events.ndjson");
    std::fs::read(path).unwrap()
}

/// Copies the example configuration into `dir` and compiles it under the
/// same name the binary will give it (the version hashes the file name).
fn config_in(dir: &Path) -> (PathBuf, Arc<Plan>) {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass/veltrix.toml");
    let path = dir.join("veltrix.toml");
    std::fs::copy(source, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let config = veltrix_config::compile(&[veltrix_config::Source::new(
        path.display().to_string(),
        text,
    )])
    .unwrap();
    (path, Arc::new(Plan::new(Arc::new(config))))
}

fn options(data_dir: &Path, every: Option<u64>) -> ServerOptions {
    let mut options = ServerOptions::new(data_dir);
    options.snapshot_every = every;
    // Exactly every `every` records: these tests count snapshots.
    options.snapshot_pacing = 1;
    options
}

async fn post_ndjson(server: &Server, body: Vec<u8>) {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/events")
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn state(server: &Server) -> Value {
    let request = Request::builder()
        .uri("/v1/state")
        .body(Body::empty())
        .unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn logins(first: usize, count: usize) -> Vec<u8> {
    (first..first + count)
        .map(|i| {
            format!(
                "{{\"id\":\"l{i}\",\"player\":\"p{}\",\"type\":\"login\",\"ts\":{}}}\n",
                i % 7,
                1_796_083_200_000i64 + i as i64 * 3_600_000
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn veltrix(args: &[&str], config: &Path, data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veltrix"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("VELTRIX_PUZZLE_SECRET")
        .output()
        .expect("runs veltrix")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A data directory with a snapshot (taken at shutdown) and a log tail after
/// it; returns the state the server showed last.
async fn snapshot_and_tail(plan: &Arc<Plan>, data_dir: &Path) -> Value {
    {
        let server = Server::open(plan.clone(), options(data_dir, Some(1_000_000))).unwrap();
        post_ndjson(&server, example_events()).await;
        server.shutdown();
    }
    let server = Server::open(plan.clone(), options(data_dir, None)).unwrap();
    assert!(server.snapshot_seq.is_some());
    post_ndjson(&server, logins(0, 50)).await;
    state(&server).await
}

#[tokio::test]
async fn replay_writes_the_state_and_verify_says_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plan) = config_in(dir.path());
    let data_dir = dir.path().join("data");
    let live = snapshot_and_tail(&plan, &data_dir).await;

    let out = dir.path().join("state.json");
    let replay = veltrix(
        &["replay", "--out", out.to_str().unwrap()],
        &config,
        &data_dir,
    );
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stderr).contains("replayed"),
        "{}",
        text(&replay.stderr)
    );
    let replayed: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(replayed, live);

    let verify = veltrix(&["verify"], &config, &data_dir);
    let stdout = text(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{stdout}{}",
        text(&verify.stderr)
    );
    assert!(stdout.starts_with("ok: snapshot "), "{stdout}");
    assert!(stdout.contains("50 later records"), "{stdout}");
}

#[tokio::test]
async fn verify_prints_every_difference_as_a_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plan) = config_in(dir.path());
    let data_dir = dir.path().join("data");
    snapshot_and_tail(&plan, &data_dir).await;
    {
        // A snapshot at the end of the log that holds another state: the
        // example's events without the 50 logins, claiming to cover them.
        let (log, _) = Log::open(&data_dir, LogOptions::default()).unwrap();
        let last = log.last_seq();
        drop(log);
        let (ingest, engine) = veltrix_core::run_ndjson(plan.clone(), &example_events(), 0, 1);
        let store = SnapshotStore::open(&data_dir, SnapshotOptions::default()).unwrap();
        store
            .write(last, &veltrix_core::snapshot::encode(&ingest, &engine))
            .unwrap();
    }
    let verify = veltrix(&["verify"], &config, &data_dir);
    let stdout = text(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(1),
        "{stdout}{}",
        text(&verify.stderr)
    );
    let differences: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!differences.is_empty(), "{stdout}");
    assert!(
        differences
            .iter()
            .any(|d| d["path"] == "/state/events/accepted"),
        "{stdout}"
    );
    assert!(
        stdout.lines().last().unwrap().starts_with("differ: "),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_running_server_or_a_missing_directory_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plan) = config_in(dir.path());
    let data_dir = dir.path().join("data");
    let server = Server::open(plan, options(&data_dir, None)).unwrap();
    for command in ["replay", "verify"] {
        let output = veltrix(&[command], &config, &data_dir);
        assert_eq!(output.status.code(), Some(2));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("in use by a running Veltrix server"),
            "{stderr}"
        );
    }
    drop(server);

    let missing = dir.path().join("nothing-here");
    let output = veltrix(&["replay"], &config, &missing);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("holds no log"),
        "{}",
        text(&output.stderr)
    );
    assert!(!missing.exists(), "a missing data directory is not created");

    // A data directory without snapshots: verify has nothing to compare.
    let output = veltrix(&["verify"], &config, &data_dir);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("ok: nothing to compare"),
        "{}",
        text(&output.stdout)
    );
}
