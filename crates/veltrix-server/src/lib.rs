//! The Veltrix HTTP server.
//!
//! One engine thread owns ingest, the engine and the log handle (see
//! [`engine`]); axum handlers talk to it over a bounded channel and answer
//! writes only once the log has fsync'd them. [`Server::open`] replays the
//! log into a fresh engine; [`Server::router`] gives the axum `Router` (used
//! in-process by the tests); [`run`] serves it on an already-bound listener
//! until a shutdown future completes; [`serve`] is what `veltrix serve` calls.
//!
//! Routes, durability and read-your-writes are described in `docs/SERVER.md`.

pub mod auth;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod priority;
pub mod rebuild;
pub mod record;
pub mod routes;
pub mod snapshots;
pub mod stream;
pub mod warming;

pub use auth::{hash_hex as api_key_hash, new_api_key};
pub use engine::{Command, Core, Handle};
pub use error::{ApiError, ServerError};
pub use rebuild::{Rebuilt, Source, rebuild};
/// The log crate, for tools that read a data directory through the server.
pub use veltrix_log;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use veltrix_core::Plan;
use veltrix_log::{Log, LogOptions, Recovery, SnapshotOptions, SnapshotStore, Storage};

/// Default request body limit (`--max-body`).
pub const DEFAULT_BODY_LIMIT: usize = 16 << 20;
/// Default engine queue capacity, in commands.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default listen address when the configuration gives none.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
/// Default number of log records between snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100_000;
pub use snapshots::DEFAULT_PACING as DEFAULT_SNAPSHOT_PACING;
/// Default number of snapshots kept.
pub const DEFAULT_SNAPSHOT_KEEP: usize = 3;
/// Default data directory when the configuration gives none.
pub const DEFAULT_DATA_DIR: &str = "veltrix-data";

/// How to open a server.
#[derive(Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    /// Engine partitions (results do not depend on it).
    pub partitions: usize,
    /// Commands the engine queue holds before handlers get 429.
    pub queue_capacity: usize,
    /// Largest request body, in bytes (413 beyond it).
    pub body_limit: usize,
    /// Most events in one ingest request (413 beyond it).
    pub max_events_per_request: usize,
    /// Log tuning. `max_record_bytes` and `queue_bytes` are raised to fit
    /// `body_limit` (see [`ServerOptions::log_options`]).
    pub log: LogOptions,
    /// Storage for the log (tests inject faults); `None` is the file system.
    pub storage: Option<Arc<dyn Storage>>,
    /// Log records between snapshots (also one at graceful shutdown);
    /// `None` takes no snapshots (start-up still uses existing ones).
    pub snapshot_every: Option<u64>,
    /// A snapshot starts no sooner than this many times the previous
    /// snapshot's duration after the previous one started (1: as soon as
    /// `snapshot_every` records allow). See `snapshots` for why.
    pub snapshot_pacing: u32,
    /// Snapshots kept; log segments older than the oldest kept one are
    /// deleted after each snapshot.
    pub snapshot_keep: usize,
    /// The start-up configuration's sources (file name, text; merge order).
    /// Only used when `POST /v1/config` switched the configuration in the
    /// log: a start-up configuration whose version the log never had in
    /// force is then applied as a new switch at the end of the log (as if
    /// POSTed). `None` (the default): the log's configuration stays in
    /// force whatever the start-up file.
    pub config_sources: Option<Vec<(String, String)>>,
}

impl ServerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerOptions {
        ServerOptions {
            data_dir: data_dir.into(),
            partitions: 1,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            body_limit: DEFAULT_BODY_LIMIT,
            max_events_per_request: 100_000,
            log: LogOptions::default(),
            storage: None,
            snapshot_every: Some(DEFAULT_SNAPSHOT_EVERY),
            snapshot_pacing: snapshots::DEFAULT_PACING,
            snapshot_keep: DEFAULT_SNAPSHOT_KEEP,
            config_sources: None,
        }
    }

    /// The log options actually used: one request's records must fit the
    /// log's limits, because the engine applies them before appending and a
    /// refused append would leave state ahead of the log. An event's record
    /// can be larger than its JSON (numbers take 8 bytes), and rejection
    /// messages are longer than a tiny malformed line, hence the margins.
    pub fn log_options(&self) -> LogOptions {
        let mut log = self.log.clone();
        let record = (self.body_limit as u64)
            .saturating_mul(2)
            .min(u32::MAX as u64) as u32;
        log.max_record_bytes = log.max_record_bytes.max(record);
        log.queue_bytes = log
            .queue_bytes
            .max((self.body_limit as u64).saturating_mul(8))
            .max(u64::from(log.max_record_bytes));
        log
    }
}

