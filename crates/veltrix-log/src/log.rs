//! The write-ahead log: bounded queue, one writer thread, group commit.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::ops::RangeInclusive;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Corruption, LogError};
use crate::format::{
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, decode_record_header, decode_segment_header,
    encode_record,
};
use crate::recovery::{Recovery, SegmentMeta, create_segment, recover};
use crate::storage::{FsStorage, LockGuard, Storage, StorageFile};

/// Completion callback of [`Log::append`]: called once, from the writer thread.
pub type AppendDone = Box<dyn FnOnce(Result<RangeInclusive<u64>, LogError>) + Send>;

/// Called with the duration of every fsync of log data (for a latency histogram).
pub type SyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// Tuning and limits. Every queue and batch is bounded.
#[derive(Clone)]
pub struct LogOptions {
    /// Roll to a new segment before a record would take the segment past this
    /// size (a single larger record gets a segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// Largest payload accepted on write and on read. Default 16 MiB.
    pub max_record_bytes: u32,
    /// Most `append` calls waiting for the writer; more get [`LogError::QueueFull`]. Default 1024.
    pub queue_capacity: usize,
    /// Most payload bytes waiting for the writer; more get [`LogError::QueueFull`]. Default 64 MiB.
    pub queue_bytes: u64,
    /// Most payload bytes written per fsync (at least one whole `append` is
    /// always taken). Default 8 MiB.
    pub max_batch_bytes: u64,
    /// Optional fsync latency observer.
    pub sync_observer: Option<SyncObserver>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            max_record_bytes: 16 << 20,
            queue_capacity: 1024,
            queue_bytes: 64 << 20,
            max_batch_bytes: 8 << 20,
            sync_observer: None,
        }
    }
}

impl fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOptions")
            .field("segment_bytes", &self.segment_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_bytes", &self.queue_bytes)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("sync_observer", &self.sync_observer.is_some())
            .finish()
    }
}

impl LogOptions {
    fn validate(&self) -> Result<(), LogError> {
        let bad = |m: &str| Err(LogError::InvalidOptions(m.to_owned()));
        if self.max_record_bytes == 0 {
            return bad("max_record_bytes must be at least 1");
        }
        if self.segment_bytes < (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64 {
            return bad("segment_bytes must be at least 40");
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be at least 1");
        }
        if self.queue_bytes < u64::from(self.max_record_bytes) {
            return bad("queue_bytes must be at least max_record_bytes");
        }
        if self.max_batch_bytes == 0 {
            return bad("max_batch_bytes must be at least 1");
        }
        Ok(())
    }
}

/// Counters, for metrics and for tests of group commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Accepted `append` calls.
    pub appends: u64,
    /// Records written.
    pub records: u64,
    /// Batches written by the writer (one data fsync each, plus one per roll).
    pub batches: u64,
    /// Data fsyncs (`sync_data`) of segment files.
    pub syncs: u64,
    /// Total time spent in those fsyncs, in nanoseconds.
    pub sync_nanos: u64,
    /// Bytes written to segments (records only).
    pub bytes_written: u64,
}

struct Request {
    first: u64,
    payloads: Vec<Vec<u8>>,
    bytes: u64,
    done: AppendDone,
}

impl Request {
    fn range(&self) -> RangeInclusive<u64> {
        self.first..=self.first + self.payloads.len() as u64 - 1
    }
}

struct State {
    queue: VecDeque<Request>,
    queued_bytes: u64,
    next_seq: u64,
    failed: Option<LogError>,
    closing: bool,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    records: AtomicU64,
    batches: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
    bytes_written: AtomicU64,
}

struct Shared {
    storage: Arc<dyn Storage>,
    wal_dir: PathBuf,
    opts: LogOptions,
    state: Mutex<State>,
    wake: Condvar,
    segments: Mutex<Vec<SegmentMeta>>,
    durable_seq: AtomicU64,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Callbacks run outside our locks, so a poisoned lock only means a panic in
    // our own code between consistent states; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Active {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    len: u64,
}

/// The durable log. `Send + Sync`: share it behind an `Arc`.
///
/// Sequence numbers start at 1 and are contiguous. A record is acknowledged (its
/// `done` callback gets `Ok`, [`Log::durable_seq`] covers it) only after
/// `sync_data` returned for it.
pub struct Log {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    lock: Option<LockGuard>,
    dir: PathBuf,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("last_seq", &self.last_seq())
            .field("durable_seq", &self.durable_seq())
            .finish()
    }
}

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "LOCK";
/// Name of the segment directory in the data directory.
pub const WAL_DIR: &str = "wal";

