//! Snapshots and restart: a restart from the latest snapshot plus the log
//! tail gives the same state as a replay of the whole log; a corrupt latest
//! snapshot falls back to an older one; a snapshot of another configuration
//! is ignored; a log that ends before its snapshot refuses to start.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_log::{Log, LogOptions, SnapshotOptions, SnapshotStore};
use veltrix_server::rebuild::comparable_state;
use veltrix_server::{Server, ServerError, ServerOptions, Source, rebuild};

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass/veltrix.toml")
}

/// The example configuration; `extra` is appended to its text (a comment
/// changes the configuration version and nothing else).
fn plan_with(extra: &str) -> Arc<Plan> {
    let path = example_config();
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    let config = veltrix_config::compile(&[veltrix_config::Source::new(
        path.display().to_string(),
        text,
    )])
    .expect("the example configuration is valid");
    Arc::new(Plan::new(Arc::new(config)))
}

fn plan() -> Arc<Plan> {
    plan_with("")
}

fn options(dir: &Path, every: Option<u64>) -> ServerOptions {
    let mut options = ServerOptions::new(dir);
    options.partitions = 2;
    options.snapshot_every = every;
    // Exactly every `every` records: these tests count snapshots.
    options.snapshot_pacing = 1;
    options
}

/// `count` events from `first` on: logins, purchases with and without a
/// currency (views), locations, over 500 players and several days.
fn events(first: usize, count: usize) -> Vec<u8> {
    let start = jiff::Timestamp::from_second(1_796_083_200).unwrap(); // 2026-12-01
    let mut out = String::new();
    for i in first..first + count {
        let player = format!("p{}", i % 500);
        let ts = start + jiff::SignedDuration::from_secs(i as i64 * 97);
        let line = match i % 4 {
            0 => format!(r#"{{"id":"e{i}","player":"{player}","type":"login","ts":"{ts}"}}"#),
            1 => format!(
                r#"{{"id":"e{i}","player":"{player}","type":"purchase","ts":"{ts}","data":{{"amount":{},"currency":"coins"}}}}"#,
                i % 90
            ),
            2 => format!(
                r#"{{"id":"e{i}","player":"{player}","type":"purchase","ts":"{ts}","data":{{"amount":"bad"}}}}"#
            ),
            _ => format!(
                r#"{{"id":"e{i}","player":"{player}","type":"location_visited","ts":"{ts}","data":{{"place":"harbor"}}}}"#
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

async fn post(router: &Router, body: Vec<u8>) {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/events")
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn get(router: &Router, uri: &str) -> Value {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn state(router: &Router) -> Value {
    get(router, "/v1/state").await
}

/// The log's last seq, from `/readyz`.
async fn last_seq(router: &Router) -> u64 {
    get(router, "/readyz").await["last_seq"]
        .as_u64()
        .expect("/readyz names the last seq")
}

/// Posts events `first..first+count` in requests of 100 (one record each
/// plus a tally record per request with rejections).
async fn feed(router: &Router, first: usize, count: usize) {
    for start in (first..first + count).step_by(100) {
        let n = 100.min(first + count - start);
        post(router, events(start, n)).await;
    }
}

/// Rebuilds the closed data directory both ways.
fn rebuild_both(dir: &Path, plan: Arc<Plan>) -> (veltrix_server::Rebuilt, veltrix_server::Rebuilt) {
    let (log, _) = Log::open(dir, LogOptions::default()).unwrap();
    let store = SnapshotStore::open(dir, SnapshotOptions::default()).unwrap();
    let from_snapshot = rebuild(plan.clone(), 2, &log, &store, Source::LatestSnapshot).unwrap();
    let from_log = rebuild(plan, 1, &log, &store, Source::LogOnly).unwrap();
    (from_snapshot, from_log)
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("snapshots"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn restart_from_snapshot_and_tail_equals_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Snapshots every 300 records while ingesting, and one at shutdown.
        let server = Server::open(plan(), options(dir.path(), Some(300))).unwrap();
        feed(&server.router(), 0, 1000).await;
        server.shutdown();
    }
    let snapshots = snapshot_files(dir.path());
    assert!(
        !snapshots.is_empty() && snapshots.len() <= 3,
        "{snapshots:?}"
    );
    let before = {
        // A tail after the last snapshot: no snapshots taken this time.
        let server = Server::open(plan(), options(dir.path(), None)).unwrap();
        assert!(server.snapshot_seq.is_some());
        assert_eq!(
            server.records_replayed, 0,
            "the shutdown snapshot covers everything"
        );
        let router = server.router();
        feed(&router, 1000, 500).await;
        state(&router).await
    };
    let server = Server::open(plan(), options(dir.path(), None)).unwrap();
    let snapshot_seq = server.snapshot_seq.expect("started from a snapshot");
    assert!(server.records_replayed > 0);
    assert_eq!(state(&server.router()).await, before);
    drop(server);

    let (from_snapshot, from_log) = rebuild_both(dir.path(), plan());
    assert_eq!(from_snapshot.snapshot_seq, Some(snapshot_seq));
    assert_eq!(from_log.snapshot_seq, None);
    assert_eq!(
        comparable_state(&from_snapshot.core),
        comparable_state(&from_log.core)
    );
    assert_eq!(comparable_state(&from_log.core)["state"], before);
}

#[tokio::test]
async fn snapshots_retire_old_segments_but_keep_every_kept_snapshots_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(200));
    opts.log.segment_bytes = 8 * 1024;
    opts.snapshot_keep = 2;
    let before = {
        let server = Server::open(plan(), opts.clone()).unwrap();
        let router = server.router();
        let status = server.snapshot_status.clone().unwrap();
        // A snapshot due while another is in flight is skipped, so feeding
        // straight through makes the count depend on how fast this machine
        // writes them (it failed once in CI): feed 400 events (two
        // snapshots' worth) at a time and wait for a snapshot after each.
        for round in 0..5u64 {
            feed(&router, round as usize * 400, 400).await;
            let deadline = Instant::now() + Duration::from_secs(20);
            while status.written.load(Ordering::Acquire) <= round {
                assert!(
                    Instant::now() < deadline,
                    "snapshot {} never came",
                    round + 1
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // Each snapshot is timed and its bytes counted.
        let written = status.written.load(Ordering::Acquire);
        let request = Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let metrics = String::from_utf8(bytes.to_vec()).unwrap();
        let value = |name: &str| -> f64 {
            let line = metrics
                .lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        // (Another snapshot may be in flight: counts can only be higher.)
        assert!(value("veltrix_snapshot_seconds_count ") as u64 >= written);
        assert!(value("veltrix_snapshots_total ") as u64 >= written);
        // At least the smallest file kept was counted.
        let smallest = snapshot_files(dir.path())
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "snap"))
            .map(|f| f.metadata().map_or(0, |m| m.len()))
            .min()
            .unwrap();
        let counted = value("veltrix_snapshot_written_bytes_total ") as u64;
        assert!(counted >= smallest, "{counted} bytes counted");
        state(&router).await
    };
    let store = SnapshotStore::open(dir.path(), SnapshotOptions { keep: 2 }).unwrap();
    // Restart points: the two newest. Older files may stay while those
    // take unchanged pieces from them, but the log need not reach back to
    // them.
    let kept = store.restart_points().unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let (log, _) = Log::open(dir.path(), opts.log.clone()).unwrap();
    assert!(log.first_seq() > 1, "old segments were retired");
    assert!(
        log.first_seq() <= kept[0] + 1,
        "the oldest kept snapshot still has its tail"
    );
    // A rebuild from the log alone is impossible now, and says why.
    let error = rebuild(plan(), 1, &log, &store, Source::LogOnly)
        .err()
        .expect("refused");
    assert!(matches!(error, ServerError::Retired { .. }), "{error}");
    drop(log);

    // The newest snapshot is corrupt: start-up falls back to the older one
    // and replays its (retained) tail to the same state.
    let newest = snapshot_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    let server = Server::open(plan(), options(dir.path(), None)).unwrap();
    assert_eq!(server.snapshot_seq, Some(kept[0]));
    assert!(
        server
            .warnings
            .iter()
            .any(|w| w.contains("skipped snapshot"))
    );
    assert_eq!(state(&server.router()).await, before);
    drop(server);

    // Every snapshot damaged and the log retired: start-up refuses, naming
    // each file and what is wrong with it, rather than start from less.
    let files = snapshot_files(dir.path());
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(file, bytes).unwrap();
    }
    let error = Server::open(plan(), options(dir.path(), None))
        .err()
        .expect("refused");
    assert!(
        matches!(error, ServerError::NoUsableSnapshot { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("no snapshot is usable"), "{message}");
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(message.contains(name), "{name} not named in {message}");
    }
}

#[tokio::test]
async fn a_snapshot_of_another_configuration_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let server = Server::open(plan(), options(dir.path(), Some(1_000_000))).unwrap();
        let router = server.router();
        feed(&router, 0, 400).await;
        state(&router).await
    };
    assert_eq!(snapshot_files(dir.path()).len(), 1, "one at shutdown");
    // Same rules, another version (an event type nobody sends).
    let changed = plan_with("\n[events.unused_by_anyone]\n");
    assert_ne!(changed.config.version, plan().config.version);
    let server = Server::open(changed, options(dir.path(), None)).unwrap();
    assert_eq!(server.snapshot_seq, None, "the snapshot was ignored");
    assert!(
        server
            .warnings
            .iter()
            .any(|w| w.contains("configuration version")),
        "{:?}",
        server.warnings
    );
    // 300 accepted events, 4 tallies of rejections, the Config record.
    assert_eq!(server.records_replayed, 305);
    assert_eq!(state(&server.router()).await, before);
}

#[tokio::test]
async fn a_log_that_ends_before_its_snapshot_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = Server::open(plan(), options(dir.path(), Some(1_000_000))).unwrap();
        feed(&server.router(), 0, 200).await;
    }
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let error = Server::open(plan(), options(dir.path(), None))
        .err()
        .expect("refused");
    assert!(
        matches!(error, ServerError::LogBehindSnapshot { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("log data is missing"), "{message}");
}

/// Prints restart times with all records in the log versus most of them in
/// a snapshot, and what taking a snapshot costs the engine thread (encode)
/// against cloning the partitions (the bulk of the state). Asserts nothing
/// about timing.
#[tokio::test]
async fn restart_time_with_and_without_a_snapshot() {
    const EVENTS: usize = 20_000;
    let full = tempfile::tempdir().unwrap();
    let snap = tempfile::tempdir().unwrap();
    for (dir, every) in [(&full, None), (&snap, Some(1_000_000))] {
        let server = Server::open(plan(), options(dir.path(), every)).unwrap();
        let router = server.router();
        for start in (0..EVENTS).step_by(1000) {
            post(&router, events(start, 1000)).await;
        }
        drop(server);
    }
    // Snapshot dir: a tail of 1000 events after the shutdown snapshot.
    {
        let server = Server::open(plan(), options(snap.path(), None)).unwrap();
        post(&server.router(), events(EVENTS, 1000)).await;
    }
    for (name, dir) in [("whole log", &full), ("snapshot + tail", &snap)] {
        let started = Instant::now();
        let server = Server::open(plan(), options(dir.path(), None)).unwrap();
        println!(
            "restart from {name}: {} ms (snapshot seq {:?}, {} records replayed)",
            started.elapsed().as_millis(),
            server.snapshot_seq,
            server.records_replayed
        );
    }
    let (log, _) = Log::open(full.path(), LogOptions::default()).unwrap();
    let store = SnapshotStore::open(full.path(), SnapshotOptions::default()).unwrap();
    let core = rebuild(plan(), 2, &log, &store, Source::LogOnly)
        .unwrap()
        .core;
    let started = Instant::now();
    let bytes = veltrix_core::snapshot::encode(&core.ingest, &core.engine);
    let encode = started.elapsed();
    let started = Instant::now();
    let partitions = core.engine.partitions.clone();
    let clone = started.elapsed();
    println!(
        "{EVENTS} events: encode {} µs ({} bytes), clone of the partitions alone {} µs",
        encode.as_micros(),
        bytes.len(),
        clone.as_micros()
    );
    drop(partitions);
}

#[tokio::test]
async fn a_configuration_change_after_retirement_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(200));
    opts.log.segment_bytes = 8 * 1024;
    opts.snapshot_keep = 1;
    {
        let server = Server::open(plan(), opts.clone()).unwrap();
        feed(&server.router(), 0, 1000).await;
    }
    let error = Server::open(
        plan_with("\n[events.unused_by_anyone]\n"),
        options(dir.path(), None),
    )
    .err()
    .expect("refused");
    assert!(
        matches!(error, ServerError::SnapshotUnusable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("configuration version"),
        "{error}"
    );
    // The configuration it was taken with still starts.
    let server = Server::open(plan(), options(dir.path(), None)).unwrap();
    assert!(server.snapshot_seq.is_some());
}

/// Power loss at an arbitrary moment while snapshots are being written and
/// segments retired (simulated storage): the restart — from whatever
/// snapshot survived plus the log — shows every acknowledged write.
#[tokio::test]
async fn a_crash_while_snapshotting_loses_nothing_acknowledged() {
    use veltrix_log::{CrashMode, SimStorage};
    for seed in 0..8u64 {
        let dir = tempfile::tempdir().unwrap();
        let storage = SimStorage::new();
        let mut opts = options(dir.path(), Some(100));
        opts.log.segment_bytes = 8 * 1024;
        opts.snapshot_keep = 2;
        opts.storage = Some(Arc::new(storage.clone()));
        let server = Server::open(plan(), opts.clone()).unwrap();
        let router = server.router();
        // A different amount of work per seed, so the crash lands at
        // different points of the snapshot thread's work.
        feed(&router, 0, 600 + 100 * seed as usize).await;
        let before = state(&router).await;
        let mode = if seed % 2 == 0 {
            CrashMode::SyncedOnly
        } else {
            CrashMode::TornPrefix { seed }
        };
        let after_crash = storage.crash(mode);
        drop(router);
        drop(server);
        let mut reopened = opts.clone();
        reopened.storage = Some(Arc::new(after_crash));
        let server = Server::open(plan(), reopened)
            .unwrap_or_else(|e| panic!("seed {seed}: restart failed: {e}"));
        assert_eq!(
            state(&server.router()).await,
            before,
            "seed {seed}: state after the crash differs"
        );
    }
}

/// Pacing: with a snapshot due every 50 records, a pacing factor of a
/// million lets the first snapshot through and then holds the next back
/// (it would wait a million times the first one's duration) until the log
/// tail reaches `MAX_TAIL_FACTOR` × 50 records, which forces one; the one at shutdown is
/// never held back. Pacing 1 takes one after every request of 100 events
/// (some invalid, so not quite 100 records).
#[tokio::test]
async fn pacing_holds_snapshots_back_until_the_tail_cap_and_never_at_shutdown() {
    let cap = veltrix_server::snapshots::MAX_TAIL_FACTOR * 50;
    assert_eq!(cap, 250);
    for pacing in [1_000_000, 1] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path(), Some(50));
        opts.snapshot_pacing = pacing;
        let server = Server::open(plan(), opts).unwrap();
        let status = server.snapshot_status.clone().expect("snapshots are on");
        let router = server.router();
        let written = || status.written.load(Ordering::Acquire);
        let seq = || status.written_seq.load(Ordering::Acquire);
        let wait_for = |count: u64| {
            let deadline = Instant::now() + Duration::from_secs(30);
            async move {
                while written() < count {
                    assert!(Instant::now() < deadline, "snapshot {count} never came");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        };
        feed(&router, 0, 100).await;
        wait_for(1).await;
        let first = seq();
        let mut batch = 1;
        // Up to just under the cap past the first snapshot.
        while last_seq(&router).await + 100 < first + cap {
            feed(&router, batch * 100, 100).await;
            batch += 1;
            if pacing == 1 {
                wait_for(batch as u64).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if pacing == 1 {
            assert_eq!(written(), batch as u64, "one per request");
        } else {
            assert_eq!(written(), 1, "held back below the cap");
            // Past the cap: due however long the pacing asks to wait.
            for _ in 0..3 {
                feed(&router, batch * 100, 100).await;
                batch += 1;
            }
            wait_for(2).await;
            assert!(
                seq() >= first + cap,
                "forced at the cap: {} vs {first}",
                seq()
            );
        }
        drop(router);
        server.shutdown();
        let server = Server::open(plan(), options(dir.path(), None)).unwrap();
        assert_eq!(
            server.records_replayed, 0,
            "pacing {pacing}: the shutdown snapshot covers all"
        );
    }
}
