//! Taking snapshots without stalling ingest for the disk.
//!
//! The engine thread takes a `Core::snapshot_copy` (it shares the players,
//! grants and keys with the live state instead of copying them, so it takes
//! milliseconds at any size) and hands it to the snapshot thread, which
//!
//! 1. encodes it with an `Encoder` kept across snapshots (unchanged parts
//!    cost a copy of their earlier bytes),
//! 2. waits until the log has made every record the snapshot covers durable
//!    (a snapshot must never be ahead of the log on disk: a restart would find
//!    a log that ends before its snapshot and refuse to start),
//! 3. writes it with `SnapshotStore::write_pieces_stepping` (temp file,
//!    fsync'd 8 MiB at a time, rename, fsync the directory, keep the newest
//!    N and the older files they take unchanged pieces from: an encoded
//!    chunk unchanged since a recent snapshot is referred to there, not
//!    written again),
//! 4. retires the log segments that no restart point needs:
//!    `retire_before(oldest of SnapshotStore::restart_points + 1)`, so
//!    falling back to any kept snapshot still finds its log tail.
//!
//! At most one snapshot is in flight: while the thread is busy the engine
//! does not copy another one (it tries again after its next command), so at
//! most one old version of each changed part exists at a time.
//!
//! Pacing: a snapshot is due after `every` records, but never sooner than
//! `pacing` times the last snapshot's own duration (hand-over to written)
//! after that one started ([`DEFAULT_PACING`]: snapshots use at most a
//! quarter of one core), whatever the state's size and the ingest rate. A
//! snapshot costs time that grows with the state (every changed chunk is
//! encoded and written, and unchanged ones are written again every few
//! snapshots); without pacing a large state at a high rate would have the
//! snapshot thread busy all the time, taking a core from ingest. The price is a longer log tail to
//! replay on restart: about `pacing` snapshot durations of records, but
//! never more than [`MAX_TAIL_FACTOR`] × `every` (past that a snapshot is
//! due as soon as none is in flight), so restart time stays bounded.

use crate::engine::Shared;
use crate::priority::StepAside;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use veltrix_core::engine::PlayerSlot;
use veltrix_log::{Log, SnapshotStore};

/// What the engine thread sees of the snapshot thread.
pub struct Snapshotter {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Status>,
    /// Records between snapshots.
    pub every: u64,
    /// Seq of the last snapshot taken (handed over, maybe not yet written).
    pub last_seq: u64,
    /// See the module's pacing; at least 1.
    pub pacing: u32,
}

/// Shared with the snapshot thread and readable by tests.
#[derive(Default)]
pub struct Status {
    busy: AtomicBool,
    /// Seq of the newest snapshot known durable.
    pub written_seq: AtomicU64,
    /// Snapshots written since start.
    pub written: AtomicU64,
    /// The last error, if writing or retiring failed.
    pub last_error: Mutex<Option<String>>,
    /// When the last snapshot was handed over and when it was done (see
    /// the module's pacing).
    last_run: Mutex<Option<(Instant, Instant)>>,
}

/// A snapshot starts at least this many times its predecessor's duration
/// after the predecessor started; 1 turns pacing off.
pub const DEFAULT_PACING: u32 = 4;

/// Pacing never lets the log tail grow past this many times `every`
/// records: restart time stays bounded even when snapshots take long (at
/// 10 M events, decoding the snapshot takes about 2 s and replaying 500k
/// records about 1.5 s; 10 × let a restart take 5.5 s).
pub const MAX_TAIL_FACTOR: u64 = 5;

struct Job {
    seq: u64,
    state: Box<crate::engine::Core>,
    /// Where the players of the last accepted events are, repeats
    /// included: the copy lets go of them first (see `warming`).
    recent: Vec<PlayerSlot>,
    /// How long the engine thread spent copying the state.
    copy: Duration,
    submitted: Instant,
}

