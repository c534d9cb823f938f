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

/// A running `veltrix serve`; its log goes to a file so that a failure can
/// show it.
struct Served {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Served {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request; panics with the server's log if it cannot be made.
    fn http(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        http(self.port, method, path, content_type, body).unwrap_or_else(|e| {
            panic!(
                "{method} {path} failed: {e}\nserver log:\n{}",
                self.log_text()
            )
        })
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Starts the server and waits until it answers `/readyz` with 200 (a
/// bare TCP connect could reach another process that briefly held the
/// port); panics with its log if it exits first.
fn start(data_dir: &Path, log_dir: &Path) -> Served {
    let port = free_port();
    let log = log_dir.join(format!("serve-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_veltrix"))
        .args(["serve", "--config"])
        .arg(example())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("NO_COLOR", "1")
        .env_remove("VELTRIX_PUZZLE_SECRET")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("creates the log file"))
        .spawn()
        .expect("runs veltrix serve");
    let mut served = Served { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            panic!("the server exited ({status}):\n{}", served.log_text());
        }
        if let Ok((200, _)) = http(port, "GET", "/readyz", "text/plain", b"") {
            return served;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not become ready:\n{}",
            served.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request on a fresh connection; returns (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn serve_acknowledges_durably_and_recovers_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let server = start(dir.path(), logs.path());
    let events = std::fs::read(example().join("events.ndjson")).unwrap();
    let (status, body) = server.http("POST", "/v1/events", "application/x-ndjson", &events);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":20"), "{body}");
    let (_, before) = server.http("GET", "/v1/state", "application/json", b"");

    // Acknowledged means fsync'd: a kill -9 right after loses nothing.
    server.kill();
    let server = start(dir.path(), logs.path());
    let (status, after) = server.http("GET", "/v1/state", "application/json", b"");
    assert_eq!(status, 200);
    assert_eq!(after, before);
    server.kill();
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