/// An open server: the engine thread, its channel and the router settings.
/// Dropping it stops the engine thread after the commands queued so far and
/// closes the log.
pub struct Server {
    handle: Handle,
    /// Set to true when the server stops: ends the live streams, which would
    /// otherwise keep a graceful shutdown waiting forever.
    closing: tokio::sync::watch::Sender<bool>,
    app: routes::App,
    thread: Option<JoinHandle<()>>,
    /// What opening the log found (records, torn tail).
    pub recovery: Recovery,
    /// The snapshot start-up began from, if any.
    pub snapshot_seq: Option<u64>,
    /// Log records replayed at start-up (after the snapshot).
    pub records_replayed: u64,
    /// Why snapshots were passed over at start-up (also logged as warnings).
    pub warnings: Vec<String>,
    /// Snapshot progress (for tests and operators); `None` without snapshots.
    pub snapshot_status: Option<Arc<snapshots::Status>>,
}

impl Server {
    /// Opens (or creates) the log under `data_dir`, replays every record
    /// into a fresh engine and starts the engine thread.
    pub fn open(plan: Arc<Plan>, options: ServerOptions) -> Result<Server, ServerError> {
        let metrics = Arc::new(metrics::Metrics::new());
        let storage = options
            .storage
            .clone()
            .unwrap_or_else(|| Arc::new(veltrix_log::FsStorage));
        let keys = auth::Keys::new(&plan.config.server.api_keys);
        let opened = open_state(plan.clone(), &options, storage.clone(), &metrics)?;
        let log_options = options.log_options();
        let shared = Arc::new(engine::Shared::new(
            log_options.queue_capacity,
            log_options.queue_bytes,
            metrics,
            opened.core.plan.clone(),
        ));
        let log = Arc::new(opened.log);
        let (tx, rx) = std::sync::mpsc::sync_channel(options.queue_capacity.max(1));
        let snapshot_status = options
            .snapshot_every
            .map(|_| Arc::new(snapshots::Status::default()));
        let snapshotter = match (options.snapshot_every, &snapshot_status) {
            (Some(every), Some(status)) => Some(snapshots::Snapshotter::start(
                opened.store,
                log.clone(),
                shared.clone(),
                (every, options.snapshot_pacing),
                opened.snapshot_seq.unwrap_or(0),
                Some(status.clone()),
            )?),
            _ => None,
        };
        let core = Arc::new(parking_lot::RwLock::new(opened.core));
        let reopen = engine::Reopen {
            plan,
            options: options.clone(),
            storage,
            snapshot_status: snapshot_status.clone(),
        };
        let thread_shared = shared.clone();
        let thread_core = core.clone();
        let thread = std::thread::Builder::new()
            .name("veltrix-engine".into())
            .spawn(move || engine::run(thread_core, log, rx, thread_shared, snapshotter, reopen))?;
        let handle = Handle::new(tx, options.queue_capacity.max(1), shared, core);
        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        let app = routes::App {
            closing: closing_rx,
            handle: handle.clone(),
            body_limit: options.body_limit,
            body_budget: routes::body_budget(options.body_limit),
            max_events_per_request: options.max_events_per_request,
            keys,
        };
        Ok(Server {
            handle,
            closing,
            app,
            thread: Some(thread),
            recovery: opened.recovery,
            snapshot_seq: opened.snapshot_seq,
            records_replayed: opened.records_replayed,
            warnings: opened.warnings,
            snapshot_status,
        })
    }

