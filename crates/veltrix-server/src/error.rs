//! The one error shape of the HTTP API:
//! `{"error": {"code", "message", "details"}}` with a fitting status, and the
//! server's start-up errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer. `code` is a stable machine-readable word; `message` is
/// for people.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for an unknown name, with a did-you-mean among `candidates`.
    pub fn not_found<'a>(
        what: &str,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> ApiError {
        let suggestion = veltrix_config::did_you_mean(name, candidates);
        let message = match &suggestion {
            Some(s) => format!("unknown {what} \"{name}\"; {s}"),
            None => format!("unknown {what} \"{name}\""),
        };
        let code = match what {
            "player" => "unknown_player",
            "hunt" => "unknown_hunt",
            "leaderboard" => "unknown_leaderboard",
            "currency" => "unknown_currency",
            "view" => "unknown_view",
            _ => "not_found",
        };
        let status = if what == "currency" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::NOT_FOUND
        };
        ApiError::new(status, code, message).with_details(json!({ "suggestion": suggestion }))
    }

    /// The engine queue is full: the only backpressure point.
    pub fn overloaded() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "the engine is behind; retry after the time in Retry-After",
        )
    }

    /// The log failed (or the server is stopping): no write can be made durable.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the log in {dir}: {source}")]
    Log {
        dir: String,
        #[source]
        source: veltrix_log::LogError,
    },
    #[error("{0} holds no log (no wal/ directory); is this a Veltrix data directory?")]
    NoLog(String),
    #[error(
        "{0} is in use by a running Veltrix server (it holds the LOCK file); stop the server first, or copy the data directory (cp -r) and run on the copy"
    )]
    InUse(String),
    #[error("cannot read the snapshots: {0}")]
    Snapshot(#[source] veltrix_log::LogError),
    #[error(
        "the log ends at seq {log_last_seq} but the latest snapshot covers up to seq {snapshot_seq}: log data is missing (a deleted or truncated segment?). Restore the missing wal/ segments, or move the snapshots away to start from the log alone"
    )]
    LogBehindSnapshot {
        snapshot_seq: u64,
        log_last_seq: u64,
    },
    #[error(
        "cannot rebuild from seq {from}: the log starts at seq {first} (older segments were retired after a snapshot); a rebuild from the log alone is impossible, start from the snapshots"
    )]
    Retired { from: u64, first: u64 },
    #[error(
        "cannot start: no snapshot is usable ({}), and the log starts at seq {first} (older segments were retired after snapshots), so the state cannot be rebuilt from the log alone. Restore the snapshot files named from a backup, or start from a copy of the data directory taken before the damage",
        skipped.join("; ")
    )]
    NoUsableSnapshot { skipped: Vec<String>, first: u64 },
    #[error(
        "cannot start: {why}, but the log starts at seq {first} (older segments were retired after snapshots), so the whole log cannot be re-evaluated. Start with the configuration the snapshot was taken with (the same files, given by the same path: the version hashes file names too)"
    )]
    SnapshotUnusable { why: String, first: u64 },
    #[error(
        "cannot apply the start-up configuration (version {startup}) over the configuration the log has in force (version {active}): {message}; start with the active configuration's files, or change the state first"
    )]
    StartupSwitchRefused {
        startup: String,
        active: String,
        message: String,
    },
    #[error("cannot replay the log: record at seq {seq}: {message}")]
    Replay { seq: u64, message: String },
    #[error(
        "refusing to listen on {0}: no API keys are configured ([[server.api_keys]]), so the server only binds a loopback address (127.0.0.1, ::1 or localhost)"
    )]
    NotLoopback(String),
    #[error("invalid listen address {0:?}: {1}")]
    BadListen(String, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
