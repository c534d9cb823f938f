//! Shared harness for the reliability tests (crash loop, overload, disk
//! full): the real `veltrix` binary as a child process that is always killed
//! (Drop guard), a tiny HTTP/1.1 client over `std::net::TcpStream` with
//! timeouts, a seeded random generator, and helpers to read the state a user
//! can see.
//!
//! Every helper is bounded in time: connections and reads time out, and
//! waits take a deadline.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The example configuration every reliability test runs.
pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass")
}

pub fn veltrix_bin() -> &'static str {
    env!("CARGO_BIN_EXE_veltrix")
}

/// A fresh loopback port (bound and released; the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `veltrix …` with the environment every test uses (no colours, the
/// default puzzle secret everywhere so the server and offline runs agree).
pub fn veltrix() -> Command {
    let mut command = Command::new(veltrix_bin());
    command
        .env("NO_COLOR", "1")
        .env_remove("VELTRIX_PUZZLE_SECRET")
        .env_remove("RUST_LOG");
    command
}

// ---------------------------------------------------------------------------
// Randomness

/// SplitMix64: small, seedable, good enough to pick delays and sizes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next_u64() ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93))
    }
}

/// The seed from `var` if set, else one from the clock (printed by the
/// caller so a failure can be reproduced).
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not a u64")),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            nanos ^ ((std::process::id() as u64) << 32)
        }
    }
}

pub fn env_u64(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not a whole number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------
// HTTP

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The error code of an error body (`{"error": {"code": …}}`).
    pub fn error_code(&self) -> Option<String> {
        let value: Value = serde_json::from_slice(&self.body).ok()?;
        value["error"]["code"].as_str().map(str::to_string)
    }
}

/// One request on a fresh connection (`Connection: close`), with a connect
/// timeout of 2 s and `timeout` for each read and write. Any transport
/// problem (refused, reset, EOF before a full response, timeout) is an
/// `Err`: for a client that means "not acknowledged".
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn get(port: u16, path: &str) -> io::Result<Response> {
    request(
        port,
        "GET",
        path,
        "application/json",
        b"",
        Duration::from_secs(30),
    )
}

