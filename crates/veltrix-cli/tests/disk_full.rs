//! Disk full: the real server with its data directory on a small
//! size-limited mount (a tmpfs made by `scripts/disk-full.sh`, which passes
//! its path in `VELTRIX_DISK_FULL_DIR`; ignored otherwise).
//!
//! What a user must see (docs/SERVER.md, the log-failure contract):
//! - when an append fails because the disk is full, ingest and spend answer
//!   507 with error code `insufficient_storage` and a message that says
//!   the disk is full; `/readyz` answers 503 while degraded; reads keep
//!   working;
//! - nothing acknowledged is lost;
//! - once space returns the server recovers by itself (no restart): it
//!   accepts writes again, the refused batches are accepted when retried;
//! - after a restart every acknowledged event is present (resent, every
//!   one is a duplicate) and `veltrix verify` agrees with the log.

mod chaos;

use chaos::{Outcome, Scratch, Server, get, get_json, post, post_events, veltrix};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BASE_TS_MS: u64 = 1_796_083_200_000;
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Space left free on the mount before ingest starts.
const HEADROOM: u64 = 3 << 20;

fn batch(first: u64, n: u64) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut body = String::new();
    for k in first..first + n {
        let id = format!("d-{k}");
        body.push_str(&format!(
            r#"{{"id":"{id}","player":"p{}","type":"quest_done","ts":{},"data":{{"quest":"q","score":900,"hardcore":true}}}}"#,
            k % 500,
            BASE_TS_MS + k
        ));
        body.push('\n');
        ids.push(id);
    }
    (ids, body)
}

/// Fills `path` with zeros until the file system is full, then gives back
/// `headroom` bytes; returns the filler's size.
fn fill(path: &PathBuf, headroom: u64) -> u64 {
    let mut file = std::fs::File::create(path).expect("creates the filler file");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    for _ in 0..(64 << 10) {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("writing the filler: {e}"),
        }
    }
    let size = written.saturating_sub(headroom);
    file.set_len(size).expect("shrinks the filler");
    file.sync_all().unwrap();
    size
}