    pub fn router(&self) -> axum::Router {
        // The request span names the path only: a query string may carry
        // secrets (a key sent as `?key=`, which is refused but would then
        // sit in every debug log).
        routes::router(self.app.clone()).layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        version = ?request.version(),
                    )
                },
            ),
        )
    }

    /// The channel to the engine thread (for embedding and tests).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the engine thread after the commands queued so far and closes
    /// the log (waiting for its last fsync).
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Ends every live stream (`GET /v1/stream`); called when shutting down.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    fn stop(&mut self) {
        self.close_streams();
        if let Some(thread) = self.thread.take() {
            self.handle.send_blocking(Command::Shutdown);
            if thread.join().is_err() {
                tracing::error!("the engine thread panicked");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The log holds a `POST /v1/config` switch and the start-up configuration
/// is not the one in force. A start-up configuration the log already had
/// in force (typically the file the server was first started with) is
/// outdated: the log's configuration stays, with a warning. Another one,
/// when its sources are known ([`ServerOptions::config_sources`]), is
/// applied as a new switch at the end of the log, as `POST /v1/config`
/// would (refused → start-up error); without its sources the log's
/// configuration stays, with a warning.
/// The data directory opened and the state rebuilt: what start-up and the
/// engine thread's recovery after a full disk both need.
pub(crate) struct Opened {
    pub log: Log,
    pub recovery: Recovery,
    pub store: SnapshotStore,
    pub core: engine::Core,
    pub snapshot_seq: Option<u64>,
    pub records_replayed: u64,
    pub warnings: Vec<String>,
}

/// Opens the log (recovery cuts a torn tail) and the snapshot store, and
/// rebuilds the state from the newest usable snapshot and the log after it;
/// records the start-up configuration when it differs from the log's.
pub(crate) fn open_state(
    plan: Arc<Plan>,
    options: &ServerOptions,
    storage: Arc<dyn Storage>,
    metrics: &metrics::Metrics,
) -> Result<Opened, ServerError> {
    let mut log_options = options.log_options();
    let fsync = metrics.fsync_seconds.clone();
    let previous = log_options.sync_observer.take();
    log_options.sync_observer = Some(Arc::new(move |took: std::time::Duration| {
        fsync.observe(took.as_secs_f64());
        if let Some(previous) = &previous {
            previous(took);
        }
    }));
    let (log, recovery) =
        Log::open_with(storage.clone(), &options.data_dir, log_options).map_err(|source| {
            ServerError::Log {
                dir: options.data_dir.display().to_string(),
                source,
            }
        })?;
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!(
            segment = %torn.segment.display(),
            offset = torn.offset,
            bytes_cut = torn.bytes_cut,
            reason = %torn.reason,
            "cut a torn tail off the log (an unacknowledged write interrupted by a crash)"
        );
    }
    let store = SnapshotStore::open_with(
        storage,
        &options.data_dir,
        SnapshotOptions {
            keep: options.snapshot_keep.max(1),
        },
    )
    .map_err(ServerError::Snapshot)?;
    let started = std::time::Instant::now();
    let startup_version = plan.config.version.clone();
    let rebuilt = rebuild::rebuild(
        plan,
        options.partitions.max(1),
        &log,
        &store,
        Source::LatestSnapshot,
    )?;
    tracing::info!(
        snapshot_seq = rebuilt.snapshot_seq,
        records_replayed = rebuilt.records_replayed,
        last_seq = recovery.last_seq,
        replay_ms = started.elapsed().as_millis() as u64,
        "rebuilt the state"
    );
    let snapshot_seq = rebuilt.snapshot_seq;
    let records_replayed = rebuilt.records_replayed;
    let warnings = rebuilt.warnings();
    let mut core = rebuilt.core;
    let mut last_config_version = rebuilt.last_config_version;
    if core.config_sources.is_some() && core.plan.config.version != startup_version {
        reconcile_startup_config(&log, &mut core, &startup_version, options)?;
        last_config_version = Some(core.plan.config.version.clone());
    }
    record_config_version(&log, &mut core, last_config_version.as_deref())?;
    Ok(Opened {
        log,
        recovery,
        store,
        core,
        snapshot_seq,
        records_replayed,
        warnings,
    })
}

fn reconcile_startup_config(
    log: &Log,
    core: &mut Core,
    startup_version: &str,
    options: &ServerOptions,
) -> Result<(), ServerError> {
    let active = core.plan.config.version.clone();
    let known = core
        .config_history
        .iter()
        .any(|h| h.version == startup_version);
    let sources = match (&options.config_sources, known) {
        (Some(sources), false) => sources,
        _ => {
            tracing::warn!(
                active_version = %active,
                startup_version = %startup_version,
                "the configuration in force is the one POST /v1/config applied last (recorded in the log), not the start-up configuration, which only evaluated the records before the first switch; POST a configuration to /v1/config to change it"
            );
            return Ok(());
        }
    };
    let refused = |message: String| ServerError::StartupSwitchRefused {
        startup: startup_version.to_string(),
        active: active.clone(),
        message,
    };
    let plan =
        rebuild::plan_from_sources(sources, core.plan.puzzle_secret.clone()).map_err(&refused)?;
    if plan.config.version != startup_version {
        return Err(refused(format!(
            "its sources compile to version {}",
            plan.config.version
        )));
    }
    let report = veltrix_core::switch_config(&mut core.ingest, &mut core.engine, plan)
        .map_err(|e| refused(e.to_string()))?;
    let seq = core.ingest.next_seq;
    let payload = record::encode(&record::LogRecord::ConfigSwitch {
        version: startup_version.to_string(),
        sources: sources.clone(),
    });
    log.append_sync(vec![payload])
        .map_err(|e| ServerError::Replay {
            seq,
            message: format!("cannot record the configuration switch: {e}"),
        })?;
    core.ingest.next_seq += 1;
    core.plan = report.plan.clone();
    core.config_sources = Some(sources.clone());
    core.config_history.push(engine::ConfigVersion {
        version: startup_version.to_string(),
        seq,
    });
    tracing::info!(
        from = %active,
        to = %startup_version,
        seq,
        "applied the start-up configuration as a configuration switch"
    );
    Ok(())
}

/// Appends a `Config` record when the active configuration version is not
/// the last one the log recorded, so the log says from which seq on records
/// were evaluated with it.
fn record_config_version(
    log: &Log,
    core: &mut Core,
    last: Option<&str>,
) -> Result<(), ServerError> {
    let active = core.plan.config.version.clone();
    if last == Some(active.as_str()) {
        return Ok(());
    }
    if let Some(old) = last {
        tracing::warn!(
            old_version = %old,
            new_version = %active,
            "the configuration changed since the log was written: every record was re-evaluated with the new one"
        );
    }
    let seq = core.ingest.next_seq;
    core.config_history.push(engine::ConfigVersion {
        version: active.clone(),
        seq,
    });
    let payload = record::encode(&record::LogRecord::Config { version: active });
    log.append_sync(vec![payload])
        .map_err(|e| ServerError::Replay {
            seq,
            message: format!("cannot record the configuration version: {e}"),
        })?;
    core.ingest.next_seq += 1;
    Ok(())
}

/// Serves `server` on `listener` until `shutdown` completes, then stops
/// accepting, lets open requests finish, stops the engine and closes the log.
pub async fn run(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = server.router();
    let closing = server.closing.clone();
    let shutdown = async move {
        shutdown.await;
        // Stream responses never end on their own; end them so the
        // graceful shutdown below does not wait for them.
        closing.send_replace(true);
    };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    tracing::info!("stopped accepting requests; closing the log");
    // Joining blocks: do it off the async worker threads.
    let _ = tokio::task::spawn_blocking(move || server.shutdown()).await;
    served
}

/// Without API keys the server must not be reachable from other machines:
/// only loopback addresses are accepted.
pub fn check_loopback(listen: &str) -> Result<SocketAddr, ServerError> {
    check_listen(listen, false)
}

/// Resolves `listen`; without API keys (`has_keys` false) every address it
/// resolves to must be a loopback address.
pub fn check_listen(listen: &str, has_keys: bool) -> Result<SocketAddr, ServerError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| ServerError::BadListen(listen.to_string(), e.to_string()))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(ServerError::BadListen(
            listen.to_string(),
            "resolves to no address".into(),
        ));
    };
    if has_keys || addrs.iter().all(|a| a.ip().is_loopback()) {
        Ok(first)
    } else {
        Err(ServerError::NotLoopback(listen.to_string()))
    }
}

