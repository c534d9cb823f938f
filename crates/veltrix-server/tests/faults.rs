//! Start-up over a damaged data directory, as an operator sees it (issue 5):
//! the documented outcome for each fault — a torn tail cut with a log line;
//! start-up refused with a message naming the file and byte; a corrupt
//! latest snapshot skipped (logged) for the previous one; a newer snapshot
//! format refused — and in every case that starts, the state a client reads
//! is exactly the state it read before the fault: no acknowledged write is
//! lost without a refusal.
//!
//! The log crate's own tests (crates/veltrix-log/tests/faults.rs) cover
//! every byte and bit; these check the server wires those outcomes through.

mod common;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_log::{CrashMode, LogError, SimStorage, SnapshotOptions, SnapshotStore};
use veltrix_server::{Server, ServerError, ServerOptions};

// ---------------------------------------------------------------------------
// Captured log lines (one global subscriber for this test binary)
// ---------------------------------------------------------------------------

fn logs() -> String {
    common::global_logs(tracing::Level::INFO)
}

/// The captured lines that mention `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// A server on the example configuration
// ---------------------------------------------------------------------------

fn plan() -> Arc<Plan> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass/veltrix.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", text)])
        .expect("the example configuration is valid");
    Arc::new(Plan::new(Arc::new(config)))
}

fn options(dir: &Path, snapshot_every: Option<u64>, segment_bytes: u64) -> ServerOptions {
    let mut options = ServerOptions::new(dir);
    options.snapshot_every = snapshot_every;
    // Exactly every `snapshot_every` records: these tests count snapshots.
    options.snapshot_pacing = 1;
    options.log.segment_bytes = segment_bytes;
    options
}

fn open(options: ServerOptions) -> Result<Server, ServerError> {
    logs(); // the capture is in place before the server logs anything
    Server::open(plan(), options)
}

