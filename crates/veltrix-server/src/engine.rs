//! The engine thread: the only writer of ingest (dedup, seqs), the engine
//! and the log handle. HTTP handlers send writes through a bounded channel
//! of [`Command`]s, so writes are applied in one order and a full channel is
//! the server's single backpressure point (429).
//!
//! Writes are applied to the engine at once (under the write lock of the
//! state's `RwLock`) and appended to the log in one `append` per request;
//! the reply is sent from the log's `done` callback, i.e. only once the
//! records are fsync'd (group commit). Reads take the read lock on the
//! handler's thread ([`Handle::read`]); since writes are applied before
//! they are acknowledged, a read after an acknowledgement sees the write.
//! After a full disk the thread reopens the log by itself ([`run`]).

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::record::{self, DeadLetterRecord, LogRecord};
use crate::snapshots::Snapshotter;
use crate::stream::{StreamMessage, StreamSender};
use crate::warming::{RecentPlayers, Warming};
use axum::body::Bytes;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use veltrix_core::cow::CowVec;
use veltrix_core::engine::{PlayerHashes, PlayerSlot, id_key, submitted_id};
use veltrix_core::grant::Spend;
use veltrix_core::partition::Effect;
use veltrix_core::player::LedgerEntry;
use veltrix_core::{Engine, Ingest, Plan, Submission};
use veltrix_log::{Log, LogError};

/// Everything a read sees: the plan, ingest (counts, dead letters) and the
/// engine, as of every command applied so far.
#[derive(Clone)]
pub struct Core {
    pub plan: Arc<Plan>,
    pub ingest: Ingest,
    pub engine: Engine,
    /// The submitted bytes of each dead letter, aligned with
    /// `ingest.rejected` (same length, same order), so that
    /// `POST /v1/deadletters/replay` can submit them again. `None` for dead
    /// letters logged before bodies were kept (old `Tally` records).
    pub dead_letter_bodies: CowVec<Option<Vec<u8>>>,
    /// The sources (file name, text) of the active configuration when a
    /// `ConfigSwitch` record (`POST /v1/config`) set it; `None` while the
    /// start-up configuration is in force. Stored in snapshots, so a
    /// snapshot taken after a switch loads with the right plan.
    pub config_sources: Option<Vec<(String, String)>>,
    /// Every configuration version the log recorded (`Config` records at
    /// start-up, `ConfigSwitch` records), with the seq it took effect at,
    /// oldest first. Kept in snapshots.
    pub config_history: Vec<ConfigVersion>,
}

impl Core {
    /// For the snapshot thread, on its copy: see `Engine::let_go`.
    pub fn let_go(&mut self, players: &[veltrix_core::engine::PlayerSlot]) {
        self.engine.let_go(players);
        self.ingest.let_go();
        self.dead_letter_bodies.unshare_last_chunk();
    }

    /// What a snapshot encodes, sharing storage with `self` (see
    /// `Engine::snapshot_copy`): the copy cannot apply records.
    pub fn snapshot_copy(&self) -> Core {
        Core {
            plan: self.plan.clone(),
            ingest: self.ingest.snapshot_copy(),
            engine: self.engine.snapshot_copy(),
            dead_letter_bodies: self.dead_letter_bodies.clone(),
            config_sources: self.config_sources.clone(),
            config_history: self.config_history.clone(),
        }
    }
}

/// One entry of [`Core::config_history`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConfigVersion {
    pub version: String,
    /// The log seq of the record; 0 when unknown (history taken over from
    /// a snapshot written before histories were kept).
    pub seq: u64,
}

/// Which dead letters `POST /v1/deadletters/replay` re-submits.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    All,
    /// Every dead letter with one of these event ids.
    Ids(Vec<String>),
    /// 0-based positions in the dead-letter list.
    Indexes(Vec<usize>),
}

/// A closure run on the engine thread, in queue order, with the current
/// state (`/readyz` uses a no-op one to see whether the queue has room;
/// tests use it to hold the engine thread). Reads do not use it: see
/// [`Handle::read`].
pub type ReadFn = Box<dyn FnOnce(&Core) + Send>;

