//! Snapshots of engine state in `data_dir/snapshots/`, written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::error::LogError;
use crate::format::{
    SNAPSHOT_VERSION, SnapshotProblem, decode_snapshot, parse_snapshot_file_name,
    snapshot_file_name, snapshot_header_of_checksums,
};
use crate::storage::{FsStorage, Storage};

/// Name of the snapshot directory in the data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
const TMP_SUFFIX: &str = ".tmp";
/// A snapshot is written and fsync'd this many bytes at a time (see
/// `SnapshotStore::write`): at 2 GB/s a log fsync waits at most ~4 ms
/// behind one piece.
const SYNC_EVERY_BYTES: usize = 8 << 20;
/// The most a snapshot write hands the kernel at once: the caller's `step`
/// runs between writes (see [`SnapshotStore::write_parts_stepping`]).
const WRITE_PIECE_BYTES: usize = 256 << 10;

/// Snapshot store options.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotOptions {
    /// How many snapshots to keep (newest by seq); at least 1. Default 3.
    pub keep: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { keep: 3 }
    }
}

/// A snapshot read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The log seq the snapshot covers (state after applying records 1..=seq).
    pub seq: u64,
    /// The opaque payload given to [`SnapshotStore::write`].
    pub payload: Vec<u8>,
    /// The file it came from.
    pub path: PathBuf,
}

/// A snapshot file that [`SnapshotStore::latest`] passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// Result of [`SnapshotStore::latest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatestSnapshot {
    /// Newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer files that were corrupt and skipped (the server must log these).
    pub skipped: Vec<SkippedSnapshot>,
}

/// One piece of a snapshot's payload (see
/// [`SnapshotStore::write_pieces_stepping`]).
#[derive(Clone, Copy)]
pub enum Part<'a> {
    /// Bytes to checksum as they are written.
    Bytes(&'a [u8]),
    /// Bytes behind an `Arc` that nobody changes in place (a `Vec` behind an
    /// `Arc` can only be changed by moving it to a new allocation while the
    /// store holds a `Weak` to it): the store remembers their checksum by
    /// allocation, so a later snapshot holding the same `Arc` does not read
    /// them again to checksum them.
    Shared(&'a Arc<Vec<u8>>),
}

impl Part<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Bytes(bytes) => bytes,
            Part::Shared(bytes) => bytes.as_slice(),
        }
    }
}

/// The checksums of the [`Part::Shared`] parts of the last snapshot written.
#[derive(Default)]
struct Checksums {
    /// By the address of the `Arc`'s allocation, which the `Weak` beside it
    /// keeps from being reused.
    by_allocation: HashMap<usize, (Weak<Vec<u8>>, u32)>,
    /// Bytes checksummed by reading them, since the store was opened.
    read: u64,
}

/// Writes and finds snapshots. The data directory lock held by [`crate::Log`]
/// is what keeps a second process out; the store itself takes no lock.
pub struct SnapshotStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    opts: SnapshotOptions,
    checksums: Mutex<Checksums>,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .finish()
    }
}

impl SnapshotStore {
    /// Opens `data_dir/snapshots` on the real file system.
    pub fn open(data_dir: &Path, opts: SnapshotOptions) -> Result<SnapshotStore, LogError> {
        SnapshotStore::open_with(Arc::new(FsStorage), data_dir, opts)
    }

    /// Opens `data_dir/snapshots` on `storage`, creating it, and removes temporary
    /// files left by a crash during [`SnapshotStore::write`] (they were never
    /// renamed, so nothing refers to them).
    pub fn open_with(
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        opts: SnapshotOptions,
    ) -> Result<SnapshotStore, LogError> {
        if opts.keep == 0 {
            return Err(LogError::InvalidOptions(
                "snapshot keep must be at least 1".into(),
            ));
        }
        let dir = data_dir.join(SNAPSHOT_DIR);
        storage
            .create_dir_all(&dir)
            .map_err(|e| LogError::io("create directory", &dir, e))?;
        let store = SnapshotStore {
            storage,
            dir,
            opts,
            checksums: Mutex::default(),
        };
        for name in store.names()? {
            if name.ends_with(TMP_SUFFIX) {
                let p = store.dir.join(&name);
                store
                    .storage
                    .remove(&p)
                    .map_err(|e| LogError::io("remove temporary snapshot", &p, e))?;
            }
        }
        Ok(store)
    }