#[test]
#[ignore = "needs a small mount: run scripts/disk-full.sh"]
fn disk_full_answers_507_keeps_acknowledged_events_and_recovers_by_itself() {
    let mount = PathBuf::from(
        std::env::var_os("VELTRIX_DISK_FULL_DIR")
            .expect("VELTRIX_DISK_FULL_DIR: the mount to fill (scripts/disk-full.sh makes one)"),
    );
    let data = mount.join("data");
    let filler = mount.join("filler");
    // Server logs and copies go outside the mount (they must not eat its
    // space, and must survive a full disk).
    let scratch = Scratch::new("disk-full");

    let mut server = Server::spawn(&data, &scratch.path, &["--snapshot-every", "0"]);
    server
        .wait_ready(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = server.port;
    let mut next = 0u64;
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut bodies: Vec<String> = Vec::new();

    // Some events and a spend while there is room.
    for _ in 0..5 {
        let (ids, body) = batch(next, 200);
        next += 200;
        match post_events(port, &body, WRITE_TIMEOUT) {
            Outcome::Acked(answer) => assert_eq!(answer["accepted"], 200, "{answer}"),
            other => panic!("before the disk filled: {other:?}"),
        }
        acked.extend(ids);
        bodies.push(body);
    }
    let filled = fill(&filler, HEADROOM);
    println!(
        "filled the mount with a {} MiB file, {} MiB left",
        filled >> 20,
        HEADROOM >> 20
    );

    // Ingest until the disk is full.
    let started = Instant::now();
    let mut refused: Vec<(Vec<String>, String)> = Vec::new();
    let mut first_refusal = None;
    while first_refusal.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120) && next < 2_000_000,
            "the disk never filled: {} events acknowledged",
            acked.len()
        );
        let (ids, body) = batch(next, 500);
        next += 500;
        match post_events(port, &body, WRITE_TIMEOUT) {
            Outcome::Acked(answer) => {
                assert_eq!(answer["accepted"], 500, "{answer}");
                acked.extend(ids);
                bodies.push(body);
            }
            Outcome::Status(status, text) => {
                first_refusal = Some((status, text));
                refused.push((ids, body));
            }
            other => panic!("while filling the disk: {other:?}"),
        }
    }
    let (status, text) = first_refusal.unwrap();
    println!(
        "disk full after {} acknowledged events: {status} {text}",
        acked.len()
    );
    let error: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the refusal is not the JSON error shape: {text}"));
    assert_eq!(
        status, 507,
        "a full disk must answer 507 Insufficient Storage, got {status}: {text}"
    );
    assert_eq!(
        error["error"]["code"], "insufficient_storage",
        "error code: {text}"
    );
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("full") || message.contains("space"),
        "the message must say the disk is full: {message}"
    );

    // While full: writes refused with 507 (ingest and spend), not ready,
    // reads answered.
    let (ids, body) = batch(next, 10);
    next += 10;
    match post_events(port, &body, WRITE_TIMEOUT) {
        Outcome::Status(507, text) => assert!(text.contains("insufficient_storage"), "{text}"),
        Outcome::Acked(answer) => {
            // Accepted only if it was made durable: then it counts.
            println!("a write while full was acknowledged (room was left): {answer}");
            acked.extend(ids.clone());
            bodies.push(body.clone());
        }
        other => panic!("a write while the disk is full: {other:?}"),
    }
    if !acked.contains(&ids[0]) {
        refused.push((ids, body));
    }
    let spend = post(
        port,
        "/v1/players/p1/spend",
        "application/json",
        br#"{"currency":"coins","amount":1,"key":"disk-full-spend"}"#,
        WRITE_TIMEOUT,
    );
    // p1 has no coins (quests pay points): a spend is refused either way;
    // while degraded it must be the storage refusal, not a balance check
    // that pretends the server is fine.
    match &spend {
        Outcome::Status(507, text) => assert!(text.contains("insufficient_storage"), "{text}"),
        other => panic!("a spend while the disk is full: {other:?} (expected 507)"),
    }
    let ready = get(port, "/readyz").expect("/readyz answers");
    assert_eq!(
        ready.status,
        503,
        "/readyz while the disk is full: {}",
        ready.text()
    );
    let board = get(port, "/v1/leaderboards/global?limit=5").expect("reads answer");
    assert_eq!(
        board.status,
        200,
        "a read while the disk is full: {}",
        board.text()
    );
    let player = get(port, "/v1/players/p1").expect("reads answer");
    assert_eq!(
        player.status,
        200,
        "a read while the disk is full: {}",
        player.text()
    );

    // Space returns: the server recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        if let Ok(r) = get(port, "/readyz")
            && r.status == 200
        {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "the server did not become ready within 30 s of space returning; its log:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let recovery = freed.elapsed();
    println!("ready again {recovery:?} after space returned");

    // The refused batches are retried (each event accepted or, if it
    // reached the log before the failure, a duplicate), then more new ones.
    for (ids, body) in &refused {
        match post_events(port, body, WRITE_TIMEOUT) {
            Outcome::Acked(answer) => {
                let n =
                    answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap();
                assert_eq!(n, ids.len() as u64, "a refused batch, retried: {answer}");
                acked.extend(ids.iter().cloned());
                bodies.push(body.clone());
            }
            other => panic!("retrying a refused batch after recovery: {other:?}"),
        }
    }
    for _ in 0..5 {
        let (ids, body) = batch(next, 200);
        next += 200;
        match post_events(port, &body, WRITE_TIMEOUT) {
            Outcome::Acked(answer) => assert_eq!(answer["accepted"], 200, "{answer}"),
            other => panic!("after recovery: {other:?}"),
        }
        acked.extend(ids);
        bodies.push(body);
    }
    let state = get_json(port, "/v1/state");
    assert_eq!(
        state["events"]["accepted"].as_u64(),
        Some(acked.len() as u64),
        "accepted events after recovery"
    );

    // Restart (SIGKILL): every acknowledged event is still there.
    server.kill9();
    let mut server = Server::spawn(&data, &scratch.path, &["--snapshot-every", "0"]);
    server
        .wait_ready(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let state = get_json(server.port, "/v1/state");
    assert_eq!(
        state["events"]["accepted"].as_u64(),
        Some(acked.len() as u64),
        "accepted events after a restart"
    );
    for body in &bodies {
        match post_events(server.port, body, WRITE_TIMEOUT) {
            Outcome::Acked(answer) => assert_eq!(
                answer["accepted"], 0,
                "an acknowledged event was missing after the restart: {answer}"
            ),
            other => panic!("resending after the restart: {other:?}"),
        }
    }
    assert!(server.terminate(Duration::from_secs(30)), "graceful stop");
    let verify = veltrix()
        .args(["verify", "--config"])
        .arg(chaos::example())
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "veltrix verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    println!(
        "disk full: {} events acknowledged, none lost; {} refused batches accepted on retry; recovered {recovery:?} after space returned",
        acked.len(),
        refused.len()
    );
}