/// What handlers send to the engine thread.
pub enum Command {
    Ingest {
        items: Vec<Item>,
        /// The items parsed and validated by the handler, when it did.
        parsed: Option<Parsed>,
        reply: oneshot::Sender<Result<IngestReply, ApiError>>,
    },
    Spend {
        player: String,
        request: SpendRequest,
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    ReplayDeadLetters {
        selection: Selection,
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    /// `POST /v1/config`: switch to a compiled configuration.
    ApplyConfig {
        config: Arc<veltrix_config::Config>,
        sources: Vec<(String, String)>,
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    Read(ReadFn),
    /// Stop after the commands queued before it; close the log.
    Shutdown,
}

impl Command {
    /// The events this command submits (for the queue's lag in events).
    fn events(&self) -> i64 {
        match self {
            Command::Ingest { items, .. } => items.len() as i64,
            _ => 0,
        }
    }
}

/// One submitted event: its place in the request and its bytes (a slice of
/// the request body, not a copy).
#[derive(Clone, Debug)]
pub struct Item {
    /// 0-based position among the request's events.
    pub index: usize,
    /// 1-based line for NDJSON bodies.
    pub line: Option<u64>,
    pub bytes: Bytes,
}

/// A request's events parsed and validated on the handler's thread, ahead
/// of the engine thread (which only deduplicates, sequences and applies).
/// Used only while `plan` is still the plan in force; after a configuration
/// switch the engine thread validates the bytes again.
pub struct Parsed {
    pub plan: Arc<Plan>,
    /// The acceptance time that filled a missing `ts`.
    pub accept_time_ms: i64,
    /// One result per item, in order.
    pub results: Vec<Result<veltrix_core::Event, veltrix_core::EventError>>,
    /// The log record of each valid event (it needs no seq), aligned with
    /// `results`.
    pub records: Vec<Option<Vec<u8>>>,
    /// The dedup key of each submitted id (`veltrix_core::engine::id_key`),
    /// aligned with `results`.
    pub keys: Vec<Option<u128>>,
    /// The hashes of each valid event's player, aligned with `results`.
    pub players: Vec<Option<PlayerHashes>>,
}

impl Parsed {
    /// Parses and validates `items` against `plan`.
    pub fn new(plan: Arc<Plan>, items: &[Item]) -> Parsed {
        Self::parse(plan, items, false)
    }

    /// As [`Parsed::new`], yielding the CPU every [`YIELD_INTERVAL`]: for a
    /// thread of the blocking pool parsing a large batch (1,000 events took
    /// about 2 ms in a `perf sched` trace), so that a read woken on the same core does not wait out
    /// the parser's time slice. Never on the engine thread, which may hold
    /// the state's lock while it parses.
    pub fn new_yielding(plan: Arc<Plan>, items: &[Item]) -> Parsed {
        Self::parse(plan, items, true)
    }

    fn parse(plan: Arc<Plan>, items: &[Item], yielding: bool) -> Parsed {
        // The server may read the clock; the engine may not. The acceptance
        // time fills a missing `ts` and is written into the log, so replay
        // sees it.
        let accept_time_ms = jiff::Timestamp::now().as_millisecond();
        let mut results = Vec::with_capacity(items.len());
        let mut records = Vec::with_capacity(items.len());
        let mut keys = Vec::with_capacity(items.len());
        let mut players = Vec::with_capacity(items.len());
        let mut step_aside = crate::priority::StepAside::default();
        for (n, item) in items.iter().enumerate() {
            if yielding && n % YIELD_EVERY == 0 {
                step_aside.step();
            }
            let result = veltrix_core::parse_event(&plan.config, &item.bytes, accept_time_ms);
            records.push(
                result
                    .as_ref()
                    .ok()
                    .map(|event| record::encode_event(&plan.config, event)),
            );
            keys.push(submitted_id(&result).map(id_key));
            players.push(
                result
                    .as_ref()
                    .ok()
                    .map(|event| PlayerHashes::of(&event.player)),
            );
            results.push(result);
        }
        Parsed {
            plan,
            accept_time_ms,
            results,
            records,
            keys,
            players,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IngestReply {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<RejectedItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectedItem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub id: Option<String>,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendRequest {
    pub currency: String,
    pub amount: i64,
    pub key: String,
}

/// Longest spend key, in bytes (the same bound as event ids).
pub const MAX_SPEND_KEY_BYTES: usize = 128;
/// Rejections per `Tally` record, so one bad request never makes a huge record.
const REJECTIONS_PER_TALLY: usize = 1000;

/// State shared between handlers, the engine thread and the log's writer
/// thread.
pub struct Shared {
    /// Set when the log failed: state may hold writes that are not durable,
    /// so every later write is refused (507 when the disk is full, else
    /// 503) and `/readyz` says not ready until the state is rebuilt from the
    /// log: by the engine thread itself once space returns after a full
    /// disk, by a restart after any other failure.
    failed: AtomicBool,
    /// Why, while `failed` is set.
    failure: Mutex<Option<Failure>>,
    /// Set if the engine thread panicked (a bug): the state may be
    /// half-applied, so reads are refused too.
    engine_panicked: AtomicBool,
    /// Reads waiting for the state's lock: while there are any, the engine
    /// thread steps aside between chunks of a batch (see [`YIELD_EVERY`]).
    readers_waiting: AtomicUsize,
    /// The plan in force, for handlers that parse ahead of the engine
    /// thread: kept outside the state's lock so that reading it never waits
    /// for a command being applied. Set by the engine thread whenever
    /// `Core::plan` changes.
    plan: RwLock<Arc<Plan>>,
    /// Appends handed to the log and not yet answered: (requests, bytes).
    /// The engine thread waits while the log's queue could be full, because
    /// a refused append after the engine applied its records would leave
    /// state ahead of the log.
    inflight: Mutex<(usize, u64)>,
    room: Condvar,
    queue_capacity: usize,
    queue_bytes: u64,
    pub metrics: Arc<Metrics>,
    /// The live stream (`GET /v1/stream`); messages are published once
    /// their records are durable.
    pub stream: StreamSender,
}

impl Shared {
    pub fn new(
        queue_capacity: usize,
        queue_bytes: u64,
        metrics: Arc<Metrics>,
        plan: Arc<Plan>,
    ) -> Shared {
        Shared {
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            engine_panicked: AtomicBool::new(false),
            readers_waiting: AtomicUsize::new(0),
            plan: RwLock::new(plan),
            inflight: Mutex::new((0, 0)),
            room: Condvar::new(),
            queue_capacity,
            queue_bytes,
            metrics,
            stream: tokio::sync::broadcast::channel(crate::stream::DEFAULT_STREAM_CAPACITY).0,
        }
    }

    /// The plan in force (see `plan`).
    pub fn plan(&self) -> Arc<Plan> {
        self.plan.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_plan(&self, plan: &Arc<Plan>) {
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = plan.clone();
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Records the first failure of the log; later ones are its echoes.
    fn fail(&self, failure: Failure) {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            tracing::error!(
                error = %failure.message,
                no_space = failure.no_space,
                "the log failed; refusing writes (state may hold writes that were never acknowledged)"
            );
            *slot = Some(failure);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn fail_log(&self, error: &LogError) {
        self.fail(Failure::of(error));
    }

    fn fail_other(&self, why: &dyn std::fmt::Display) {
        self.fail(Failure {
            message: why.to_string(),
            no_space: false,
            recoverable: false,
        });
    }

    fn failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn clear_failure(&self) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.failed.store(false, Ordering::Release);
    }

    /// The answer to a write while the log is failed: 507 when the disk is
    /// full, else 503; both say what failed and what happens next.
    pub fn refusal(&self) -> ApiError {
        match self.failure() {
            Some(failure) if failure.no_space => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                format!(
                    "the disk holding the log is full ({}); writes are refused until space is freed, and the server resumes by itself within seconds after that",
                    failure.message
                ),
            ),
            Some(failure) if failure.recoverable => ApiError::unavailable(format!(
                "the log failed ({}); writes are refused while the server reopens it",
                failure.message
            )),
            Some(failure) => ApiError::unavailable(format!(
                "the log failed ({}); no write can be made durable until the server is restarted",
                failure.message
            )),
            None => stopped(),
        }
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, (usize, u64)> {
        // A poisoned lock only means a done callback panicked; the counts
        // are still consistent (updated in one statement).
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the log's queue has room for one more append of `bytes`.
    fn wait_for_room(&self, bytes: u64) {
        let mut inflight = self.inflight();
        while inflight.0 >= self.queue_capacity
            || (inflight.0 > 0 && inflight.1 + bytes > self.queue_bytes)
        {
            inflight = self.room.wait(inflight).unwrap_or_else(|e| e.into_inner());
        }
        inflight.0 += 1;
        inflight.1 += bytes;
    }

    fn release(&self, bytes: u64) {
        let mut inflight = self.inflight();
        inflight.0 -= 1;
        inflight.1 -= bytes;
        drop(inflight);
        self.room.notify_all();
    }
}

/// Why the log failed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub message: String,
    /// The disk was full.
    pub no_space: bool,
    /// The engine thread may reopen the log and go on by itself: only for a
    /// full disk seen by a write. After a failed fsync the kernel may have
    /// dropped pages it reported written, so only a restart (which reads
    /// the files from disk) may trust the log again.
    pub recoverable: bool,
}

impl Failure {
    fn of(error: &LogError) -> Failure {
        let cause = match error {
            LogError::Failed { cause } => cause.as_ref(),
            other => other,
        };
        let recoverable = matches!(cause, LogError::NoSpace { op, .. } if !op.contains("sync"));
        Failure {
            message: cause.to_string(),
            no_space: error.is_no_space(),
            recoverable,
        }
    }
}

/// The state, shared by the engine thread (the only writer) and readers.
/// `parking_lot` for `RwLockWriteGuard::bump`: the engine thread hands the
/// lock to waiting readers between chunks of a large request.
pub type SharedCore = Arc<parking_lot::RwLock<Core>>;

/// Events the engine thread applies between two looks at whether to step
/// aside: hand the state's lock to waiting reads and yield the CPU.
pub const YIELD_EVERY: usize = 100;

/// The engine thread steps aside at the first look after this much time
/// since it last did, and at every look while a read waits for the lock;
/// a thread parsing a large batch yields the CPU as often
/// ([`Parsed::new_yielding`]). Linux here runs without kernel preemption
/// and with a 4 ms tick, so a thread woken for a read (well under 0.1 ms of
/// work) on a busy core could otherwise wait out the busy thread's time
/// slice: in `perf sched` traces under the open-loop bench, the engine ran
/// 3.8 and 5.2 ms on a batch of 1,000 events, a parser about 2 ms.
/// Measured (docs/PERFORMANCE.md, session 5): stepping aside only for
/// reads already waiting on the lock left the read p99 at 3–5 ms; the
/// engine every 0.5 ms, 2.1–2.4 ms; engine and parsers every 0.5 ms,
/// 1.0–1.3 ms, with closed-loop throughput no lower. Stepping aside after
/// every 100 events regardless of time gave the CPU to the snapshot encoder
/// often enough to cost throughput.
pub const YIELD_INTERVAL: Duration = Duration::from_micros(500);

/// The handlers' side of the channel, and the state for reads.
#[derive(Clone)]
pub struct Handle {
    tx: SyncSender<(Instant, Command)>,
    /// Commands the queue holds at most.
    capacity: usize,
    core: SharedCore,
    pub shared: Arc<Shared>,
}

impl Handle {
    pub fn new(
        tx: SyncSender<(Instant, Command)>,
        capacity: usize,
        shared: Arc<Shared>,
        core: SharedCore,
    ) -> Handle {
        Handle {
            tx,
            capacity,
            core,
            shared,
        }
    }

    /// Refuses with 429 while the engine queue is full, before a handler
    /// spends time on a request whose command could not be queued. (The
    /// queue may fill between this check and the send; the send refuses
    /// then.)
    pub fn check_room(&self) -> Result<(), ApiError> {
        if self.shared.metrics.queue_depth.get() >= self.capacity as i64 {
            self.shared.metrics.overloaded.inc();
            return Err(ApiError::overloaded());
        }
        Ok(())
    }

    /// Queues a command without waiting: a full queue is 429, a stopped
    /// engine 503.
    pub fn send(&self, command: Command) -> Result<(), ApiError> {
        let events = command.events();
        match self.tx.try_send((Instant::now(), command)) {
            Ok(()) => {
                self.shared.metrics.queue_depth.inc();
                self.shared.metrics.queue_events.inc_by(events);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.shared.metrics.overloaded.inc();
                Err(ApiError::overloaded())
            }
            Err(TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }

    /// True when the engine queue has room: queues a no-op (which takes a
    /// slot only until the engine thread reaches it).
    pub fn queue_has_room(&self) -> Result<bool, ApiError> {
        match self
            .tx
            .try_send((Instant::now(), Command::Read(Box::new(|_| {}))))
        {
            Ok(()) => {
                self.shared.metrics.queue_depth.inc();
                Ok(true)
            }
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }

    /// Blocking send, for shutdown only (never from a handler).
    pub fn send_blocking(&self, command: Command) {
        let events = command.events();
        if self.tx.send((Instant::now(), command)).is_ok() {
            self.shared.metrics.queue_depth.inc();
            self.shared.metrics.queue_events.inc_by(events);
        }
    }

    /// Runs `read` on the current state, on the caller's thread. The engine
    /// thread holds the write lock for one command at a time, so a read
    /// waits at most for the command being applied, never for the queue.
    /// Every write is applied before it is acknowledged, so a read that
    /// starts after an acknowledgement sees that write.
    pub async fn read<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Core) -> T + Send + 'static,
    {
        // After a panic on the engine thread the state may be half-applied:
        // refuse rather than serve it.
        if self.shared.engine_panicked.load(Ordering::Acquire) {
            return Err(stopped());
        }
        let core = match self.core.try_read() {
            Some(core) => core,
            None => {
                let waiting = &self.shared.readers_waiting;
                waiting.fetch_add(1, Ordering::AcqRel);
                let core = self.core.read();
                waiting.fetch_sub(1, Ordering::AcqRel);
                core
            }
        };
        Ok(read(&core))
    }
}

fn stopped() -> ApiError {
    ApiError::unavailable("the engine stopped (server shutting down, or the log failed)")
}

/// How often the engine thread tries to reopen a log that failed because
/// the disk was full.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes the engine thread writes (and removes) to see whether space has
/// returned before it reopens a failed log.
const SPACE_PROBE_BYTES: usize = 1 << 20;

/// What the engine thread needs to reopen the data directory after the log
/// failed: the same inputs `Server::open` used.
pub struct Reopen {
    pub plan: Arc<Plan>,
    pub options: crate::ServerOptions,
    pub storage: Arc<dyn veltrix_log::Storage>,
    pub snapshot_status: Option<Arc<crate::snapshots::Status>>,
}

/// The engine thread's loop. Returns when told to shut down or when every
/// sender is gone, then takes a last snapshot (if one is configured and the
/// log has not failed), waits for it, and closes the log (which flushes and
/// answers every queued append).
///
/// While the log is failed because the disk filled up, it tries every
/// [`RECOVERY_INTERVAL`] to reopen the data directory (see
/// [`try_recover`]); writes are refused meanwhile and reads see the state
/// as it was.
pub fn run(
    core: SharedCore,
    log: Arc<Log>,
    rx: Receiver<(Instant, Command)>,
    shared: Arc<Shared>,
    snapshotter: Option<Snapshotter>,
    reopen: Reopen,
) {
    let _panicked = PanicFlag(shared.clone());
    let mut thread = EngineThread {
        core,
        log: Some(log),
        shared,
        snapshotter,
        reopen,
        recent: RecentPlayers::default(),
        warming: Warming::default(),
    };
    let metrics = thread.shared.metrics.clone();
    if let Some(log) = &thread.log {
        metrics.last_seq.set(log.last_seq() as i64);
    }
    let mut next_recovery = Instant::now();
    loop {
        let received = if thread.shared.is_failed() {
            match rx.recv_timeout(RECOVERY_INTERVAL) {
                Ok(received) => Some(received),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else if thread.warming.is_pending() {
            // Idle time goes to un-sharing what the last snapshot copy
            // shares (see `warming`), a step at a time.
            match rx.try_recv() {
                Ok(received) => Some(received),
                Err(TryRecvError::Empty) => {
                    thread.warm_step();
                    None
                }
                Err(TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(received) => Some(received),
                Err(_) => break,
            }
        };
        if let Some((enqueued, command)) = received {
            metrics.queue_depth.dec();
            metrics.queue_events.dec_by(command.events());
            metrics
                .queue_wait_seconds
                .observe(enqueued.elapsed().as_secs_f64());
            if matches!(command, Command::Shutdown) {
                break;
            }
            thread.dispatch(command);
        }
        if thread.shared.is_failed() && Instant::now() >= next_recovery {
            next_recovery = Instant::now() + RECOVERY_INTERVAL;
            thread.try_recover();
        }
    }
    // Commands still queued are dropped with their reply senders: their
    // handlers answer 503.
    drop(rx);
    thread.finish();
}

/// Marks the server failed if the engine thread unwinds (a bug): writes and
/// reads are refused from then on.
struct PanicFlag(Arc<Shared>);

impl Drop for PanicFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.engine_panicked.store(true, Ordering::Release);
            self.0.fail_other(&"the engine thread panicked");
        }
    }
}

/// The engine thread's own state.
struct EngineThread {
    core: SharedCore,
    /// `None` only between closing a failed log and reopening it.
    log: Option<Arc<Log>>,
    shared: Arc<Shared>,
    snapshotter: Option<Snapshotter>,
    reopen: Reopen,
    /// The players of the last accepted events, and what is left to
    /// un-share after the last snapshot copy (see `warming`).
    recent: RecentPlayers,
    warming: Warming,
}

impl EngineThread {
    fn dispatch(&mut self, command: Command) {
        if let Command::Read(read) = command {
            read(&self.core.read());
            return;
        }
        let shared = &self.shared;
        let Some(log) = self.log.clone() else {
            refuse(command, shared);
            return;
        };
        let mut core = self.core.write();
        match command {
            Command::Shutdown | Command::Read(_) => {}
            Command::Ingest {
                items,
                parsed,
                reply,
            } => ingest(
                &mut core,
                &log,
                shared,
                items,
                parsed,
                reply,
                &mut self.recent,
            ),
            Command::Spend {
                player,
                request,
                reply,
            } => spend(&mut core, &log, shared, &player, request, reply),
            Command::ReplayDeadLetters { selection, reply } => {
                replay_dead_letters(&mut core, &log, shared, selection, reply)
            }
            Command::ApplyConfig {
                config,
                sources,
                reply,
            } => apply_config(&mut core, &log, shared, config, sources, reply),
        }
        let covered = core.ingest.next_seq - 1;
        shared.metrics.last_seq.set(covered as i64);
        drop(core);
        if let Some(snapshotter) = &mut self.snapshotter
            && snapshotter.due(covered)
        {
            let core = self.core.read();
            if take_snapshot(&core, shared, snapshotter, &self.recent) {
                let leaderboards = core.plan.config.leaderboards.len();
                self.warming.start(&self.recent, leaderboards);
            }
        }
    }

    /// One step of un-sharing (see `warming`).
    fn warm_step(&mut self) {
        self.warming.step(&self.core, YIELD_INTERVAL);
    }

    /// After the log failed on a full disk: once a probe write shows free
    /// space, closes the failed log (answering its queued appends with the
    /// refusal), reopens the data directory as start-up does (recovery cuts
    /// a torn tail), rebuilds the state from the snapshot and the log, and
    /// takes writes again. The state then holds exactly what is durable:
    /// writes applied but never acknowledged are gone (their clients saw an
    /// error, and retrying is safe).
    fn try_recover(&mut self) {
        let Some(failure) = self.shared.failure() else {
            return;
        };
        if !failure.recoverable {
            return;
        }
        let probe = self.reopen.options.data_dir.join(".veltrix-space-probe");
        if let Err(e) = probe_space(self.reopen.storage.as_ref(), &probe) {
            tracing::debug!(error = %e, "no space yet");
            return;
        }
        if let Some(mut snapshotter) = self.snapshotter.take() {
            snapshotter.finish();
        }
        if let Some(log) = self.log.take() {
            match Arc::try_unwrap(log) {
                // Err is the failure we know about.
                Ok(log) => drop(log.close()),
                Err(log) => {
                    tracing::error!("the failed log is still shared; cannot reopen it");
                    self.log = Some(log);
                    return;
                }
            }
        }
        let started = Instant::now();
        let opened = match crate::open_state(
            self.reopen.plan.clone(),
            &self.reopen.options,
            self.reopen.storage.clone(),
            &self.shared.metrics,
        ) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::error!(error = %e, "reopening the data directory failed; retrying");
                return;
            }
        };
        let log = Arc::new(opened.log);
        if let Some(every) = self.reopen.options.snapshot_every {
            match Snapshotter::start(
                opened.store,
                log.clone(),
                self.shared.clone(),
                (every, self.reopen.options.snapshot_pacing),
                opened.snapshot_seq.unwrap_or(0),
                self.reopen.snapshot_status.clone(),
            ) {
                Ok(snapshotter) => self.snapshotter = Some(snapshotter),
                Err(e) => tracing::error!(error = %e, "cannot restart the snapshot thread"),
            }
        }
        let last_seq = opened.core.ingest.next_seq - 1;
        self.shared.set_plan(&opened.core.plan);
        *self.core.write() = opened.core;
        self.log = Some(log);
        self.shared.metrics.last_seq.set(last_seq as i64);
        self.shared.metrics.log_recoveries.inc();
        self.shared.clear_failure();
        tracing::info!(
            last_seq,
            records_replayed = opened.records_replayed,
            torn_tail_cut = opened.recovery.torn_tail.is_some(),
            took_ms = started.elapsed().as_millis() as u64,
            "space returned: reopened the log and rebuilt the state; taking writes again"
        );
    }

    fn finish(mut self) {
        if let Some(mut snapshotter) = self.snapshotter.take() {
            let core = self.core.read();
            if core.ingest.next_seq - 1 > snapshotter.last_seq {
                // The previous snapshot may still be in flight; wait for it so
                // this one is not skipped.
                while snapshotter.busy() && !self.shared.is_failed() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                take_snapshot(&core, &self.shared, &mut snapshotter, &self.recent);
            }
            drop(core);
            snapshotter.finish();
        }
        let Some(log) = self.log.take() else { return };
        let log = match Arc::try_unwrap(log) {
            Ok(log) => log,
            Err(_) => {
                tracing::error!("the log is still shared at shutdown; it closes when dropped");
                return;
            }
        };
        if let Err(e) = log.close() {
            tracing::error!(error = %e, "closing the log failed");
        } else {
            tracing::info!("log closed");
        }
    }
}

/// Answers a write with the log's refusal. Used while no log is open.
fn refuse(command: Command, shared: &Shared) {
    match command {
        Command::Ingest { reply, .. } => drop(reply.send(Err(shared.refusal()))),
        Command::Spend { reply, .. }
        | Command::ReplayDeadLetters { reply, .. }
        | Command::ApplyConfig { reply, .. } => drop(reply.send(Err(shared.refusal()))),
        Command::Read(_) | Command::Shutdown => {}
    }
}

/// Writes, syncs and removes a small file: fails while the disk is full.
fn probe_space(storage: &dyn veltrix_log::Storage, path: &std::path::Path) -> std::io::Result<()> {
    let written = storage.create(path).and_then(|mut file| {
        file.write_all(&vec![0u8; SPACE_PROBE_BYTES])?;
        file.sync_data()
    });
    let removed = storage.remove(path);
    written.and(removed)
}

/// Copies the state on this thread (a [`Core::snapshot_copy`]: shares the
/// players, grants and keys instead of copying them, so it takes
/// microseconds to milliseconds whatever the state's size) and hands the
/// copy to the snapshot thread, which encodes and writes it while ingest
/// goes on. The snapshot
/// covers every record up to `next_seq - 1`, including `Tally` and `Config`
/// records.
fn take_snapshot(
    core: &Core,
    shared: &Shared,
    snapshotter: &mut Snapshotter,
    recent: &RecentPlayers,
) -> bool {
    if shared.is_failed() {
        return false;
    }
    let started = Instant::now();
    let copy = Box::new(core.snapshot_copy());
    let recent = recent.slots();
    snapshotter.submit(core.ingest.next_seq - 1, copy, recent, started.elapsed())
}

/// Admits a batch, logs it, then applies it: dedup and sequencing first
/// (fast), so that the records go to the log before the events are
/// applied, and the log's write and fsync run while this thread applies
/// them. The answer goes out once both are done (see [`Answer`]), so an
/// acknowledged write is durable and a read after it sees it, as before;
/// the fsync no longer adds to the acknowledgement latency.
///
/// Write-ahead order has one cost: an event that made `apply` panic (a
/// bug) is in the log, so replay after a restart meets it again.
fn ingest(
    core: &mut parking_lot::RwLockWriteGuard<'_, Core>,
    log: &Log,
    shared: &Arc<Shared>,
    items: Vec<Item>,
    parsed: Option<Parsed>,
    reply: oneshot::Sender<Result<IngestReply, ApiError>>,
    recent: &mut RecentPlayers,
) {
    if shared.is_failed() {
        let _ = reply.send(Err(shared.refusal()));
        return;
    }
    // Parsed against the plan in force? Else (no parse, or a configuration
    // switch since) validate here.
    let parsed = match parsed {
        Some(parsed)
            if Arc::ptr_eq(&parsed.plan, &core.plan) && parsed.results.len() == items.len() =>
        {
            parsed
        }
        _ => Parsed::new(core.plan.clone(), &items),
    };
    let first_seq = core.ingest.next_seq;
    let config = core.plan.config.clone();
    let mut answer = IngestReply::default();
    let mut payloads = Vec::new();
    let mut rejections = Vec::new();
    let mut accepted = Vec::new();
    let lines: Vec<u64> = items
        .iter()
        .map(|item| item.line.unwrap_or(item.index as u64 + 1))
        .collect();
    let submissions = core
        .ingest
        .admit_batch(parsed.results, &parsed.keys, &lines);
    let submitted = items
        .into_iter()
        .zip(submissions)
        .zip(parsed.records)
        .zip(parsed.players);
    for (((item, submission), record), player) in submitted {
        match submission {
            Submission::Accepted { seq, event } => {
                debug_assert_eq!(seq, first_seq + payloads.len() as u64);
                payloads.push(record.unwrap_or_else(|| record::encode_event(&config, &event)));
                let player = player.unwrap_or_else(|| PlayerHashes::of(&event.player));
                accepted.push((seq, event, player));
            }
            Submission::Duplicate { .. } => answer.duplicates += 1,
            Submission::Rejected(rejection) => {
                core.dead_letter_bodies.push(Some(item.bytes.to_vec()));
                rejections.push(DeadLetterRecord {
                    line: rejection.line,
                    id: rejection.id.clone(),
                    error: rejection.error.clone(),
                    body: item.bytes.to_vec(),
                });
                answer.rejected.push(RejectedItem {
                    index: item.index,
                    line: item.line,
                    id: rejection.id,
                    error: rejection.error,
                });
            }
        }
    }
    answer.accepted = accepted.len() as u64;
    // Duplicates and rejections change no engine state, but their counts and
    // the dead letters must survive a restart: log them as tally records
    // (they take log positions like any record; the engine never sees them).
    let mut duplicates = answer.duplicates;
    let mut chunks = rejections.chunks(REJECTIONS_PER_TALLY).peekable();
    while duplicates > 0 || chunks.peek().is_some() {
        let rejected = chunks.next().map(<[_]>::to_vec).unwrap_or_default();
        payloads.push(record::encode(&LogRecord::DeadLetters {
            duplicates,
            rejected,
        }));
        duplicates = 0;
        core.ingest.next_seq += 1;
    }
    let pending = Answer::new(reply, shared.stream.clone());
    Answer::log(&pending, log, shared, payloads, first_seq);
    // Building stream messages costs a rank lookup per moved leaderboard:
    // only while someone listens.
    let streaming = shared.stream.receiver_count() > 0;
    let mut messages: Vec<Arc<StreamMessage>> = Vec::new();
    let mut grants = GrantTally::default();
    let mut last_yield = Instant::now();
    // A busy player earns many grants in a batch: their leaderboard rows
    // move once per stretch between two steps aside instead of once per
    // grant (see `Boards::defer`). Stream messages carry each grant's rank,
    // so while someone listens every grant moves its rows at once.
    if !streaming {
        core.engine.boards.defer();
    }
    for (n, (seq, event, player)) in accepted.iter().enumerate() {
        if n > 0 && n % YIELD_EVERY == 0 {
            // Step aside (YIELD_INTERVAL): hand the lock to waiting reads
            // and the CPU to whatever waits for it. This thread is the only
            // writer, so nothing it holds changes meanwhile.
            if last_yield.elapsed() >= YIELD_INTERVAL
                || shared.readers_waiting.load(Ordering::Acquire) > 0
            {
                last_yield = Instant::now();
                // Reads see the leaderboards as of the events applied so far.
                core.engine.boards.flush();
                parking_lot::RwLockWriteGuard::unlocked_fair(core, std::thread::yield_now);
                if !streaming {
                    core.engine.boards.defer();
                }
            }
        }
        let slot = apply_event(
            core,
            &mut grants,
            (*seq, event, *player),
            streaming,
            &mut messages,
        );
        recent.push(slot);
    }
    core.engine.boards.flush();
    let metrics = &shared.metrics;
    grants.record(metrics);
    metrics.events_accepted.inc_by(answer.accepted);
    metrics.events_duplicate.inc_by(answer.duplicates);
    metrics.events_rejected.inc_by(answer.rejected.len() as u64);
    for rejected in &answer.rejected {
        metrics
            .rejected_by_reason
            .get_or_create(&[(
                "reason",
                veltrix_core::rejection_reason(&rejected.error).to_string(),
            )])
            .inc();
    }
    Answer::applied(&pending, answer, messages);
}

/// A write's answer, waiting for its two halves, which finish in either
/// order: the log's callback reports the records durable (or the log
/// failed), and the engine thread reports the write applied (with the
/// stream messages it made). Whichever comes second publishes the messages
/// (only durable changes reach the stream) and replies.
struct Answer<A> {
    reply: Option<oneshot::Sender<Result<A, ApiError>>>,
    stream: StreamSender,
    durable: Option<Result<(), ApiError>>,
    applied: Option<(A, Vec<Arc<StreamMessage>>)>,
}

impl<A: Send + 'static> Answer<A> {
    fn new(reply: oneshot::Sender<Result<A, ApiError>>, stream: StreamSender) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Answer {
            reply: Some(reply),
            stream,
            durable: None,
            applied: None,
        }))
    }

    /// Hands `payloads` to the log, which reports them durable to `answer`
    /// (at once when there is nothing to log). If the log refuses the
    /// append outright the report never comes, the answer is dropped
    /// unanswered, and the handler's closed reply channel answers 503.
    fn log(
        answer: &Arc<Mutex<Self>>,
        log: &Log,
        shared: &Arc<Shared>,
        payloads: Vec<Vec<u8>>,
        first_seq: u64,
    ) {
        if payloads.is_empty() {
            Answer::durable(answer, Ok(()));
            return;
        }
        let answer = answer.clone();
        append(log, shared, payloads, first_seq, move |result| {
            Answer::durable(&answer, result)
        });
    }

    fn durable(answer: &Mutex<Self>, result: Result<(), ApiError>) {
        let mut answer = answer.lock().unwrap_or_else(|e| e.into_inner());
        answer.durable = Some(result);
        answer.reply_when_complete();
    }

    fn applied(answer: &Mutex<Self>, reply: A, messages: Vec<Arc<StreamMessage>>) {
        let mut answer = answer.lock().unwrap_or_else(|e| e.into_inner());
        answer.applied = Some((reply, messages));
        answer.reply_when_complete();
    }

    fn reply_when_complete(&mut self) {
        if self.durable.is_none() || self.applied.is_none() {
            return;
        }
        let (Some(durable), Some((reply, messages)), Some(sender)) =
            (self.durable.take(), self.applied.take(), self.reply.take())
        else {
            return;
        };
        if durable.is_ok() {
            // Never waits: a lagging client loses messages, not the engine
            // time. An error only means nobody listens any more.
            for message in messages {
                let _ = self.stream.send(message);
            }
        }
        let _ = sender.send(durable.map(|()| reply));
    }
}

/// Submits the selected dead letters again through ingest, with the
/// current configuration. A dead letter leaves the list when its event is
/// accepted or turns out to be a duplicate (an event with its id was
/// accepted since); one rejected again stays, unchanged, and its new reason
/// is in the answer. Re-submitting changes no count but `accepted`: the
/// rejection and duplicate counts were taken when the event first came.
///
/// Logged as the accepted events' records plus one `DeadLettersRemoved`
/// record naming the positions removed, in one append; answered once
/// durable, like ingest.
fn replay_dead_letters(
    core: &mut Core,
    log: &Log,
    shared: &Arc<Shared>,
    selection: Selection,
    reply: oneshot::Sender<Result<Value, ApiError>>,
) {
    if shared.is_failed() {
        let _ = reply.send(Err(shared.refusal()));
        return;
    }
    debug_assert_eq!(core.dead_letter_bodies.len(), core.ingest.rejected.len());
    let total = core.ingest.rejected.len();
    let mut not_found: Vec<Value> = Vec::new();
    let positions: Vec<usize> = match &selection {
        Selection::All => (0..total).collect(),
        Selection::Ids(ids) => {
            let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
            let selected: Vec<usize> = (0..total)
                .filter(|&i| {
                    core.ingest.rejected[i]
                        .id
                        .as_deref()
                        .is_some_and(|id| wanted.contains(id))
                })
                .collect();
            let found: std::collections::HashSet<&str> = selected
                .iter()
                .filter_map(|&i| core.ingest.rejected[i].id.as_deref())
                .collect();
            not_found.extend(
                ids.iter()
                    .filter(|id| !found.contains(id.as_str()))
                    .map(|id| json!(id)),
            );
            selected
        }
        Selection::Indexes(indexes) => {
            if let Some(bad) = indexes.iter().find(|&&i| i >= total) {
                let _ = reply.send(Err(ApiError::bad_request(
                    "invalid_index",
                    format!("indexes: {bad} is not a dead letter (there are {total})"),
                )));
                return;
            }
            let mut sorted = indexes.clone();
            sorted.sort_unstable();
            sorted.dedup();
            sorted
        }
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let first_seq = core.ingest.next_seq;
    let config = core.plan.config.clone();
    let streaming = shared.stream.receiver_count() > 0;
    let mut messages: Vec<Arc<StreamMessage>> = Vec::new();
    let mut payloads = Vec::new();
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    let mut removed: Vec<usize> = Vec::new();
    let mut removed_json = Vec::new();
    let mut rejected = Vec::new();
    let mut skipped = Vec::new();
    let mut grants = GrantTally::default();
    // One call's records go into one append, which the log refuses beyond
    // its queue size (and a refused append after the engine applied the
    // events would fail the server): stop at half of it. A record can be
    // about twice its JSON (see ServerOptions::log_options).
    let budget = shared.queue_bytes / 2;
    let mut payload_bytes = 0u64;
    let mut unprocessed = 0usize;
    let selected = positions.len();
    for (done, position) in positions.into_iter().enumerate() {
        let dead = core.ingest.rejected[position].clone();
        let size = core.dead_letter_bodies[position]
            .as_ref()
            .map_or(0, |b| b.len() as u64 * 2 + 1024);
        if done > 0 && payload_bytes + size > budget {
            unprocessed = selected - done;
            break;
        }
        payload_bytes += size;
        let Some(body) = core.dead_letter_bodies[position].clone() else {
            skipped.push(json!({
                "index": position,
                "id": dead.id,
                "reason": "logged before dead-letter bodies were kept; it cannot be re-submitted",
            }));
            continue;
        };
        let counts = core.ingest.counts;
        match core.ingest.submit(&core.plan, &body, dead.line, now_ms) {
            Submission::Accepted { seq, event } => {
                debug_assert_eq!(seq, first_seq + payloads.len() as u64);
                payloads.push(record::encode_event(&config, &event));
                let player = PlayerHashes::of(&event.player);
                apply_event(
                    core,
                    &mut grants,
                    (seq, &event, player),
                    streaming,
                    &mut messages,
                );
                accepted += 1;
                removed.push(position);
                removed_json.push(json!({"index": position, "id": dead.id, "outcome": "accepted"}));
            }
            Submission::Duplicate { .. } => {
                core.ingest.counts = counts;
                duplicates += 1;
                removed.push(position);
                removed_json
                    .push(json!({"index": position, "id": dead.id, "outcome": "duplicate"}));
            }
            Submission::Rejected(rejection) => {
                // Ingest appended it to the list again; the entry already
                // there stands for it.
                core.ingest.rejected.pop();
                core.ingest.counts = counts;
                rejected.push(json!({
                    "index": position,
                    "id": rejection.id,
                    "error": rejection.error,
                }));
            }
        }
    }
    grants.record(&shared.metrics);
    shared.metrics.events_accepted.inc_by(accepted);
    remove_dead_letters(core, &removed);
    let answer = json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
        "removed": removed_json,
        "skipped": skipped,
        "not_found": not_found,
        "unprocessed": unprocessed,
        "remaining": core.ingest.rejected.len(),
    });
    if !removed.is_empty() {
        payloads.push(record::encode(&LogRecord::DeadLettersRemoved {
            positions: removed.iter().map(|&p| p as u64).collect(),
        }));
        core.ingest.next_seq += 1;
    }
    append_then_publish(log, shared, payloads, first_seq, messages, reply, answer);
}

/// Switches the engine to `config` at the next seq (`POST /v1/config`):
/// the same version as the active one changes nothing and logs nothing; a
/// configuration the state refuses (`check_switch`) is a 409 and changes
/// nothing; otherwise `switch_config` runs at seq N, a `ConfigSwitch`
/// record with the full sources takes seq N, and the answer comes once it
/// is durable. The new plan keeps the current puzzle secret.
fn apply_config(
    core: &mut Core,
    log: &Log,
    shared: &Arc<Shared>,
    config: Arc<veltrix_config::Config>,
    sources: Vec<(String, String)>,
    reply: oneshot::Sender<Result<Value, ApiError>>,
) {
    if shared.is_failed() {
        let _ = reply.send(Err(shared.refusal()));
        return;
    }
    let previous = core.plan.config.version.clone();
    if config.version == previous {
        let _ = reply.send(Ok(json!({
            "changed": false,
            "version": previous,
            "previous_version": previous,
            "seq": core.config_history.last().map(|h| h.seq),
        })));
        return;
    }
    let plan = Arc::new(Plan::with_secret(config, core.plan.puzzle_secret.clone()));
    let refused = |e: veltrix_core::SwitchError| {
        ApiError::new(StatusCode::CONFLICT, "config_refused", e.to_string())
            .with_details(json!({"active_version": previous}))
    };
    if let Err(e) = veltrix_core::check_switch(&core.engine, &plan) {
        let _ = reply.send(Err(refused(e)));
        return;
    }
    let report = match veltrix_core::switch_config(&mut core.ingest, &mut core.engine, plan) {
        Ok(report) => report,
        Err(e) => {
            let _ = reply.send(Err(refused(e)));
            return;
        }
    };
    // The switch takes a log position like any record.
    let seq = core.ingest.next_seq;
    core.ingest.next_seq += 1;
    core.plan = report.plan.clone();
    shared.set_plan(&core.plan);
    let version = report.to_version.clone();
    core.config_sources = Some(sources.clone());
    core.config_history.push(ConfigVersion {
        version: version.clone(),
        seq,
    });
    shared.metrics.config_switches.inc();
    tracing::info!(from = %previous, to = %version, seq, "switched the configuration");
    let answer = json!({
        "changed": true,
        "version": version,
        "previous_version": previous,
        "seq": seq,
        "report": switch_report_json(&report),
    });
    let message = crate::stream::config_message(
        seq,
        json!({"seq": seq, "version": version, "previous_version": previous}),
    );
    let stream = shared.stream.clone();
    let payload = record::encode(&LogRecord::ConfigSwitch { version, sources });
    append(log, shared, vec![payload], seq, move |result| {
        if result.is_ok() {
            // Never waits; an error only means nobody listens.
            let _ = stream.send(message);
        }
        let _ = reply.send(result.map(|()| answer));
    });
}

/// A `SwitchReport` as JSON (without the plan).
pub fn switch_report_json(report: &veltrix_core::SwitchReport) -> Value {
    json!({
        "from_version": report.from_version,
        "to_version": report.to_version,
        "retained_badges": report.retained_badges,
        "retained_currencies": report.retained_currencies,
        "dropped_rules": report.dropped_rules,
        "dropped_hunts": report.dropped_hunts,
        "rebuilt_leaderboards": report.rebuilt_leaderboards,
        "reset_views": report.reset_views,
        "new_windows": report.new_windows,
    })
}

/// Removes the dead letters at `positions` (ascending, no repeats) from the
/// list and their bodies. Used live and on replay of a `DeadLettersRemoved`
/// record, so both remove the same entries.
pub fn remove_dead_letters(core: &mut Core, positions: &[usize]) {
    debug_assert!(positions.windows(2).all(|w| w[0] < w[1]));
    core.ingest.rejected.remove_sorted(positions);
    core.dead_letter_bodies.remove_sorted(positions);
}

fn spend(
    core: &mut Core,
    log: &Log,
    shared: &Arc<Shared>,
    player: &str,
    request: SpendRequest,
    reply: oneshot::Sender<Result<Value, ApiError>>,
) {
    if shared.is_failed() {
        let _ = reply.send(Err(shared.refusal()));
        return;
    }
    let decided = decide_spend(core, player, &request);
    let currency = match decided {
        Err(error) => {
            let _ = reply.send(Err(error));
            return;
        }
        Ok(SpendDecision::Earlier(answer)) => {
            let _ = reply.send(Ok(answer));
            return;
        }
        Ok(SpendDecision::Apply(currency)) => currency,
    };
    // Spends share the log's seq counter with events.
    let seq = core.ingest.next_seq;
    core.ingest.next_seq += 1;
    let outcome = core
        .engine
        .apply_spend(seq, player, currency, request.amount, &request.key);
    let veltrix_core::partition::SpendOutcome::Applied(index) = outcome else {
        // decide_spend checked the key and the balance with the same rules
        // as apply_spend; getting here is a bug, and the seq is now used.
        shared.fail_other(&format!(
            "spend check disagreed with the engine: {outcome:?}"
        ));
        let _ = reply.send(Err(shared.refusal()));
        return;
    };
    shared.metrics.spends.inc();
    let partition = &core.engine.partitions[core.engine.partition_of(player)];
    let balance = partition.player(player).map_or(0, |p| p.balance(currency));
    let answer = json!({
        "applied": true,
        "spend": spend_json(&core.plan, &partition.spends[index]),
        "balance": balance,
    });
    let payload = record::encode(&LogRecord::Spend {
        player: player.to_string(),
        currency: request.currency,
        amount: request.amount,
        key: request.key,
    });
    append(log, shared, vec![payload], seq, move |result| {
        let _ = reply.send(result.map(|()| answer));
    });
}

enum SpendDecision {
    /// The key was used before: answer with that spend, change nothing.
    Earlier(Value),
    Apply(u16),
}

/// Checks a spend without changing state, so a refused spend uses no seq
/// and answers with the API's own errors (404 for an unknown player, the
/// earlier spend for a used key, 409 with the balance). The engine's
/// `apply_spend` refuses the same cases without changing anything; the
/// server checks first so that it never has to take back a seq.
fn decide_spend(
    core: &Core,
    player: &str,
    request: &SpendRequest,
) -> Result<SpendDecision, ApiError> {
    let config = &core.plan.config;
    let Some(currency) = config.currency(&request.currency) else {
        return Err(ApiError::not_found(
            "currency",
            &request.currency,
            config.currencies.iter().map(String::as_str),
        ));
    };
    if request.amount <= 0 {
        return Err(ApiError::bad_request(
            "invalid_amount",
            format!(
                "amount: expected a whole number > 0, got {}",
                request.amount
            ),
        ));
    }
    if request.key.is_empty() || request.key.len() > MAX_SPEND_KEY_BYTES {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("key: expected a string of 1 to {MAX_SPEND_KEY_BYTES} bytes"),
        ));
    }
    let partition = &core.engine.partitions[core.engine.partition_of(player)];
    let Some(state) = partition.player(player) else {
        return Err(ApiError::not_found("player", player, []));
    };
    if let Some(&(_, at)) = state.spend_keys.iter().find(|(k, _)| **k == request.key)
        && let Some(LedgerEntry::Spend(index)) = state.ledger.get(at)
    {
        return Ok(SpendDecision::Earlier(json!({
            "applied": false,
            "spend": spend_json(&core.plan, &partition.spends[*index]),
            "balance": state.balance(currency),
        })));
    }
    let balance = state.balance(currency);
    if balance < request.amount {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "insufficient_balance",
            format!(
                "player \"{player}\" has {balance} {}, cannot spend {}",
                request.currency, request.amount
            ),
        )
        .with_details(
            json!({"balance": balance, "amount": request.amount, "currency": request.currency}),
        ));
    }
    Ok(SpendDecision::Apply(currency))
}