/// `count` events from `first` on, as NDJSON: logins, purchases (one in
/// three malformed, so dead letters exist too) and harbor visits.
fn events(first: usize, count: usize) -> Vec<u8> {
    let start = jiff::Timestamp::from_second(1_796_083_200).unwrap(); // 2026-12-01
    let mut out = String::new();
    for i in first..first + count {
        let player = format!("p{}", i % 40);
        let ts = start + jiff::SignedDuration::from_secs(i as i64 * 61);
        out.push_str(&match i % 4 {
            0 => format!(r#"{{"id":"e{i}","player":"{player}","type":"login","ts":"{ts}"}}"#),
            1 => format!(
                r#"{{"id":"e{i}","player":"{player}","type":"purchase","ts":"{ts}","data":{{"amount":{},"currency":"coins"}}}}"#,
                i % 70
            ),
            2 => format!(
                r#"{{"id":"e{i}","player":"{player}","type":"purchase","ts":"{ts}","data":{{"amount":"ten"}}}}"#
            ),
            _ => format!(
                r#"{{"id":"e{i}","player":"{player}","type":"location_visited","ts":"{ts}","data":{{"place":"harbor"}}}}"#
            ),
        });
        out.push('\n');
    }
    out.into_bytes()
}

async fn call(router: &Router, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Sends events in requests of 50; every request is acknowledged.
async fn feed(router: &Router, first: usize, count: usize) {
    for start in (first..first + count).step_by(50) {
        let n = 50.min(first + count - start);
        let (status, body) = call(router, "POST", "/v1/events", events(start, n)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// What a client reads: the state dump and the dead letters.
async fn observed(router: &Router) -> Value {
    let (status, state) = call(router, "GET", "/v1/state", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, dead) = call(router, "GET", "/v1/deadletters?limit=1000", Vec::new()).await;
    serde_json::json!({"state": state, "deadletters": dead})
}

/// Runs a server on a fresh directory, feeds `count` events, shuts it down
/// gracefully (a snapshot at shutdown when `snapshot_every` is set) and
/// returns what a client read last.
async fn populated(
    dir: &Path,
    snapshot_every: Option<u64>,
    segment_bytes: u64,
    count: usize,
) -> Value {
    let server = open(options(dir, snapshot_every, segment_bytes)).unwrap();
    let router = server.router();
    feed(&router, 0, count).await;
    let seen = observed(&router).await;
    drop(router);
    server.shutdown();
    seen
}

/// A copy of a data directory's `wal/` and `snapshots/`.
fn copy_dir(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for sub in ["wal", "snapshots"] {
        let from = src.join(sub);
        if !from.exists() {
            continue;
        }
        std::fs::create_dir(dst.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dst.path().join(sub).join(entry.file_name())).unwrap();
        }
    }
    dst
}

fn sorted_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The log's segment files, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = sorted_files(dir, "wal");
    files.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Start-up must fail; answers the message and checks that it is a log
/// refusal naming `file` at `offset`, and that no file was changed.
fn refused(dir: &Path, opts: ServerOptions, file: &str, offset: u64) -> String {
    let before: Vec<(PathBuf, Vec<u8>)> = sorted_files(dir, "wal")
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let error = open(opts).err().expect("start-up refused");
    let message = error.to_string();
    match &error {
        ServerError::Log {
            source: LogError::Corrupt {
                file: f, offset: o, ..
            },
            ..
        } => assert_eq!((f.as_str(), *o), (file, offset), "{message}"),
        other => panic!("not a log refusal: {other}"),
    }
    assert!(
        message.contains(&format!("{file} at byte {offset}: ")),
        "{message}"
    );
    assert!(message.ends_with("refusing to start"), "{message}");
    let after: Vec<(PathBuf, Vec<u8>)> = sorted_files(dir, "wal")
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(before == after, "a refused start-up changed the log");
    message
}

// ---------------------------------------------------------------------------
// The log
// ---------------------------------------------------------------------------

/// A crash in the middle of a write leaves a partial record after the last
/// acknowledged one (a short header, a short payload, or zeroed blocks):
/// start-up cuts it, says so in its log (file, offset, bytes cut), and a
/// client reads exactly what it read before.
#[tokio::test]
async fn a_torn_tail_is_cut_with_a_log_line_and_every_acknowledged_write_stays() {
    let base = tempfile::tempdir().unwrap();
    let before = populated(base.path(), None, 64 << 20, 300).await;
    let segment = segment_files(base.path()).pop().unwrap();
    let intact = std::fs::read(&segment).unwrap();
    // The start of a record that was being written: length 200, some crc,
    // the next seq.
    let mut partial = Vec::new();
    partial.extend_from_slice(&200u32.to_le_bytes());
    partial.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    partial.extend_from_slice(&1_000u64.to_le_bytes());
    partial.extend_from_slice(&[b'{'; 37]);
    for (what, tail) in [
        ("a short record header", partial[..7].to_vec()),
        ("a short payload", partial.clone()),
        ("zeroed blocks", vec![0u8; 4096]),
    ] {
        let dir = copy_dir(base.path());
        let seg = dir.path().join("wal").join(file_name(&segment));
        std::fs::write(&seg, [intact.clone(), tail.clone()].concat()).unwrap();
        let server = open(options(dir.path(), None, 64 << 20)).unwrap();
        let torn = server.recovery.torn_tail.clone().expect("reported");
        assert_eq!(
            (torn.offset, torn.bytes_cut),
            (intact.len() as u64, tail.len() as u64),
            "{what}"
        );
        assert_eq!(observed(&server.router()).await, before, "{what}");
        drop(server);
        assert_eq!(
            std::fs::read(&seg).unwrap().len(),
            intact.len(),
            "{what}: cut on disk"
        );
        let seg_text = seg.display().to_string();
        let lines = lines_with(&seg_text);
        assert!(
            lines.iter().any(|l| l.contains("WARN")
                && l.contains("cut a torn tail off the log")
                && l.contains(&format!("offset={}", intact.len()))
                && l.contains(&format!("bytes_cut={}", tail.len()))),
            "{what}: no warning naming {seg_text}: {lines:?}"
        );
    }
}

/// Damage to an acknowledged record that is followed by more records
/// refuses start-up with the file and the byte; nothing is changed, and once
/// the operator restores the file the server starts with everything.
#[tokio::test]
async fn damage_before_the_tail_refuses_start_up_naming_file_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    let before = populated(dir.path(), None, 64 << 20, 200).await;
    let segment = segment_files(dir.path()).remove(0);
    let intact = std::fs::read(&segment).unwrap();
    let mut damaged = intact.clone();
    // The first record's payload starts at byte 24 + 16.
    damaged[24 + 16 + 3] ^= 0x20;
    std::fs::write(&segment, &damaged).unwrap();
    let message = refused(
        dir.path(),
        options(dir.path(), None, 64 << 20),
        &format!("wal/{}", file_name(&segment)),
        24,
    );
    assert!(message.contains("corruption before the tail"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    std::fs::write(&segment, &intact).unwrap();
    let server = open(options(dir.path(), None, 64 << 20)).unwrap();
    assert_eq!(observed(&server.router()).await, before);
}

/// Small segments; a middle one deleted, or one that is not the last cut
/// short: refused, naming the file (the segment after the hole at byte 0,
/// or the cut segment at the record that runs past its end).
#[tokio::test]
async fn a_missing_or_truncated_middle_segment_refuses_start_up() {
    let base = tempfile::tempdir().unwrap();
    populated(base.path(), None, 8 * 1024, 600).await;
    let segments = segment_files(base.path());
    assert!(segments.len() >= 4, "{segments:?}");

    let dir = copy_dir(base.path());
    std::fs::remove_file(dir.path().join("wal").join(file_name(&segments[1]))).unwrap();
    let message = refused(
        dir.path(),
        options(dir.path(), None, 8 * 1024),
        &format!("wal/{}", file_name(&segments[2])),
        0,
    );
    assert!(
        message.contains("missing segment or sequence gap"),
        "{message}"
    );

    let dir = copy_dir(base.path());
    let cut = dir.path().join("wal").join(file_name(&segments[1]));
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let error = open(options(dir.path(), None, 8 * 1024))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(
        message.contains(&format!("wal/{} at byte ", file_name(&segments[1])))
            && message.contains("in a segment that is not the last")
            && message.ends_with("refusing to start"),
        "{message}"
    );
}

/// The newest segment deleted: the log refuses, naming the missing file
/// (`wal/NEWEST` records it). If the operator also deletes that marker,
/// the snapshot that covers the lost records still makes the server refuse
/// instead of starting without them.
#[tokio::test]
async fn a_missing_newest_segment_refuses_start_up() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), Some(150), 8 * 1024, 600).await;
    let mut segments = segment_files(dir.path());
    assert!(segments.len() >= 2, "older segments remain: {segments:?}");
    let last = segments.pop().unwrap();
    std::fs::remove_file(&last).unwrap();
    let error = open(options(dir.path(), None, 8 * 1024))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "wal/{} at byte 0: the newest segment",
            file_name(&last)
        )) && message.contains("is missing")
            && message.ends_with("refusing to start"),
        "{message}"
    );
    std::fs::remove_file(
        dir.path()
            .join("wal")
            .join(veltrix_log::NEWEST_SEGMENT_FILE),
    )
    .unwrap();
    let error = open(options(dir.path(), None, 8 * 1024))
        .err()
        .expect("refused");
    assert!(
        matches!(error, ServerError::LogBehindSnapshot { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("log data is missing"), "{error}");
}

/// The log fails an fsync: that request and every later write answer 503.
/// After power loss (only synced data, or a torn prefix of the rest), the
/// restarted server shows every acknowledged event.
#[tokio::test]
async fn a_failed_fsync_then_power_loss_keeps_every_acknowledged_write() {
    for mode in [CrashMode::SyncedOnly, CrashMode::TornPrefix { seed: 11 }] {
        let dir = tempfile::tempdir().unwrap();
        let storage = SimStorage::new();
        let mut opts = options(dir.path(), None, 8 * 1024);
        opts.storage = Some(Arc::new(storage.clone()));
        let server = open(opts.clone()).unwrap();
        let router = server.router();
        feed(&router, 0, 300).await;
        let acknowledged = observed(&router).await;
        storage.fail_next_syncs(1);
        for start in [300, 350] {
            let (status, body) = call(&router, "POST", "/v1/events", events(start, 50)).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["error"]["code"], "unavailable");
        }
        let after_crash = storage.crash(mode);
        drop(router);
        drop(server);
        opts.storage = Some(Arc::new(after_crash));
        let server = open(opts).unwrap();
        let router = server.router();
        let state = observed(&router).await;
        // The first failed request was applied but never acknowledged: it
        // may or may not be there. Everything acknowledged is.
        let accepted = |v: &Value| v["state"]["events"]["accepted"].as_u64().unwrap();
        assert!(accepted(&state) >= accepted(&acknowledged), "{mode:?}");
        if accepted(&state) == accepted(&acknowledged) {
            assert_eq!(state, acknowledged, "{mode:?}");
        }
        // Retrying the unacknowledged requests is safe: duplicates by id.
        feed(&router, 300, 100).await;
        let (_, again) = call(&router, "POST", "/v1/events", events(0, 400)).await;
        assert_eq!(again["accepted"], 0, "{mode:?}: {again}");
    }
}

