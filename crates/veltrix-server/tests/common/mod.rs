//! Helpers shared by the server's admin and configuration tests: a server on
//! a configuration given as text, and one JSON request through its router.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use veltrix_core::Plan;
use veltrix_server::{Server, ServerOptions};

pub fn plan(text: &str) -> Arc<Plan> {
    let config = veltrix_config::compile(&[veltrix_config::Source::new("veltrix.toml", text)])
        .expect("valid");
    Arc::new(Plan::new(Arc::new(config)))
}

/// A server on `dir`; with `snapshots`, one is taken at shutdown only.
pub fn open(dir: &Path, text: &str, snapshots: bool) -> Server {
    let mut options = ServerOptions::new(dir);
    options.snapshot_every = snapshots.then_some(1_000_000);
    Server::open(plan(text), options).unwrap()
}

/// Sends one request (with an optional `(content type, body)`); answers
/// the status and the JSON body, failing the test when it is not JSON.
pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some((content_type, text)) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            Body::from(text.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

/// A writer that keeps what a log subscriber writes.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything logged so far by any test of this test binary: one global
/// subscriber (without colours) at `level`, set by the first call.
pub fn global_logs(level: tracing::Level) -> String {
    static CAPTURE: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(level)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            captured
        })
        .text()
}