fn spend_json(plan: &Plan, spend: &Spend) -> Value {
    let units: Vec<Value> = spend
        .units
        .iter()
        .map(|(id, from, to)| json!({"from": format!("{id}/{from}"), "to": format!("{id}/{to}")}))
        .collect();
    json!({
        "seq": spend.seq,
        "key": &*spend.key,
        "currency": plan.config.currencies[spend.currency as usize],
        "amount": spend.amount,
        "units": units,
    })
}

/// Applies one accepted event (ingest and dead-letter replay alike; the
/// caller logs its record), builds its stream messages (only while someone
/// listens) and counts its grants per source.
fn apply_event(
    core: &mut Core,
    grants: &mut GrantTally,
    (seq, event, player): (u64, &veltrix_core::Event, PlayerHashes),
    streaming: bool,
    messages: &mut Vec<Arc<StreamMessage>>,
) -> PlayerSlot {
    let slot = core.engine.apply_event_hashed(seq, event, player);
    let engine = &core.engine;
    for effect in engine.last_effects() {
        if let Effect::Granted(index) = effect {
            grants.add(&engine.partitions[slot.partition].grants[*index].source);
        }
    }
    if streaming && !engine.last_effects().is_empty() {
        let effects = engine.last_effects().to_vec();
        crate::stream::messages(core, seq, slot.partition, &effects, messages);
    }
    slot
}

