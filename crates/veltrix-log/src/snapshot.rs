//! Snapshots of engine state in `data_dir/snapshots/`, written atomically.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::error::LogError;
use crate::format::{
    PIECE_ENTRY_LEN, PieceEntry, Placed, SNAPSHOT_HEADER_LEN, SNAPSHOT_VERSION, SnapshotFile,
    SnapshotProblem, decode_piece_entry, decode_snapshot, parse_snapshot_file_name,
    snapshot_file_name, snapshot_head,
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
/// A shared part unchanged since it was written is referred to, not
/// written again, for between `REWRITE_AFTER` and `2 * REWRITE_AFTER - 1`
/// snapshots (staggered by part, so parts written together are not all
/// written again together); then it is written again. This bounds how far
/// back the files a snapshot needs go (disk use, and the damage one bad
/// file can do) at the price of writing each unchanged part once every few
/// snapshots.
pub const REWRITE_AFTER: u64 = 4;

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
    /// store holds a `Weak` to it): the store remembers, by allocation,
    /// their checksum and the file and offset they were written at, so a
    /// later snapshot holding the same `Arc` refers to them there instead
    /// of writing (or even reading) them again (see [`REWRITE_AFTER`]).
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

/// Where a [`Part::Shared`] part of the last snapshot written is on disk.
struct Located {
    /// Keeps the allocation's address from being reused while remembered.
    weak: Weak<Vec<u8>>,
    crc: u32,
    /// The snapshot file holding the bytes, and where in it.
    source: u64,
    offset: u64,
    /// `Memory::written` when that file was written.
    written_at: u64,
}

/// What the store remembers between snapshots.
#[derive(Default)]
struct Memory {
    /// The shared parts of the last snapshot written, by the address of the
    /// `Arc`'s allocation (the `Weak` in each keeps it from being reused).
    by_allocation: HashMap<usize, Located>,
    /// The older snapshots each snapshot file present takes pieces from,
    /// for the files whose table was written or read since opening.
    sources: BTreeMap<u64, Vec<u64>>,
    /// Snapshots written since the store was opened.
    written: u64,
    /// Bytes checksummed by reading them, since the store was opened.
    checksummed: u64,
    /// Bytes written to snapshot files, since the store was opened.
    bytes_written: u64,
}

/// A part's place in the snapshot being written.
struct Planned {
    placed: Placed,
    /// `Memory::written` of the snapshot that holds the bytes.
    written_at: u64,
}

/// Writes and finds snapshots. The data directory lock held by [`crate::Log`]
/// is what keeps a second process out; the store itself takes no lock.
pub struct SnapshotStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    opts: SnapshotOptions,
    memory: Mutex<Memory>,
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
            memory: Mutex::default(),
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
        lock(&self.memory).checksummed
    }

    /// Bytes written to snapshot files since the store was opened: headers,
    /// piece tables and the pieces written again (not those referred to).
    pub fn bytes_written(&self) -> u64 {
        lock(&self.memory).bytes_written
    }

    /// The snapshots a restart may start from: the newest `keep` files
    /// (oldest first). Older files still present only hold pieces those
    /// take; the log must keep the records after the oldest of these.
    pub fn restart_points(&self) -> Result<Vec<u64>, LogError> {
        let seqs = self.list()?;
        Ok(seqs[seqs.len().saturating_sub(self.opts.keep)..].to_vec())
    }

    /// Where each part goes: a shared part written in an earlier snapshot
    /// still present, recently enough (see [`REWRITE_AFTER`]), is referred
    /// to there; every other part is written here, with its checksum
    /// remembered when it is known and computed (between `step`s) when not.
    fn plan(&self, seq: u64, parts: &[Part<'_>], step: &mut dyn FnMut()) -> Vec<Planned> {
        let mut memory = lock(&self.memory);
        let now = memory.written;
        let mut checksummed = 0;
        let planned = parts
            .iter()
            .map(|part| {
                let located = match part {
                    Part::Shared(bytes) => {
                        memory.by_allocation.get(&address(bytes)).filter(|known| {
                            known.weak.upgrade().is_some_and(|b| Arc::ptr_eq(&b, bytes))
                        })
                    }
                    Part::Bytes(_) => None,
                };
                let len = part.bytes().len();
                match located {
                    Some(known)
                        if known.source < seq
                            && memory.sources.contains_key(&known.source)
                            && now - known.written_at <= rewrite_age(part) =>
                    {
                        Planned {
                            placed: Placed::Elsewhere(PieceEntry {
                                source: known.source,
                                offset: known.offset,
                                len: len as u64,
                                crc: known.crc,
                            }),
                            written_at: known.written_at,
                        }
                    }
                    known => {
                        let crc = known.map(|known| known.crc).unwrap_or_else(|| {
                            step();
                            checksummed += len as u64;
                            crc32c::crc32c(part.bytes())
                        });
                        Planned {
                            placed: Placed::Here { crc, len },
                            written_at: now,
                        }
                    }
                }
            })
            .collect();
        memory.checksummed += checksummed;
        planned
    }

    /// After snapshot `seq` is durable: remembers where its shared parts
    /// are (only its own: older snapshots' parts are never asked for again)
    /// and which files it takes pieces from.
    fn remember(&self, seq: u64, parts: &[Part<'_>], planned: &[Planned], offsets: &[u64]) {
        let mut memory = lock(&self.memory);
        let mut here = offsets.iter();
        let mut by_allocation = HashMap::with_capacity(memory.by_allocation.len());
        let mut sources = BTreeSet::new();
        for (part, plan) in parts.iter().zip(planned) {
            let (crc, source, offset) = match plan.placed {
                Placed::Here { crc, .. } => (
                    crc,
                    seq,
                    *here.next().expect("an offset per piece written here"),
                ),
                Placed::Elsewhere(entry) => {
                    sources.insert(entry.source);
                    (entry.crc, entry.source, entry.offset)
                }
            };
            if let Part::Shared(bytes) = part {
                let located = Located {
                    weak: Arc::downgrade(bytes),
                    crc,
                    source,
                    offset,
                    written_at: plan.written_at,
                };
                by_allocation.insert(address(bytes), located);
            }
        }
        memory.by_allocation = by_allocation;
        memory.sources.insert(seq, sources.into_iter().collect());
        memory.written += 1;
    }

    /// [`SnapshotStore::write_parts_stepping`] of [`Part`]s. Shared parts
    /// written in a recent snapshot still present are not written again:
    /// the new file's piece table refers to them where they are (format
    /// 2, `docs/LOG_FORMAT.md`). The file's checksum is combined from the
    /// parts', so parts whose checksum is remembered are not read again.
    pub fn write_pieces_stepping(
        &self,
        seq: u64,
        parts: &[Part<'_>],
        step: &mut dyn FnMut(),
    ) -> Result<PathBuf, LogError> {
        if let Some(newer) = self.taking_pieces_from(seq) {
            return Err(LogError::SnapshotShared { seq, newer });
        }
        let planned = self.plan(seq, parts, step);
        let placed: Vec<Placed> = planned.iter().map(|plan| plan.placed).collect();
        let (head, offsets) = snapshot_head(seq, &placed);
        let name = snapshot_file_name(seq);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        match self.storage.remove(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("remove temporary snapshot", &tmp, e)),
        }
        let mut written = head.len() as u64;
        {
            let mut f = self
                .storage
                .create(&tmp)
                .map_err(|e| LogError::io("create", &tmp, e))?;
            f.write_all(&head)
                .map_err(|e| LogError::io("write", &tmp, e))?;
            // Synced every SYNC_EVERY_BYTES written (parts may be small or
            // large: the encoder hands out its cached chunks as they are):
            // one fsync of a whole large snapshot would queue hundreds of
            // megabytes at the disk at once, and every log fsync issued
            // meanwhile (each acknowledgement waits for one) would wait
            // behind them.
            let mut unsynced = 0;
            let written_here = parts
                .iter()
                .zip(&placed)
                .filter(|(_, placed)| matches!(placed, Placed::Here { .. }));
            for piece in written_here.flat_map(|(part, _)| part.bytes().chunks(WRITE_PIECE_BYTES)) {
                step();
                f.write_all(piece)
                    .map_err(|e| LogError::io("write", &tmp, e))?;
                unsynced += piece.len();
                written += piece.len() as u64;
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
        self.remember(seq, parts, &planned, &offsets);
        lock(&self.memory).bytes_written += written;
        self.remove_unneeded()?;
        Ok(path)
    }

    /// A newer snapshot file known to take pieces from snapshot `seq`
    /// (replacing `seq` would break it), if any.
    fn taking_pieces_from(&self, seq: u64) -> Option<u64> {
        lock(&self.memory)
            .sources
            .range(seq + 1..)
            .find(|(_, sources)| sources.contains(&seq))
            .map(|(newer, _)| *newer)
    }

    /// Deletes the snapshot files that neither are among the newest `keep`
    /// nor hold pieces those take.
    fn remove_unneeded(&self) -> Result<(), LogError> {
        let seqs = self.list()?;
        let newest = &seqs[seqs.len().saturating_sub(self.opts.keep)..];
        let mut needed: BTreeSet<u64> = newest.iter().copied().collect();
        for &seq in newest {
            needed.extend(self.sources_of(seq));
        }
        let unneeded: Vec<u64> = seqs.into_iter().filter(|s| !needed.contains(s)).collect();
        for &old in &unneeded {
            let p = self.dir.join(snapshot_file_name(old));
            self.storage
                .remove(&p)
                .map_err(|e| LogError::io("remove old snapshot", &p, e))?;
            lock(&self.memory).sources.remove(&old);
        }
        if !unneeded.is_empty() {
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsync directory", &self.dir, e))?;
        }
        Ok(())
    }

    /// The files snapshot `seq` takes pieces from: remembered, or read
    /// from its piece table (only the table). A file whose table cannot be
    /// read takes none: it cannot be loaded anyway, and [`latest`]
    /// reports it.
    ///
    /// [`latest`]: SnapshotStore::latest
    fn sources_of(&self, seq: u64) -> Vec<u64> {
        if let Some(sources) = lock(&self.memory).sources.get(&seq) {
            return sources.clone();
        }
        let path = self.dir.join(snapshot_file_name(seq));
        let sources = self.read_sources(&path, seq).unwrap_or_default();
        lock(&self.memory).sources.insert(seq, sources.clone());
        sources
    }

    fn read_sources(&self, path: &Path, seq: u64) -> Option<Vec<u64>> {
        let head = self
            .storage
            .read_at(path, 0, SNAPSHOT_HEADER_LEN as u64 + 4)
            .ok()?;
        if u16::from_le_bytes([head[8], head[9]]) < 2 {
            return Some(Vec::new());
        }
        let count = u32::from_le_bytes(head[32..36].try_into().expect("4 bytes")) as u64;
        let table = self
            .storage
            .read_at(path, head.len() as u64, count * PIECE_ENTRY_LEN as u64)
            .ok()?;
        let pieces: Vec<PieceEntry> = table.as_chunks().0.iter().map(decode_piece_entry).collect();
        Some(crate::format::sources_of(seq, &pieces))
    }

    /// The newest valid snapshot. Corrupt newer files, and files whose
    /// pieces in older files are missing or damaged, are skipped and
    /// reported in [`LatestSnapshot::skipped`]. A file with a *newer format
    /// version* is an error ([`LogError::SnapshotVersion`]), not skipped: it
    /// is probably valid, and starting from an older snapshot would need log
    /// records that may be retired already.
    pub fn latest(&self) -> Result<LatestSnapshot, LogError> {
        let mut out = LatestSnapshot::default();
        for seq in self.list()?.into_iter().rev() {
            let name = snapshot_file_name(seq);
            let path = self.dir.join(&name);
            let bytes = self
                .storage
                .read(&path)
                .map_err(|e| LogError::io("read snapshot", &path, e))?;
            let reason = match decode_snapshot(&bytes) {
                Ok(file) if file.seq == seq => match self.assemble(&file, &bytes) {
                    Ok(payload) => {
                        out.snapshot = Some(Snapshot { seq, payload, path });
                        return Ok(out);
                    }
                    Err(reason) => reason,
                },
                Ok(file) => format!("header says seq {} but the file name says {seq}", file.seq),
                Err(SnapshotProblem::Corrupt(reason)) => reason,
                Err(SnapshotProblem::NewerVersion(found)) => {
                    return Err(LogError::SnapshotVersion {
                        file: format!("{SNAPSHOT_DIR}/{name}"),
                        found,
                        supported: SNAPSHOT_VERSION,
                    });
                }
            };
            out.skipped.push(SkippedSnapshot { path, reason });
        }
        Ok(out)
    }

    /// The payload of a checked snapshot file: its pieces end to end, those
    /// held in older files read there and checked against their CRC.
    fn assemble(&self, file: &SnapshotFile, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let total = file
            .pieces
            .iter()
            .try_fold(0u64, |total, piece| total.checked_add(piece.len))
            .ok_or("the pieces add up to more than 2^64 bytes")?;
        let mut payload = Vec::new();
        payload
            .try_reserve_exact(total as usize)
            .map_err(|_| format!("the pieces add up to {total} bytes, more than can be held"))?;
        for (index, piece) in file.pieces.iter().enumerate() {
            if piece.source == file.seq {
                let start = piece.offset as usize;
                payload.extend_from_slice(&bytes[start..start + piece.len as usize]);
                continue;
            }
            let source = self.dir.join(snapshot_file_name(piece.source));
            let elsewhere = |what: String| {
                format!(
                    "piece {index} (bytes {}..+{} of snapshot {}) {what}",
                    piece.offset, piece.len, piece.source
                )
            };
            let held = match self.storage.read_at(&source, piece.offset, piece.len) {
                Ok(held) => held,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(elsewhere(format!(
                        "cannot be read: {} is missing",
                        source.display()
                    )));
                }
                Err(e) => return Err(elsewhere(format!("cannot be read: {e}"))),
            };
            let crc = crc32c::crc32c(&held);
            if crc != piece.crc {
                return Err(elsewhere(format!(
                    "does not match its checksum (stored {:#010x}, computed {crc:#010x})",
                    piece.crc
                )));
            }
            payload.extend_from_slice(&held);
        }
        Ok(payload)
    }
}

/// How many snapshots a shared part may be referred to before it is
/// written again: [`REWRITE_AFTER`] plus a per-part stagger below it.
fn rewrite_age(part: &Part<'_>) -> u64 {
    let stagger = match part {
        Part::Shared(bytes) => (address(bytes) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32,
        Part::Bytes(_) => 0,
    };
    REWRITE_AFTER + stagger % REWRITE_AFTER
}

fn address(bytes: &Arc<Vec<u8>>) -> usize {
    Arc::as_ptr(bytes) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