impl Log {
    /// Opens (or creates) the log under `dir/wal` on the real file system.
    /// See [`Log::open_with`].
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(Log, Recovery), LogError> {
        Log::open_with(Arc::new(FsStorage), dir, opts)
    }

    /// Opens (or creates) the log under `dir/wal` on `storage`: locks
    /// `dir/LOCK` (a second opener gets [`LogError::Locked`]), scans every segment,
    /// verifies every checksum and cuts a torn tail (see the decision table in
    /// [`crate::recovery`] and `docs/LOG_FORMAT.md`), then starts the writer thread.
    pub fn open_with(
        storage: Arc<dyn Storage>,
        dir: &Path,
        opts: LogOptions,
    ) -> Result<(Log, Recovery), LogError> {
        opts.validate()?;
        storage
            .create_dir_all(dir)
            .map_err(|e| LogError::io("create directory", dir, e))?;
        let lock_file = dir.join(LOCK_FILE);
        let guard = storage
            .try_lock(&lock_file)
            .map_err(|e| LogError::io("lock", &lock_file, e))?
            .ok_or_else(|| LogError::Locked {
                dir: dir.to_path_buf(),
                lock_file: lock_file.clone(),
            })?;
        let wal_dir = dir.join(WAL_DIR);
        storage
            .create_dir_all(&wal_dir)
            .map_err(|e| LogError::io("create directory", &wal_dir, e))?;
        let rec = recover(&*storage, &wal_dir, opts.max_record_bytes)?;
        let active_meta = rec
            .segments
            .last()
            .expect("recovery leaves a segment")
            .clone();
        let file = storage
            .open_append(&active_meta.path)
            .map_err(|e| LogError::io("open segment", &active_meta.path, e))?;
        let active = Active {
            file,
            path: active_meta.path,
            len: rec.active_len,
        };
        let last = rec.recovery.last_seq;
        let shared = Arc::new(Shared {
            storage,
            wal_dir,
            opts,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                next_seq: last + 1,
                failed: None,
                closing: false,
            }),
            wake: Condvar::new(),
            segments: Mutex::new(rec.segments),
            durable_seq: AtomicU64::new(last),
            counters: Counters::default(),
        });
        let worker = shared.clone();
        let writer = std::thread::Builder::new()
            .name("veltrix-log-writer".into())
            .spawn(move || writer_main(&worker, active))
            .map_err(|e| LogError::io("spawn writer thread", dir, e))?;
        let log = Log {
            shared,
            writer: Some(writer),
            lock: Some(guard),
            dir: dir.to_path_buf(),
        };
        Ok((log, rec.recovery))
    }

    /// Assigns the next contiguous seqs to `payloads` at once (concurrent callers
    /// get disjoint ranges, in queue order) and queues them for the writer.
    /// `done` is called from the writer thread once they are durable, or with the
    /// error; it must not block on this log (e.g. call `append_sync`).
    ///
    /// Errors (and `done` is then never called): [`LogError::QueueFull`] when the
    /// bounded queue is full, [`LogError::Failed`] after a write or fsync failure,
    /// [`LogError::RecordTooLarge`], [`LogError::BatchTooLarge`],
    /// [`LogError::EmptyAppend`], [`LogError::Closed`].
    pub fn append(
        &self,
        payloads: Vec<Vec<u8>>,
        done: AppendDone,
    ) -> Result<RangeInclusive<u64>, LogError> {
        if payloads.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let max = self.shared.opts.max_record_bytes;
        let mut bytes = 0u64;
        for p in &payloads {
            if p.len() as u64 > u64::from(max) {
                return Err(LogError::RecordTooLarge {
                    len: p.len() as u64,
                    max,
                });
            }
            bytes += p.len() as u64;
        }
        if bytes > self.shared.opts.queue_bytes {
            return Err(LogError::BatchTooLarge {
                bytes,
                max: self.shared.opts.queue_bytes,
            });
        }
        let mut st = lock(&self.shared.state);
        if let Some(cause) = &st.failed {
            return Err(LogError::Failed {
                cause: Box::new(cause.clone()),
            });
        }
        if st.closing {
            return Err(LogError::Closed);
        }
        if st.queue.len() >= self.shared.opts.queue_capacity
            || st.queued_bytes + bytes > self.shared.opts.queue_bytes
        {
            return Err(LogError::QueueFull {
                requests: st.queue.len(),
                bytes: st.queued_bytes,
            });
        }
        let req = Request {
            first: st.next_seq,
            payloads,
            bytes,
            done,
        };
        let range = req.range();
        st.next_seq = range.end() + 1;
        st.queued_bytes += bytes;
        st.queue.push_back(req);
        drop(st);
        self.shared.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        Ok(range)
    }

    /// [`Log::append`] and wait until the records are durable.
    pub fn append_sync(&self, payloads: Vec<Vec<u8>>) -> Result<RangeInclusive<u64>, LogError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.append(
            payloads,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        // A dropped sender means the writer thread is gone without answering.
        rx.recv().unwrap_or(Err(LogError::Closed))
    }

    /// Highest seq assigned so far (durable or not).
    pub fn last_seq(&self) -> u64 {
        lock(&self.shared.state).next_seq - 1
    }

    /// Highest seq known to be durable: every record up to it is fsync'd.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// Oldest retained seq.
    pub fn first_seq(&self) -> u64 {
        lock(&self.shared.segments)[0].first_seq
    }

    /// The error that stopped the log, if any.
    pub fn failure(&self) -> Option<LogError> {
        lock(&self.shared.state).failed.clone()
    }

    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        let c = &self.shared.counters;
        LogStats {
            appends: c.appends.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            sync_nanos: c.sync_nanos.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
        }
    }

    /// Paths of the retained segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        lock(&self.shared.segments)
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }

    /// Replays records from `seq` (clamped to at least 1) up to the durable seq at
    /// the time of the call, verifying every checksum again. Records still in
    /// flight are not returned. Fails with [`LogError::NotRetained`] when `seq` is
    /// older than the oldest retained segment. Do not retire segments while
    /// iterating over them.
    pub fn read_from(&self, seq: u64) -> Result<LogReader, LogError> {
        let seq = seq.max(1);
        let end = self.durable_seq();
        let segs = lock(&self.shared.segments).clone();
        let first = segs[0].first_seq;
        if seq < first {
            return Err(LogError::NotRetained { seq, first });
        }
        let idx = segs.partition_point(|s| s.first_seq <= seq) - 1;
        Ok(LogReader {
            storage: self.shared.storage.clone(),
            segments: segs[idx..].to_vec(),
            seg_idx: 0,
            reader: None,
            expected: 0,
            offset: 0,
            from: seq,
            end,
            max: self.shared.opts.max_record_bytes,
            done: false,
        })
    }

    /// Deletes whole segments all of whose records are older than `seq`, oldest
    /// first, syncing the directory after each so a crash never leaves a hole.
    /// Never deletes the active (last) segment. Returns how many were deleted.
    /// Pass the seq after the *oldest* snapshot you keep, so falling back to it
    /// still finds its log tail.
    pub fn retire_before(&self, seq: u64) -> Result<usize, LogError> {
        // Take them off the list first and do the I/O without the lock, so a roll in
        // the writer thread never waits for these directory fsyncs. If a removal
        // fails, the files left are still a contiguous oldest-first run, which the
        // next open simply finds again.
        let retired: Vec<SegmentMeta> = {
            let mut segs = lock(&self.shared.segments);
            let n = segs
                .windows(2)
                .take_while(|w| w[1].first_seq <= seq)
                .count();
            segs.drain(..n).collect()
        };
        for meta in &retired {
            let path = &meta.path;
            self.shared
                .storage
                .remove(path)
                .map_err(|e| LogError::io("remove segment", path, e))?;
            self.shared
                .storage
                .sync_dir(&self.shared.wal_dir)
                .map_err(|e| LogError::io("fsync directory", &self.shared.wal_dir, e))?;
        }
        Ok(retired.len())
    }

    /// Writes and fsyncs everything queued, stops the writer thread and releases
    /// the directory lock. Returns [`LogError::Failed`] if the log had failed.
    /// Dropping the log does the same and ignores the result.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        lock(&self.shared.state).closing = true;
        self.shared.wake.notify_all();
        if writer.thread().id() == std::thread::current().id() {
            // Dropped from inside a `done` callback: the writer finishes the queue
            // and exits on its own; joining ourselves would deadlock.
            return Ok(());
        }
        let joined = writer.join();
        // Release the directory only once the writer has stopped touching it.
        self.lock = None;
        if joined.is_err() {
            return Err(LogError::io(
                "stop writer",
                &self.dir,
                io::Error::other("writer thread panicked"),
            ));
        }
        match lock(&self.shared.state).failed.clone() {
            Some(cause) => Err(LogError::Failed {
                cause: Box::new(cause),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn call(done: AppendDone, r: Result<RangeInclusive<u64>, LogError>) {
    // A panicking callback must not kill the writer and strand every later waiter.
    let _ = catch_unwind(AssertUnwindSafe(move || done(r)));
}

fn writer_main(shared: &Shared, mut active: Active) {
    loop {
        let (batch, failed) = {
            let mut st = lock(&shared.state);
            while st.queue.is_empty() && !st.closing {
                st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.queue.is_empty() {
                return;
            }
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            while let Some(front) = st.queue.front() {
                if !batch.is_empty() && bytes + front.bytes > shared.opts.max_batch_bytes {
                    break;
                }
                let r = st.queue.pop_front().expect("front exists");
                bytes += r.bytes;
                st.queued_bytes -= r.bytes;
                batch.push(r);
            }
            (batch, st.failed.clone())
        };
        if let Some(cause) = failed {
            for r in batch {
                call(
                    r.done,
                    Err(LogError::Failed {
                        cause: Box::new(cause.clone()),
                    }),
                );
            }
            continue;
        }
        match write_batch(shared, &mut active, &batch) {
            Ok(()) => {
                let last = *batch.last().expect("non-empty").range().end();
                shared.durable_seq.store(last, Ordering::Release);
                shared.counters.batches.fetch_add(1, Ordering::Relaxed);
                for r in batch {
                    let range = r.range();
                    call(r.done, Ok(range));
                }
            }
            Err(e) => {
                // No retry: after a failed fsync the kernel may have dropped the dirty
                // pages, so a later successful fsync would prove nothing.
                let drained: Vec<Request> = {
                    let mut st = lock(&shared.state);
                    st.failed = Some(e.clone());
                    st.queued_bytes = 0;
                    st.queue.drain(..).collect()
                };
                for r in batch {
                    call(r.done, Err(e.clone()));
                }
                for r in drained {
                    call(
                        r.done,
                        Err(LogError::Failed {
                            cause: Box::new(e.clone()),
                        }),
                    );
                }
            }
        }
    }
}

fn sync(shared: &Shared, active: &mut Active) -> Result<(), LogError> {
    let t = Instant::now();
    active
        .file
        .sync_data()
        .map_err(|e| LogError::io("fsync", &active.path, e))?;
    let took = t.elapsed();
    shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .sync_nanos
        .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    if let Some(obs) = &shared.opts.sync_observer {
        obs(took);
    }
    Ok(())
}

fn flush(shared: &Shared, active: &mut Active, buf: &mut Vec<u8>) -> Result<(), LogError> {
    if buf.is_empty() {
        return Ok(());
    }
    active
        .file
        .write_all(buf)
        .map_err(|e| LogError::io("write", &active.path, e))?;
    active.len += buf.len() as u64;
    shared
        .counters
        .bytes_written
        .fetch_add(buf.len() as u64, Ordering::Relaxed);
    buf.clear();
    Ok(())
}

/// Writes a batch, rolling segments as needed, and fsyncs it. On return `Ok`
/// every record of the batch is durable.
fn write_batch(shared: &Shared, active: &mut Active, batch: &[Request]) -> Result<(), LogError> {
    let total: u64 = batch
        .iter()
        .map(|r| r.bytes + (RECORD_HEADER_LEN * r.payloads.len()) as u64)
        .sum();
    let mut buf = Vec::with_capacity(total.min(shared.opts.segment_bytes) as usize);
    let header = SEGMENT_HEADER_LEN as u64;
    for r in batch {
        for (i, p) in r.payloads.iter().enumerate() {
            let seq = r.first + i as u64;
            let rec = (RECORD_HEADER_LEN + p.len()) as u64;
            let used = active.len + buf.len() as u64;
            if used > header && used + rec > shared.opts.segment_bytes {
                flush(shared, active, &mut buf)?;
                // The old segment must be complete and durable before the new one
                // exists: recovery treats damage in a non-last segment as fatal.
                sync(shared, active)?;
                let (meta, file) = create_segment(&*shared.storage, &shared.wal_dir, seq)?;
                *active = Active {
                    file,
                    path: meta.path.clone(),
                    len: header,
                };
                lock(&shared.segments).push(meta);
            }
            encode_record(&mut buf, seq, p);
        }
        shared
            .counters
            .records
            .fetch_add(r.payloads.len() as u64, Ordering::Relaxed);
    }
    flush(shared, active, &mut buf)?;
    sync(shared, active)
}

/// Iterator returned by [`Log::read_from`]: `(seq, payload)` in order.
pub struct LogReader {
    storage: Arc<dyn Storage>,
    segments: Vec<SegmentMeta>,
    seg_idx: usize,
    reader: Option<Box<dyn Read + Send>>,
    expected: u64,
    offset: u64,
    from: u64,
    end: u64,
    max: u32,
    done: bool,
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("next", &self.from)
            .field("end", &self.end)
            .finish()
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl LogReader {
    fn rel(&self) -> String {
        let p = &self.segments[self.seg_idx].path;
        format!(
            "wal/{}",
            p.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )
    }

    fn bad(&self, problem: String) -> LogError {
        LogError::Corrupt {
            file: self.rel(),
            offset: self.offset,
            problem: Corruption::Record(problem),
        }
    }

    fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        loop {
            if self.from > self.end {
                return Ok(None);
            }
            if self.reader.is_none() {
                if self.seg_idx >= self.segments.len() {
                    return Err(LogError::Corrupt {
                        file: "wal".into(),
                        offset: 0,
                        problem: Corruption::Record(format!(
                            "log ends before durable seq {} (next seq {})",
                            self.end, self.from
                        )),
                    });
                }
                let meta = &self.segments[self.seg_idx];
                let mut r = self
                    .storage
                    .open_read(&meta.path)
                    .map_err(|e| LogError::io("open segment", &meta.path, e))?;
                let mut h = [0u8; SEGMENT_HEADER_LEN];
                let n = read_full(&mut *r, &mut h)
                    .map_err(|e| LogError::io("read segment", &meta.path, e))?;
                self.offset = 0;
                let first = decode_segment_header(&h[..n])
                    .map_err(|p| self.bad(format!("bad segment header: {p:?}")))?;
                if first != meta.first_seq {
                    return Err(self.bad(format!(
                        "segment header says first seq {first} but the file name says {}",
                        meta.first_seq
                    )));
                }
                if self.seg_idx > 0 && first != self.expected {
                    return Err(self.bad(format!(
                        "segment starts at seq {first} but the previous segment ended at seq {} (truncated or replaced since the log was opened)",
                        self.expected - 1
                    )));
                }
                self.expected = first;
                self.offset = SEGMENT_HEADER_LEN as u64;
                self.reader = Some(r);
            }
            let path = self.segments[self.seg_idx].path.clone();
            let r = self.reader.as_mut().expect("opened above");
            let mut h = [0u8; RECORD_HEADER_LEN];
            let n =
                read_full(&mut **r, &mut h).map_err(|e| LogError::io("read segment", &path, e))?;
            if n == 0 {
                // Clean end of this segment: continue with the next one.
                self.reader = None;
                self.seg_idx += 1;
                continue;
            }
            if n < RECORD_HEADER_LEN {
                return Err(self.bad(format!("incomplete record header ({n} bytes)")));
            }
            let rh = decode_record_header(&h);
            if rh.len > self.max {
                return Err(self.bad(format!(
                    "record length {} exceeds the maximum {}",
                    rh.len, self.max
                )));
            }
            let mut payload = vec![0u8; rh.len as usize];
            let got = read_full(&mut **r, &mut payload)
                .map_err(|e| LogError::io("read segment", &path, e))?;
            if got < payload.len() {
                return Err(self.bad(format!(
                    "record runs past the end of the file ({got} of {} bytes)",
                    rh.len
                )));
            }
            if !rh.checks(&payload) {
                return Err(self.bad(format!(
                    "checksum mismatch (expected seq {})",
                    self.expected
                )));
            }
            if rh.seq != self.expected {
                return Err(self.bad(format!(
                    "record has seq {} where {} was expected",
                    rh.seq, self.expected
                )));
            }
            self.offset += (RECORD_HEADER_LEN + payload.len()) as u64;
            self.expected += 1;
            if rh.seq < self.from {
                continue;
            }
            self.from += 1;
            return Ok(Some((rh.seq, payload)));
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<(u64, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