/// Grants per source within one command, added to the metrics once at its
/// end (a labelled counter costs a lock and an allocation per update).
#[derive(Default)]
struct GrantTally(Vec<(Arc<str>, u64)>);

impl GrantTally {
    fn add(&mut self, source: &Arc<str>) {
        // Few sources per command: a linear scan over shared pointers.
        match self
            .0
            .iter_mut()
            .find(|(s, _)| Arc::ptr_eq(s, source) || s == source)
        {
            Some((_, n)) => *n += 1,
            None => self.0.push((source.clone(), 1)),
        }
    }

    fn record(self, metrics: &Metrics) {
        for (source, n) in self.0 {
            metrics
                .grants
                .get_or_create(&[("source", source.to_string())])
                .inc_by(n);
        }
    }
}

/// Appends `payloads`; once they are durable, publishes the stream
/// `messages` (so the stream shows only durable changes) and replies with
/// `answer` (or the log's failure). With nothing to log, replies at once.
fn append_then_publish<A: Send + 'static>(
    log: &Log,
    shared: &Arc<Shared>,
    payloads: Vec<Vec<u8>>,
    first_seq: u64,
    messages: Vec<Arc<StreamMessage>>,
    reply: oneshot::Sender<Result<A, ApiError>>,
    answer: A,
) {
    let pending = Answer::new(reply, shared.stream.clone());
    Answer::applied(&pending, answer, messages);
    Answer::log(&pending, log, shared, payloads, first_seq);
}

