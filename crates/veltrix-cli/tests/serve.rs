//! `veltrix serve` as a user runs it: the real binary on a loopback port,
//! plain HTTP/1.1 over a TcpStream, a kill -9 and a restart on the same
//! data directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(data_dir: &Path, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_veltrix"))
        .args(["serve", "--config"])
        .arg(example())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("NO_COLOR", "1")
        .env_remove("VELTRIX_PUZZLE_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs veltrix serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// One request on a fresh connection; returns (status, body).
fn http(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_acknowledges_durably_and_recovers_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(dir.path(), port);
    let events = std::fs::read(example().join("events.ndjson")).unwrap();
    let (status, body) = http(port, "POST", "/v1/events", "application/x-ndjson", &events);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":20"), "{body}");
    let (_, before) = http(port, "GET", "/v1/state", "application/json", b"");

    // Acknowledged means fsync'd: a kill -9 right after loses nothing.
    server.kill().unwrap();
    server.wait().unwrap();
    let port = free_port();
    let mut server = start(dir.path(), port);
    let (status, after) = http(port, "GET", "/v1/state", "application/json", b"");
    assert_eq!(status, 200);
    assert_eq!(after, before);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn serve_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veltrix"))
        .args(["serve", "--config"])
        .arg(example())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}