/// The log goes first (records appended before the events are applied), so
/// with an instant fsync the log is done long before the engine: the
/// acknowledgement must still wait for the events to be applied, or a read
/// right after it would miss some. Other reads run meanwhile, so the engine
/// thread lets reads in between chunks of each batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_batch_is_applied_even_when_the_log_is_done_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), None, 64 << 20);
    opts.storage = Some(Arc::new(SimStorage::new()));
    let server = open(opts).unwrap();
    let router = server.router();
    // Stops the reader when the test ends, passing or not.
    struct Stop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = Stop(Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let reader = {
        let (router, stop) = (router.clone(), stop.0.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                call(&router, "GET", "/v1/state", Vec::new()).await;
            }
        })
    };
    const BATCH: usize = 2_000;
    let mut sent = Vec::new();
    for batch in 0..6 {
        let body = events(batch * BATCH, BATCH);
        sent.extend_from_slice(&body);
        let (status, reply) = call(&router, "POST", "/v1/events", body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let (_, mut state) = call(&router, "GET", "/v1/state", Vec::new()).await;
        let (ingest, engine) = veltrix_core::run_ndjson(plan(), &sent, 0, 1);
        let offline = veltrix_core::dump::dump(&veltrix_core::dump::DumpSource::from_engine(
            &ingest, &engine,
        ));
        let mut offline = serde_json::to_value(&offline).unwrap();
        // Dead letters name lines within their request here, within the
        // whole input offline.
        state["rejected"] = Value::Null;
        offline["rejected"] = Value::Null;
        assert!(
            state == offline,
            "after batch {batch}, the state differs from the offline run over the same events"
        );
    }
    drop(stop);
    reader.await.unwrap();
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

/// Three snapshots kept: two taken every 150 records, each waited for
/// before feeding on (a snapshot is skipped while one is in flight, so
/// feeding straight through would make the count depend on timing), and
/// one at shutdown.
async fn with_snapshots() -> (tempfile::TempDir, Value, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let server = open(options(dir.path(), Some(150), 64 << 20)).unwrap();
    let router = server.router();
    let status = server.snapshot_status.clone().expect("snapshots are on");
    for (part, wanted) in [(0, 1), (1, 2)] {
        feed(&router, part * 300, 300).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while status.written.load(std::sync::atomic::Ordering::Acquire) < wanted {
            assert!(
                std::time::Instant::now() < deadline,
                "snapshot {wanted} not written within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    feed(&router, 600, 300).await;
    let before = observed(&router).await;
    drop(router);
    server.shutdown();
    // The three newest are the restart points; an older file stays as long
    // as they take unchanged pieces from it (LOG_FORMAT.md, format 2).
    let snapshots = sorted_files(dir.path(), "snapshots");
    assert!(snapshots.len() >= 3, "{snapshots:?}");
    let restart_points = snapshots[snapshots.len() - 3..].to_vec();
    (dir, before, restart_points)
}

fn seq_of(snapshot: &Path) -> u64 {
    file_name(snapshot)
        .trim_end_matches(".snap")
        .parse()
        .unwrap()
}

/// The newest snapshot damaged in several ways: each time start-up skips
/// it, logs a warning naming the file, starts from the previous snapshot
/// and replays the log after it, to the state a client read before.
#[tokio::test]
async fn a_corrupt_latest_snapshot_falls_back_to_the_previous_one() {
    let (base, before, snapshots) = with_snapshots().await;
    let newest = file_name(snapshots.last().unwrap());
    let previous = seq_of(&snapshots[1]);
    let intact = std::fs::read(snapshots.last().unwrap()).unwrap();
    let mut flipped = intact.clone();
    let middle = intact.len() / 2;
    flipped[middle] ^= 0x01;
    for (what, bytes) in [
        ("a flipped bit", flipped),
        ("a truncated file", intact[..intact.len() / 3].to_vec()),
        ("an empty file", Vec::new()),
        ("zeros", vec![0u8; intact.len()]),
    ] {
        let dir = copy_dir(base.path());
        let path = dir.path().join("snapshots").join(&newest);
        std::fs::write(&path, bytes).unwrap();
        let server = open(options(dir.path(), None, 64 << 20)).unwrap();
        assert_eq!(server.snapshot_seq, Some(previous), "{what}");
        assert!(server.records_replayed > 0, "{what}");
        assert!(
            server
                .warnings
                .iter()
                .any(|w| w.contains("skipped snapshot") && w.contains(&newest)),
            "{what}: {:?}",
            server.warnings
        );
        assert_eq!(observed(&server.router()).await, before, "{what}");
        let path_text = path.display().to_string();
        assert!(
            lines_with(&path_text)
                .iter()
                .any(|l| l.contains("WARN") && l.contains("falling back to an older snapshot")),
            "{what}: no warning for {path_text}"
        );
    }

    // Every snapshot damaged: the whole log is replayed, same state.
    let dir = copy_dir(base.path());
    let files = sorted_files(dir.path(), "snapshots");
    for s in &files {
        std::fs::write(s, b"not a snapshot").unwrap();
    }
    let server = open(options(dir.path(), None, 64 << 20)).unwrap();
    assert_eq!(server.snapshot_seq, None);
    assert_eq!(server.warnings.len(), files.len(), "{:?}", server.warnings);
    assert_eq!(observed(&server.router()).await, before);
}

/// A snapshot file written by a newer format (frame version 3): start-up
/// refuses with the file's name and what to do, rather than silently using
/// an older snapshot; once the file is moved away it starts from the
/// previous one with the same state.
#[tokio::test]
async fn a_snapshot_file_of_a_newer_format_refuses_start_up() {
    let (dir, before, snapshots) = with_snapshots().await;
    let newest = snapshots.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[8] = 3; // the frame's format version (LOG_FORMAT.md)
    std::fs::write(newest, &bytes).unwrap();
    let error = open(options(dir.path(), None, 64 << 20))
        .err()
        .expect("refused");
    assert!(
        matches!(
            error,
            ServerError::Snapshot(LogError::SnapshotVersion { found: 3, .. })
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("snapshots/{}", file_name(newest)))
            && message.contains("newer than this build supports")
            && message.contains("move the file away"),
        "{message}"
    );
    // The operator moves it away on purpose.
    std::fs::rename(newest, dir.path().join("moved-away.snap")).unwrap();
    let server = open(options(dir.path(), None, 64 << 20)).unwrap();
    assert_eq!(server.snapshot_seq, Some(seq_of(&snapshots[1])));
    assert_eq!(observed(&server.router()).await, before);
}

/// A snapshot whose frame is intact but whose contents come from a newer
/// server (an envelope version this build does not know): ignored with a
/// warning, the whole log is replayed to the same state. (Once segments
/// are retired this refuses instead: tested in snapshots.rs.)
#[tokio::test]
async fn a_snapshot_payload_of_a_newer_server_is_ignored_and_the_log_replayed() {
    let (dir, before, snapshots) = with_snapshots().await;
    let newest = seq_of(snapshots.last().unwrap());
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let mut payload = store.latest().unwrap().snapshot.unwrap().payload;
    assert_eq!(&payload[..3], &[0xFF, b'V', b'S'], "server envelope");
    payload[3] = 99;
    store.write(newest, &payload).unwrap();
    drop(store);
    let server = open(options(dir.path(), None, 64 << 20)).unwrap();
    assert_eq!(server.snapshot_seq, None);
    assert!(
        server
            .warnings
            .iter()
            .any(|w| w.contains("ignored snapshot") && w.contains("newer")),
        "{:?}",
        server.warnings
    );
    assert_eq!(observed(&server.router()).await, before);
}