/// Appends one request's records in one `append`; `done` runs once they
/// are durable (Ok) or failed (Err). A log that failed already answers with
/// the refusal at once; if the log refuses the append outright, the
/// callback is dropped unanswered, so the handler's reply channel closes
/// and it answers 503.
fn append(
    log: &Log,
    shared: &Arc<Shared>,
    payloads: Vec<Vec<u8>>,
    first_seq: u64,
    done: impl FnOnce(Result<(), ApiError>) + Send + 'static,
) {
    if let Some(error) = log.failure() {
        shared.fail_log(&error);
        done(Err(shared.refusal()));
        return;
    }
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let count = payloads.len() as u64;
    shared.wait_for_room(bytes);
    let writer_shared = shared.clone();
    let result = log.append(
        payloads,
        Box::new(move |result| {
            writer_shared.release(bytes);
            match result {
                Ok(_) => done(Ok(())),
                Err(e) => {
                    writer_shared.fail_log(&e);
                    done(Err(writer_shared.refusal()));
                }
            }
        }),
    );
    match result {
        Ok(range) if *range.start() == first_seq && *range.end() == first_seq + count - 1 => {}
        Ok(range) => shared.fail_other(&format!(
            "the log assigned seqs {range:?} but the engine used {first_seq}..={}",
            first_seq + count - 1
        )),
        Err(e) => {
            shared.release(bytes);
            shared.fail_log(&e);
        }
    }
}
