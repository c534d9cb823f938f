//! `/metrics` in the Prometheus/OpenMetrics text format. One registry per
//! server (no global recorder), so servers in parallel tests stay apart.
//! Names follow namespace_name_unit; counters get `_total` from the encoder.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set of per-source grant counts: `source="rule:first_login"`.
pub type SourceLabel = [(&'static str, String); 1];

pub struct Metrics {
    registry: Registry,
    pub events_accepted: Counter,
    pub events_duplicate: Counter,
    pub events_rejected: Counter,
    /// Rejected events by reason (`veltrix_core::rejection_reason`).
    pub rejected_by_reason: Family<SourceLabel, Counter>,
    pub spends: Counter,
    /// Requests answered 429 because the engine queue was full.
    pub overloaded: Counter,
    /// Grants made since start, by source (rule, hunt stage, completion…).
    pub grants: Family<SourceLabel, Counter>,
    /// fsync (`sync_data`) time of the log.
    pub fsync_seconds: Histogram,
    /// Ingest requests from arrival to the durable acknowledgement.
    pub ingest_seconds: Histogram,
    /// Reads (`GET /v1/…` but the live stream) from the parsed request
    /// head to the response, as the server sees them: clients add the
    /// network and their own scheduling.
    pub read_seconds: Histogram,
    /// Time a command waited in the engine queue (processing lag).
    pub queue_wait_seconds: Histogram,
    /// Commands waiting in the engine queue.
    pub queue_depth: Gauge,
    /// Events in the ingest commands waiting in the engine queue
    /// (processing lag in events).
    pub queue_events: Gauge,
    /// Clients connected to `GET /v1/stream` (set when scraped).
    pub stream_clients: Gauge,
    /// Highest log seq assigned.
    pub last_seq: Gauge,
    /// Snapshots written since start.
    pub snapshots: Counter,
    /// Configuration switches applied by `POST /v1/config` since start.
    pub config_switches: Counter,
    /// Time the snapshot thread spent encoding each snapshot.
    pub snapshot_encode_seconds: Histogram,
    /// Time from handing a snapshot over to it being durable.
    pub snapshot_seconds: Histogram,
    /// Bytes written to snapshot files (pieces unchanged since a recent
    /// snapshot are referred to, not written).
    pub snapshot_written_bytes: Counter,
    /// Times the engine thread reopened the log after a full disk.
    pub log_recoveries: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("veltrix");
        let metrics = Metrics {
            events_accepted: Counter::default(),
            events_duplicate: Counter::default(),
            events_rejected: Counter::default(),
            rejected_by_reason: Family::default(),
            spends: Counter::default(),
            overloaded: Counter::default(),
            grants: Family::default(),
            // 10 µs .. ~10 s
            fsync_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 21)),
            ingest_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 19)),
            // 20 µs to ~1.3 s in steps of 1.5×, fine enough to tell a 2 ms
            // read target.
            read_seconds: Histogram::new(exponential_buckets(0.000_02, 1.5, 28)),
            queue_wait_seconds: Histogram::new(exponential_buckets(0.000_001, 2.0, 24)),
            queue_depth: Gauge::default(),
            queue_events: Gauge::default(),
            stream_clients: Gauge::default(),
            last_seq: Gauge::default(),
            snapshots: Counter::default(),
            config_switches: Counter::default(),
            log_recoveries: Counter::default(),
            snapshot_encode_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
            snapshot_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            snapshot_written_bytes: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_accepted",
            "Events accepted (new and valid) since start",
            metrics.events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Duplicate events (id already accepted) since start",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Rejected events (failed validation) since start",
            metrics.events_rejected.clone(),
        );
        registry.register(
            "events_rejected_by_reason",
            "Rejected events since start, by reason (malformed_json, unknown_event_type, missing_field, unknown_field, duplicate_key, invalid_value)",
            metrics.rejected_by_reason.clone(),
        );
        registry.register(
            "spends",
            "Spends applied since start",
            metrics.spends.clone(),
        );
        registry.register(
            "requests_overloaded",
            "Requests answered 429 because the engine queue was full",
            metrics.overloaded.clone(),
        );
        registry.register(
            "log_recoveries",
            "Times the log was reopened and the state rebuilt after the disk was full",
            metrics.log_recoveries.clone(),
        );
        registry.register(
            "grants",
            "Grants made since start, by source",
            metrics.grants.clone(),
        );
        registry.register(
            "log_fsync_seconds",
            "Time of each fsync of the log",
            metrics.fsync_seconds.clone(),
        );
        registry.register(
            "ingest_request_seconds",
            "Ingest requests from arrival to the durable acknowledgement",
            metrics.ingest_seconds.clone(),
        );
        registry.register(
            "read_request_seconds",
            "Reads (GET /v1/..., not the stream) from the request head to the response",
            metrics.read_seconds.clone(),
        );
        registry.register(
            "engine_queue_wait_seconds",
            "Time commands waited in the engine queue",
            metrics.queue_wait_seconds.clone(),
        );
        registry.register(
            "engine_queue_depth",
            "Commands waiting in the engine queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "log_last_seq",
            "Highest log sequence number assigned",
            metrics.last_seq.clone(),
        );
        registry.register(
            "snapshots",
            "Snapshots written since start",
            metrics.snapshots.clone(),
        );
        registry.register(
            "config_switches",
            "Configuration switches applied by POST /v1/config since start",
            metrics.config_switches.clone(),
        );
        registry.register(
            "engine_queue_events",
            "Events in the ingest requests waiting in the engine queue (processing lag in events)",
            metrics.queue_events.clone(),
        );
        registry.register(
            "stream_clients",
            "Clients connected to the live stream (GET /v1/stream)",
            metrics.stream_clients.clone(),
        );
        registry.register(
            "snapshot_encode_seconds",
            "Time the snapshot thread spent encoding each snapshot",
            metrics.snapshot_encode_seconds.clone(),
        );
        registry.register(
            "snapshot_seconds",
            "Time from handing a snapshot to the snapshot thread to it being durable (encoding, waiting for the log, writing)",
            metrics.snapshot_seconds.clone(),
        );
        registry.register(
            "snapshot_written_bytes",
            "Bytes written to snapshot files since start (pieces unchanged since a recent snapshot are referred to, not written again)",
            metrics.snapshot_written_bytes.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Invariant: writing into a String never fails.
        encode(&mut out, &self.registry).expect("metrics encode");
        out
    }
}