/// GET that must succeed with 200; returns the JSON body.
pub fn get_json(port: u16, path: &str) -> Value {
    let response = get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    response.json()
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no complete response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        if rest.len() < length {
            return Err(invalid("body shorter than content-length"));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| invalid("chunk"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(invalid("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// The server

/// A running `veltrix serve`; killed (SIGKILL) and reaped when dropped, so a
/// failing test never leaves a server behind.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub pid: u32,
    pub started: Instant,
    /// Where the server's stderr goes (shown on failures).
    pub log_path: PathBuf,
}

static SERVER_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Server {
    /// Spawns `veltrix serve --config EXAMPLE --data-dir DATA --listen
    /// 127.0.0.1:PORT EXTRA…` on a fresh port, without waiting.
    /// stderr goes to a file in `log_dir`.
    pub fn spawn(data_dir: &Path, log_dir: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let n = SERVER_COUNTER.fetch_add(1, Ordering::Relaxed);
        let log_path = log_dir.join(format!("server-{n}.log"));
        let log = std::fs::File::create(&log_path).expect("creates the server log file");
        let started = Instant::now();
        let child = veltrix()
            .args(["serve", "--config"])
            .arg(example())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("runs veltrix serve");
        Server {
            pid: child.id(),
            child: Some(child),
            port,
            started,
            log_path,
        }
    }

    /// Polls `/readyz` until it answers 200; returns the time since spawn.
    /// Err (with the server's log) when the process exits or `timeout`
    /// passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = self.started + timeout;
        loop {
            if let Ok(response) = request(
                self.port,
                "GET",
                "/readyz",
                "application/json",
                b"",
                Duration::from_secs(5),
            ) && response.status == 200
            {
                return Ok(self.started.elapsed());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "the server exited with {status} before it was ready; its log:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server was not ready after {timeout:?}; its log:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL (std's `Child::kill` on Unix) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful stop) and wait up to `timeout`; SIGKILL after.
    /// Returns whether it stopped by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// A field of /proc/PID/status in KiB (`VmHWM`, `VmRSS`).
    pub fn proc_status_kib(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.pid, field)
    }

    /// The last 60 lines of the server's stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

// ---------------------------------------------------------------------------
// Files

/// A scratch directory under the system temp dir that is removed when the
/// test passes and kept (its path printed) when it fails, so the data
/// directory and server logs can be examined.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let base = std::env::var_os("VELTRIX_SCRATCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        Scratch::new_in(&base, name)
    }

    pub fn new_in(base: &Path, name: &str) -> Scratch {
        let unique = format!(
            "veltrix-{name}-{}-{}",
            std::process::id(),
            SERVER_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = base.join(unique);
        std::fs::create_dir_all(&path).expect("creates the scratch directory");
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "kept the scratch directory for inspection: {}",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `cp -r from to` (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Load

/// How a write request ended, as a client sees it.
#[derive(Debug)]
pub enum Outcome {
    /// 200 and its JSON body: acknowledged (durable).
    Acked(Value),
    /// 429; the `Retry-After` seconds (None when the header is missing).
    Overloaded(Option<u64>),
    /// Any other HTTP status (with the body).
    Status(u16, String),
    /// No complete answer (refused, reset, timeout): not acknowledged.
    Transport(String),
}

pub fn post(port: u16, path: &str, content_type: &str, body: &[u8], timeout: Duration) -> Outcome {
    match request(port, "POST", path, content_type, body, timeout) {
        Ok(response) if response.status == 200 => Outcome::Acked(response.json()),
        Ok(response) if response.status == 429 => {
            Outcome::Overloaded(response.header("retry-after").and_then(|v| v.parse().ok()))
        }
        Ok(response) => Outcome::Status(response.status, response.text()),
        Err(e) => Outcome::Transport(e.to_string()),
    }
}

/// POSTs an NDJSON batch to `/v1/events`.
pub fn post_events(port: u16, ndjson: &str, timeout: Duration) -> Outcome {
    post(
        port,
        "/v1/events",
        "application/x-ndjson",
        ndjson.as_bytes(),
        timeout,
    )
}

/// The state dump's players as comparable values: zero balances and empty
/// lists dropped (the dump may omit them), so two dumps of the same state
/// compare equal however they spell "nothing".
pub fn normalized_players(state: &Value) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    if let Some(players) = state["players"].as_object() {
        for (name, entry) in players {
            let mut balances = serde_json::Map::new();
            if let Some(map) = entry["balances"].as_object() {
                for (currency, amount) in map {
                    if amount.as_i64() != Some(0) {
                        balances.insert(currency.clone(), amount.clone());
                    }
                }
            }
            out.insert(
                name.clone(),
                serde_json::json!({
                    "points": entry["points"].as_i64().unwrap_or(0),
                    "balances": balances,
                    "badges": entry.get("badges").cloned().unwrap_or(Value::Array(vec![])),
                    "hunts": entry.get("hunts").cloned().unwrap_or(Value::Object(Default::default())),
                }),
            );
        }
    }
    out
}

/// An open `GET /v1/stream` connection that the test reads only when it
/// wants to (or never: a stalled client).
pub struct SseClient {
    pub stream: TcpStream,
}

impl SseClient {
    pub fn open(port: u16, query: &str) -> io::Result<SseClient> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let head = format!(
            "GET /v1/stream{query} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(head.as_bytes())?;
        Ok(SseClient { stream })
    }

    /// Reads until `needle` appears in what was read, at most `limit` bytes
    /// or until `timeout`; returns (found, bytes read).
    pub fn read_until(&mut self, needle: &[u8], limit: usize, timeout: Duration) -> (bool, usize) {
        let deadline = Instant::now() + timeout;
        let mut seen: Vec<u8> = Vec::new();
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(200)));
        while total < limit && Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(needle.len()).any(|w| w == needle) {
                        return (true, total);
                    }
                    // Keep only a tail long enough to catch a needle split
                    // across reads.
                    if seen.len() > needle.len() * 2 + 4096 {
                        seen.drain(..seen.len() - needle.len() - 1);
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        (false, total)
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