impl Snapshotter {
    /// Starts the snapshot thread, taking a snapshot every `every` records
    /// within `pacing` (see the module). `last_seq` is the seq of the snapshot the
    /// server started from (0 if none). `status` is shared with an earlier
    /// snapshot thread of the same server (after the log was reopened).
    pub fn start(
        store: SnapshotStore,
        log: Arc<Log>,
        shared: Arc<Shared>,
        (every, pacing): (u64, u32),
        last_seq: u64,
        status: Option<Arc<Status>>,
    ) -> std::io::Result<Snapshotter> {
        let (tx, rx) = sync_channel(1);
        let status = status.unwrap_or_default();
        status.busy.store(false, Ordering::Release);
        status.written_seq.store(last_seq, Ordering::Release);
        let thread_status = status.clone();
        let thread = std::thread::Builder::new()
            .name("veltrix-snapshot".into())
            .spawn(move || writer(rx, store, log, shared, thread_status))?;
        Ok(Snapshotter {
            tx: Some(tx),
            thread: Some(thread),
            status,
            every: every.max(1),
            last_seq,
            pacing: pacing.max(1),
        })
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// True when `covered` (the last seq the state includes) is at least
    /// `every` records past the last snapshot, no snapshot is in flight,
    /// and pacing allows one.
    pub fn due(&self, covered: u64) -> bool {
        let since = covered.saturating_sub(self.last_seq);
        since >= self.every
            && !self.status.busy.load(Ordering::Acquire)
            && (since >= self.every.saturating_mul(MAX_TAIL_FACTOR) || self.paced())
    }

    /// Whether pacing allows a snapshot now.
    fn paced(&self) -> bool {
        lock(&self.status.last_run).is_none_or(|(started, finished)| {
            (finished - started)
                .checked_mul(self.pacing.max(1))
                .and_then(|gap| started.checked_add(gap))
                .is_some_and(|allowed| Instant::now() >= allowed)
        })
    }

    /// True while a snapshot is being written.
    pub fn busy(&self) -> bool {
        self.status.busy.load(Ordering::Acquire)
    }

    /// Hands a copy of the state to the thread. Never blocks: the engine only
    /// calls this when no snapshot is in flight.
    /// Returns whether the thread took it.
    pub fn submit(
        &mut self,
        seq: u64,
        state: Box<crate::engine::Core>,
        recent: Vec<PlayerSlot>,
        copy: Duration,
    ) -> bool {
        let Some(tx) = &self.tx else { return false };
        self.status.busy.store(true, Ordering::Release);
        let job = Job {
            seq,
            state,
            recent,
            copy,
            submitted: Instant::now(),
        };
        if tx.try_send(job).is_ok() {
            self.last_seq = seq;
            true
        } else {
            self.status.busy.store(false, Ordering::Release);
            false
        }
    }

    /// Waits for the snapshot in flight (if any) to be written, then stops
    /// the thread.
    pub fn finish(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the snapshot thread panicked");
        }
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn writer(
    rx: Receiver<Job>,
    store: SnapshotStore,
    log: Arc<Log>,
    shared: Arc<Shared>,
    status: Arc<Status>,
) {
    // Kept across snapshots: unchanged players, grants and boards are
    // copied from the last encoding instead of encoded again.
    let mut encoder = veltrix_core::snapshot::Encoder::default();
    // Encoding a large state takes a core for a while; while both cores
    // are busy the scheduler should run request handlers and the engine
    // first. At nice 10 the thread still gets about a tenth of a contended
    // core, so snapshots finish under any load.
    crate::priority::lower_current_thread(10);
    while let Ok(mut job) = rx.recv() {
        let started = Instant::now();
        // First, before the engine's next request writes to them, the copy
        // takes its own copies of what that request will likely write (see
        // `warming`).
        let recent = std::mem::take(&mut job.recent);
        job.state.let_go(&most_active_first(recent));
        let mut step_aside = StepAside::default();
        let payload = crate::rebuild::encode_snapshot_parts(&job.state, &mut encoder, &mut || {
            step_aside.step()
        });
        let encode = started.elapsed();
        drop(job.state);
        shared
            .metrics
            .snapshot_encode_seconds
            .observe(encode.as_secs_f64());
        let (checksummed, written) = (store.bytes_checksummed(), store.bytes_written());
        let result = write_one(job.seq, &payload.parts(), &store, &log, &shared);
        let checksummed = store.bytes_checksummed() - checksummed;
        let written = store.bytes_written() - written;
        // Not busy before the outcome is published: whoever sees a
        // snapshot written may count on the next one being takeable.
        *lock(&status.last_run) = Some((job.submitted, Instant::now()));
        status.busy.store(false, Ordering::Release);
        match result {
            Ok(retired) => {
                status.written_seq.store(job.seq, Ordering::Release);
                status.written.fetch_add(1, Ordering::AcqRel);
                let duration = job.submitted.elapsed();
                shared.metrics.snapshots.inc();
                shared
                    .metrics
                    .snapshot_seconds
                    .observe(duration.as_secs_f64());
                shared.metrics.snapshot_written_bytes.inc_by(written);
                tracing::info!(
                    seq = job.seq,
                    bytes = payload.len(),
                    written_bytes = written,
                    duration_ms = duration.as_millis() as u64,
                    checksummed_bytes = checksummed,
                    copy_ms = job.copy.as_millis() as u64,
                    encode_ms = encode.as_millis() as u64,
                    segments_retired = retired,
                    "wrote a snapshot"
                );
            }
            Err(message) => {
                tracing::warn!(seq = job.seq, "snapshot not written: {message}");
                *lock(&status.last_error) = Some(message);
            }
        }
    }
}

/// The distinct slots of `recent`, the most often repeated first.
fn most_active_first(recent: Vec<PlayerSlot>) -> Vec<PlayerSlot> {
    crate::warming::most_repeated_first(recent)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_one(
    seq: u64,
    payload: &[veltrix_log::Part<'_>],
    store: &SnapshotStore,
    log: &Log,
    shared: &Shared,
) -> Result<usize, String> {
    let started = Instant::now();
    // The records up to seq were all handed to the log before the
    // snapshot was encoded; wait for their fsync. If the log fails instead,
    // those records may never be durable and the snapshot must not exist.
    while log.durable_seq() < seq {
        if let Some(e) = log.failure() {
            return Err(format!(
                "the log failed before the snapshot's records were durable: {e}"
            ));
        }
        if shared.is_failed() {
            return Err(
                "the server's log failed; state may hold writes that are not durable".into(),
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "the log did not make seq {} durable within 60 s (durable seq {})",
                seq,
                log.durable_seq()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut step_aside = StepAside::default();
    store
        .write_pieces_stepping(seq, payload, &mut || step_aside.step())
        .map_err(|e| format!("writing failed: {e}"))?;
    let oldest = store
        .restart_points()
        .map_err(|e| format!("listing snapshots failed: {e}"))?
        .first()
        .copied()
        .unwrap_or(seq);
    log.retire_before(oldest + 1)
        .map_err(|e| format!("the snapshot is written but retiring old log segments failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_slots_go_most_active_first_without_repeats() {
        let slot = |partition, pid| PlayerSlot { partition, pid };
        let recent = vec![
            slot(0, 4),
            slot(1, 4),
            slot(0, 9),
            slot(1, 4),
            slot(0, 9),
            slot(1, 4),
        ];
        assert_eq!(
            most_active_first(recent),
            vec![slot(1, 4), slot(0, 9), slot(0, 4)]
        );
        assert_eq!(most_active_first(Vec::new()), Vec::new());
    }
}