    fn names(&self) -> Result<Vec<String>, LogError> {
        self.storage
            .list(&self.dir)
            .map_err(|e| LogError::io("list", &self.dir, e))
    }

    /// Seqs of the snapshot files present, oldest first (valid or not).
    pub fn list(&self) -> Result<Vec<u64>, LogError> {
        let mut seqs: Vec<u64> = self
            .names()?
            .iter()
            .filter_map(|n| parse_snapshot_file_name(n))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Atomically writes the snapshot covering the log up to `seq`: temp file,
    /// write, fsync, rename over `NNN.snap`, fsync the directory. Then deletes all
    /// but the newest `keep` snapshots. Returns the snapshot's path.
    pub fn write(&self, seq: u64, payload: &[u8]) -> Result<PathBuf, LogError> {
        self.write_parts(seq, &[payload])
    }

    /// [`SnapshotStore::write`] of a payload made of `parts` end to end,
    /// so a caller that builds it in pieces need not copy them into one.
    pub fn write_parts(&self, seq: u64, parts: &[&[u8]]) -> Result<PathBuf, LogError> {
        self.write_parts_stepping(seq, parts, &mut || {})
    }

    /// [`SnapshotStore::write_parts`], handing the kernel at most 256 KiB
    /// at a time and calling `step` between writes, so a caller writing in
    /// the background can let other threads run (a write system call is not
    /// preempted on a kernel built without preemption: copying 8 MiB into
    /// the page cache held a core for milliseconds).
    pub fn write_parts_stepping(
        &self,
        seq: u64,
        parts: &[&[u8]],
        step: &mut dyn FnMut(),
    ) -> Result<PathBuf, LogError> {
        let parts: Vec<Part<'_>> = parts.iter().map(|part| Part::Bytes(part)).collect();
        self.write_pieces_stepping(seq, &parts, step)
    }

    /// Bytes checksummed by reading them since the store was opened (the
    /// checksums of [`Part::Shared`] parts seen before are remembered).
    pub fn bytes_checksummed(&self) -> u64 {
        lock(&self.checksums).read
    }

    /// The checksum of each part: remembered for a shared part written
    /// last time, else computed. Remembers this snapshot's shared parts
    /// (only those: older ones are never asked for again).
    fn checksums_of(&self, parts: &[Part<'_>], step: &mut dyn FnMut()) -> Vec<(u32, usize)> {
        let mut checksums = lock(&self.checksums);
        let mut remembered = HashMap::with_capacity(checksums.by_allocation.len());
        let mut read = 0;
        let out = parts
            .iter()
            .map(|part| {
                let known = match part {
                    Part::Shared(bytes) => checksums
                        .by_allocation
                        .get(&address(bytes))
                        .filter(|(weak, _)| weak.upgrade().is_some_and(|b| Arc::ptr_eq(&b, bytes)))
                        .map(|(_, crc)| *crc),
                    Part::Bytes(_) => None,
                };
                let crc = known.unwrap_or_else(|| {
                    step();
                    read += part.bytes().len() as u64;
                    crc32c::crc32c(part.bytes())
                });
                if let Part::Shared(bytes) = part {
                    remembered.insert(address(bytes), (Arc::downgrade(bytes), crc));
                }
                (crc, part.bytes().len())
            })
            .collect();
        checksums.by_allocation = remembered;
        checksums.read += read;
        out
    }

    /// [`SnapshotStore::write_parts_stepping`] of [`Part`]s: the checksums
    /// of shared parts written in the previous snapshot are not computed
    /// again (the payload's checksum is combined from the parts').
    pub fn write_pieces_stepping(
        &self,
        seq: u64,
        parts: &[Part<'_>],
        step: &mut dyn FnMut(),
    ) -> Result<PathBuf, LogError> {
        let checksums = self.checksums_of(parts, step);
        let name = snapshot_file_name(seq);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        match self.storage.remove(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("remove temporary snapshot", &tmp, e)),
        }
        {
            let mut f = self
                .storage
                .create(&tmp)
                .map_err(|e| LogError::io("create", &tmp, e))?;
            f.write_all(&snapshot_header_of_checksums(seq, &checksums))
                .map_err(|e| LogError::io("write", &tmp, e))?;
            // Synced every SYNC_EVERY_BYTES written (parts may be small or
            // large: the encoder hands out its cached chunks as they are):
            // one fsync of a whole large snapshot would queue hundreds of
            // megabytes at the disk at once, and every log fsync issued
            // meanwhile (each acknowledgement waits for one) would wait
            // behind them.
            let mut unsynced = 0;
            for piece in parts
                .iter()
                .flat_map(|part| part.bytes().chunks(WRITE_PIECE_BYTES))
            {
                step();
                f.write_all(piece)
                    .map_err(|e| LogError::io("write", &tmp, e))?;
                unsynced += piece.len();
                if unsynced >= SYNC_EVERY_BYTES {
                    f.sync_data().map_err(|e| LogError::io("fsync", &tmp, e))?;
                    unsynced = 0;
                }
            }
            f.sync_data().map_err(|e| LogError::io("fsync", &tmp, e))?;
        }
        self.storage
            .rename(&tmp, &path)
            .map_err(|e| LogError::io("rename", &tmp, e))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io("fsync directory", &self.dir, e))?;
        let seqs = self.list()?;
        if seqs.len() > self.opts.keep {
            for old in &seqs[..seqs.len() - self.opts.keep] {
                let p = self.dir.join(snapshot_file_name(*old));
                self.storage
                    .remove(&p)
                    .map_err(|e| LogError::io("remove old snapshot", &p, e))?;
            }
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync directory", &self.dir, e))?;
        }
        Ok(path)
    }

    /// The newest valid snapshot. Corrupt newer files are skipped and reported in
    /// [`LatestSnapshot::skipped`]. A file with a *newer format version* is an
    /// error ([`LogError::SnapshotVersion`]), not skipped: it is probably valid,
    /// and starting from an older snapshot would need log records that may be
    /// retired already.
    pub fn latest(&self) -> Result<LatestSnapshot, LogError> {
        let mut out = LatestSnapshot::default();
        for seq in self.list()?.into_iter().rev() {
            let name = snapshot_file_name(seq);
            let path = self.dir.join(&name);
            let bytes = self
                .storage
                .read(&path)
                .map_err(|e| LogError::io("read snapshot", &path, e))?;
            match decode_snapshot(&bytes) {
                Ok((s, payload)) if s == seq => {
                    out.snapshot = Some(Snapshot {
                        seq,
                        payload: payload.to_vec(),
                        path,
                    });
                    return Ok(out);
                }
                Ok((s, _)) => out.skipped.push(SkippedSnapshot {
                    path,
                    reason: format!("header says seq {s} but the file name says {seq}"),
                }),
                Err(SnapshotProblem::Corrupt(reason)) => {
                    out.skipped.push(SkippedSnapshot { path, reason })
                }
                Err(SnapshotProblem::NewerVersion(found)) => {
                    return Err(LogError::SnapshotVersion {
                        file: format!("{SNAPSHOT_DIR}/{name}"),
                        found,
                        supported: SNAPSHOT_VERSION,
                    });
                }
            }
        }
        Ok(out)
    }
}

fn address(bytes: &Arc<Vec<u8>>) -> usize {
    Arc::as_ptr(bytes) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