/// Settings of `veltrix serve`.
pub struct ServeSettings {
    pub listen: String,
    pub options: ServerOptions,
}

/// The async runtime that serves requests. Its threads ask the scheduler for
/// short time slices ([`priority::request_short_slice`]) so that a read
/// arriving while the engine, a parser or the snapshot encoder is busy runs
/// without waiting out their slices; threads that parse large batches give
/// theirs back (see `routes::post_events`).
pub fn request_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| {
            priority::request_short_slice(REQUEST_SLICE);
        })
        .build()
}

/// The time slice request threads ask for (the kernel's floor is 0.1 ms; a
/// read takes well under that inside the server).
pub const REQUEST_SLICE: Duration = Duration::from_micros(200);

/// Runs the server until ctrl-c or SIGTERM: what `veltrix serve` does.
/// With `[[server.api_keys]]` configured it may listen on any address;
/// without, loopback only, with a warning.
pub fn serve(plan: Arc<Plan>, settings: ServeSettings) -> Result<(), ServerError> {
    let keys = &plan.config.server.api_keys;
    let addr = check_listen(&settings.listen, !keys.is_empty())?;
    if keys.is_empty() {
        tracing::warn!(
            "no API keys configured ([[server.api_keys]]): every route is open, so the server listens on loopback only"
        );
    } else {
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        tracing::info!(keys = ?names, "API keys configured: routes need Authorization: Bearer <key>");
    }
    let runtime = request_runtime()?;
    runtime.block_on(async move {
        let server = Server::open(plan, settings.options)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(listen = %listener.local_addr()?, "veltrix server listening");
        run(listener, server, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on ctrl-c or (Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Structured logs to standard error: `RUST_LOG`-style filter (default
/// `info`), JSON lines when `json` is set.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
