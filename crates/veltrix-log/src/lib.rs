//! Veltrix durable log: checksummed segments, group commit, snapshots and
//! torn-tail recovery, on std files and threads only.
//!
//! Layout of a data directory (every byte is described in `docs/LOG_FORMAT.md`):
//!
//! ```text
//! data_dir/LOCK                              exclusive lock while a Log is open
//! data_dir/wal/00000000000000000001.seg      segments, named by their first seq
//! data_dir/wal/NEWEST                        the newest segment's first seq (a deleted newest segment is noticed)
//! data_dir/snapshots/00000000000000000500.snap  snapshots, named by their seq
//! ```
//!
//! [`Log`] appends opaque payloads with contiguous sequence numbers from 1 and
//! acknowledges them only once fsync'd; one writer thread group-commits every
//! queued append with a single `sync_data`. [`Log::open`] verifies every record and
//! cuts only a torn tail (see the decision table in [`recovery`]); any other damage
//! is an error naming the file and byte. After a failed write or fsync the log
//! stops acknowledging until reopened. [`SnapshotStore`] writes snapshots
//! atomically and finds the newest valid one.
//!
//! All file access goes through [`Storage`]; [`SimStorage`] implements it in
//! memory with injected faults and simulated crashes for tests.
//!
//! ```
//! # fn main() -> Result<(), veltrix_log::LogError> {
//! let dir = tempfile::tempdir().unwrap();
//! let (log, recovery) = veltrix_log::Log::open(dir.path(), Default::default())?;
//! assert_eq!(recovery.records, 0);
//! assert_eq!(log.append_sync(vec![b"a".to_vec(), b"b".to_vec()])?, 1..=2);
//! let all: Vec<_> = log.read_from(1)?.collect::<Result<_, _>>()?;
//! assert_eq!(all, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
//! log.close()
//! # }
//! ```

#![warn(missing_docs)]

mod error;
pub mod format;
mod log;
pub mod recovery;
mod sim;
mod snapshot;
mod storage;

pub use error::{Corruption, LogError};
pub use log::{AppendDone, LOCK_FILE, Log, LogOptions, LogReader, LogStats, SyncObserver, WAL_DIR};
pub use recovery::{NEWEST_SEGMENT_FILE, Recovery, TornTail};
pub use sim::{CrashMode, SimStorage};
pub use snapshot::{
    LatestSnapshot, Part, REWRITE_AFTER, SNAPSHOT_DIR, SkippedSnapshot, Snapshot, SnapshotOptions,
    SnapshotStore,
};
pub use storage::{FsStorage, LockGuard, Storage, StorageFile};
