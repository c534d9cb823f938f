//! Errors. Every variant says which file and, for corruption, which byte.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the log and the snapshot store.
///
/// `Clone` because one failed fsync has to be reported to every waiter of its
/// batch; I/O errors are shared behind an `Arc` for that reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// Another process (or another `Log` in this process) holds the directory lock.
    #[error(
        "{} is locked by another process (lock file {}); is another Veltrix server using this data_dir?",
        dir.display(),
        lock_file.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file that could not be locked.
        lock_file: PathBuf,
    },

    /// An I/O error other than a full disk.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the log was doing ("fsync", "write", "open", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },

    /// The disk is full (`ENOSPC` / `ErrorKind::StorageFull`); the server maps this to 507.
    #[error("no space left on device: {op} {}: {source}", path.display())]
    NoSpace {
        /// What the log was doing.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },

    /// The log on disk is damaged somewhere other than a torn tail; the log refuses
    /// to open rather than drop data that may have been acknowledged.
    #[error("{file} at byte {offset}: {problem}; refusing to start")]
    Corrupt {
        /// Path relative to the data directory, e.g. `wal/00000000000000000001.seg`.
        file: String,
        /// Byte offset in that file where the problem starts.
        offset: u64,
        /// What is wrong.
        problem: Corruption,
    },

    /// The newest snapshot was written by a newer format version. We do not fall
    /// back to an older snapshot: the newer one may be perfectly valid, and the log
    /// before it may already be retired.
    #[error(
        "{file}: snapshot format version {found} is newer than this build supports ({supported}); upgrade Veltrix or move the file away deliberately"
    )]
    SnapshotVersion {
        /// Path relative to the data directory.
        file: String,
        /// Version found in the file.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },

    /// The bounded append queue is full; the server answers 429 and the caller retries.
    #[error("append queue is full ({requests} requests, {bytes} bytes queued); retry later")]
    QueueFull {
        /// Requests waiting when the append was refused.
        requests: usize,
        /// Payload bytes waiting when the append was refused.
        bytes: u64,
    },

    /// An earlier write or fsync failed; nothing more is accepted until the log is
    /// reopened (fsync is never retried: after a failed fsync the page cache may
    /// already have dropped the dirty pages, so a later "successful" fsync proves nothing).
    #[error("log stopped after an earlier failure ({cause}); reopen it to continue")]
    Failed {
        /// The original failure.
        cause: Box<LogError>,
    },

    /// The log was closed.
    #[error("log is closed")]
    Closed,

    /// A single payload is over `max_record_bytes`.
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload length.
        len: u64,
        /// The configured limit.
        max: u32,
    },

    /// One `append` call carries more bytes than the whole queue may hold.
    #[error("append of {bytes} bytes exceeds the queue limit of {max} bytes; split it")]
    BatchTooLarge {
        /// Payload bytes of the append.
        bytes: u64,
        /// The configured `queue_bytes`.
        max: u64,
    },

    /// `append` was called with no payloads.
    #[error("append with no records")]
    EmptyAppend,

    /// `read_from` asked for a seq older than the oldest retained segment.
    #[error("seq {seq} is no longer retained (oldest retained seq is {first})")]
    NotRetained {
        /// Requested seq.
        seq: u64,
        /// Oldest seq still on disk.
        first: u64,
    },

    /// Options that cannot work together.
    #[error("invalid log options: {0}")]
    InvalidOptions(String),

    /// A snapshot written again under a seq that a newer snapshot takes
    /// pieces from (it would break that one).
    #[error("snapshot {seq} cannot be written again: snapshot {newer} takes pieces from it")]
    SnapshotShared {
        /// The seq written again.
        seq: u64,
        /// The newer snapshot that refers to it.
        newer: u64,
    },
}

/// What exactly is wrong in a [`LogError::Corrupt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// A damaged record with a valid record after it: not a torn tail.
    #[error(
        "{problem} (expected seq {seq}) followed by a valid record (seq {next_seq} at byte {next_offset}): corruption before the tail"
    )]
    BeforeTail {
        /// What is wrong with the damaged record.
        problem: String,
        /// The seq the damaged record should have had.
        seq: u64,
        /// Seq of the valid record found after it.
        next_seq: u64,
        /// Offset of that valid record.
        next_offset: u64,
    },
    /// A damaged record in a segment that is not the last one.
    #[error(
        "{problem} (expected seq {seq}) in a segment that is not the last: corruption before the tail"
    )]
    NotLastSegment {
        /// What is wrong with the damaged record.
        problem: String,
        /// The seq the damaged record should have had.
        seq: u64,
    },
    /// A record with a valid checksum but the wrong sequence number.
    #[error("record has seq {found} where seq {expected} was expected")]
    SeqMismatch {
        /// Expected seq.
        expected: u64,
        /// Seq stored in the record.
        found: u64,
    },
    /// A record with a valid checksum that is larger than `max_record_bytes`.
    #[error(
        "record seq {seq} of {len} bytes exceeds max_record_bytes {max}; raise the limit to open this log"
    )]
    RecordTooLarge {
        /// Seq of the record.
        seq: u64,
        /// Payload length.
        len: u32,
        /// Configured limit.
        max: u32,
    },
    /// Segments do not continue each other.
    #[error(
        "segment starts at seq {first_seq} but the previous segment {previous} ends at seq {previous_last}: missing segment or sequence gap"
    )]
    Gap {
        /// First seq of this segment.
        first_seq: u64,
        /// Previous segment's file.
        previous: String,
        /// Last seq of the previous segment.
        previous_last: u64,
    },
    /// Bad magic, bad header checksum, short header (not in the last segment), or
    /// non-zero flags.
    #[error("bad segment header: {0}")]
    BadHeader(String),
    /// A segment written by an unknown format version.
    #[error("unknown segment format version {found} (this build reads version {supported})")]
    UnknownVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The header's first seq does not match the file name.
    #[error("header says first seq {header} but the file name says {name}")]
    NameMismatch {
        /// Seq from the header.
        header: u64,
        /// Seq from the name.
        name: u64,
    },
    /// `wal/NEWEST` names a segment that is not there: the newest segment
    /// was deleted (or lost), and with it records that may have been
    /// acknowledged.
    #[error(
        "the newest segment (first seq {first_seq}) is missing{}: it may hold acknowledged records; restore the file, or delete wal/NEWEST to start without them",
        match newest_present { Some(s) => format!(" (the newest present starts at seq {s})"), None => " (no segment is present)".to_owned() }
    )]
    MissingNewestSegment {
        /// First seq of the missing segment, as `wal/NEWEST` records it.
        first_seq: u64,
        /// First seq of the newest segment present, if any.
        newest_present: Option<u64>,
    },
    /// A record found while reading that does not check (after open succeeded:
    /// the file changed underneath us or the media failed).
    #[error("{0}")]
    Record(String),
}

impl LogError {
    /// Wraps an I/O error, mapping a full disk to [`LogError::NoSpace`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull {
            LogError::NoSpace {
                op,
                path,
                source: Arc::new(source),
            }
        } else {
            LogError::Io {
                op,
                path,
                source: Arc::new(source),
            }
        }
    }

    /// True for [`LogError::NoSpace`], also when wrapped in [`LogError::Failed`].
    pub fn is_no_space(&self) -> bool {
        match self {
            LogError::NoSpace { .. } => true,
            LogError::Failed { cause } => cause.is_no_space(),
            _ => false,
        }
    }
}
