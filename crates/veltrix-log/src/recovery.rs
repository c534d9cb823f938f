//! Opening a log: scan every segment, verify every checksum, cut a torn tail.
//!
//! # Recovery decision table
//!
//! "Bad record" means: fewer than 16 header bytes left, a length over
//! `max_record_bytes` (without a valid checksum), a record running past the end of
//! the file, or a checksum mismatch. "Valid record after it" means a record with a
//! correct checksum and a plausible seq starts at any later byte of the same file.
//!
//! | # | what the scan finds                                                         | decision |
//! |---|-----------------------------------------------------------------------------|----------|
//! | 1 | no segment files                                                            | new log: create `00000000000000000001.seg` |
//! | 2 | all records good                                                            | open |
//! | 3 | bad record in the **last** segment, no valid record after it                | torn tail: truncate at the record's start, fsync, report in `Recovery::torn_tail` |
//! | 4 | last segment of at most 24 bytes whose header is short or fails its checksum | torn segment creation: rewrite the header from the file name, report as torn tail at offset 0 |
//! | 5 | bad record with a valid record after it (any segment)                       | refuse: `Corruption::BeforeTail` |
//! | 6 | bad record in a segment that is not the last                                | refuse: `Corruption::NotLastSegment` |
//! | 7 | record with a valid checksum but an unexpected seq                          | refuse: `Corruption::SeqMismatch` |
//! | 8 | record with a valid checksum over `max_record_bytes`                        | refuse: `Corruption::RecordTooLarge` (raise the limit) |
//! | 9 | segment's first seq is not the previous segment's last seq + 1 (missing middle segment, gap, overlap) | refuse: `Corruption::Gap` |
//! | 10| bad magic, bad header checksum or short header (other than row 4), non-zero flags | refuse: `Corruption::BadHeader` |
//! | 11| header with the right magic and an unknown version                          | refuse: `Corruption::UnknownVersion` |
//! | 12| header's first seq differs from the file name                               | refuse: `Corruption::NameMismatch` |
//! | 13| oldest segments missing                                                     | open: they were retired after a snapshot (the log starts at the first present seq) |
//! | 14| `wal/NEWEST` names a segment newer than every segment present (the newest segment was deleted) | refuse: `Corruption::MissingNewestSegment` |
//!
//! Rows 3 and 4 are safe because the writer only acknowledges records after
//! `sync_data` returned for every byte up to and including them, and it creates
//! (header written and synced, directory synced) a new segment only after the
//! previous one is fully synced: a damaged record at the end of the last segment
//! was therefore never acknowledged. Every other row could be acknowledged data,
//! so the log refuses to start and names the file and byte.

use std::path::{Path, PathBuf};

use crate::error::{Corruption, LogError};
use crate::format::{
    HeaderProblem, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_VERSION, decode_record_header,
    decode_segment_header, encode_segment_header, parse_segment_file_name, segment_file_name,
};
use crate::storage::Storage;

/// What `Log::open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Records present after recovery.
    pub records: u64,
    /// Seq of the oldest retained record (the next seq to be written when empty).
    pub first_seq: u64,
    /// Seq of the newest record; `first_seq - 1` when the log is empty.
    pub last_seq: u64,
    /// Segment files present after recovery.
    pub segments: usize,
    /// The torn tail that was cut, if any. The server must log this.
    pub torn_tail: Option<TornTail>,
}

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file that was truncated.
    pub segment: PathBuf,
    /// Byte offset the file was truncated at (start of the torn record).
    pub offset: u64,
    /// How many bytes were removed.
    pub bytes_cut: u64,
    /// Why the record there was considered torn.
    pub reason: String,
}

/// One segment on disk.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub first_seq: u64,
    pub path: PathBuf,
}

/// Result of recovery, handed to the writer.
pub(crate) struct Recovered {
    pub segments: Vec<SegmentMeta>,
    pub recovery: Recovery,
    /// Byte length of the last (active) segment.
    pub active_len: u64,
}

struct SegScan {
    records: u64,
    valid_len: u64,
    /// (offset, reason, header_torn)
    torn: Option<(u64, String, bool)>,
}

fn corrupt(file: &str, offset: u64, problem: Corruption) -> LogError {
    LogError::Corrupt {
        file: file.to_owned(),
        offset,
        problem,
    }
}

/// A record at `off` that cannot be used, and whether it is certainly corrupt
/// (`hard`) or possibly just torn.
enum BadRecord {
    Soft(String),
    Hard(Corruption),
}

/// Checks the record at `off`; `Ok(len)` is its total encoded length.
fn check_record(data: &[u8], off: usize, expected: u64, max: u32) -> Result<usize, BadRecord> {
    let left = data.len() - off;
    if left < RECORD_HEADER_LEN {
        return Err(BadRecord::Soft(format!(
            "incomplete record header ({left} of {RECORD_HEADER_LEN} bytes)"
        )));
    }
    let h = decode_record_header(&data[off..]);
    let end = off as u64 + RECORD_HEADER_LEN as u64 + u64::from(h.len);
    if end > data.len() as u64 {
        let problem = if h.len > max {
            format!("record length {} exceeds the maximum {max}", h.len)
        } else {
            format!(
                "record of {} bytes runs past the end of the file ({} bytes available)",
                h.len,
                left - RECORD_HEADER_LEN
            )
        };
        return Err(BadRecord::Soft(problem));
    }
    let payload = &data[off + RECORD_HEADER_LEN..end as usize];
    if !h.checks(payload) {
        if h.len > max {
            return Err(BadRecord::Soft(format!(
                "record length {} exceeds the maximum {max}",
                h.len
            )));
        }
        return Err(BadRecord::Soft(format!(
            "checksum mismatch (stored {:#010x})",
            h.crc
        )));
    }
    // The checksum is good from here on: these are real records, not torn bytes.
    if h.seq != expected {
        return Err(BadRecord::Hard(Corruption::SeqMismatch {
            expected,
            found: h.seq,
        }));
    }
    if h.len > max {
        return Err(BadRecord::Hard(Corruption::RecordTooLarge {
            seq: h.seq,
            len: h.len,
            max,
        }));
    }
    Ok(RECORD_HEADER_LEN + h.len as usize)
}

/// Looks for any valid record starting after `from`: if one exists, the bad record
/// at `from` is not a torn tail. Only runs on the failure path.
fn find_valid_after(data: &[u8], from: usize, min_seq: u64, max: u32) -> Option<(u64, u64)> {
    let len = data.len();
    // A valid record needs at least 16 bytes, which bounds how far seqs can go.
    let max_seq = min_seq.saturating_add((len / RECORD_HEADER_LEN) as u64 + 1);
    let mut off = from + 1;
    while off + RECORD_HEADER_LEN <= len {
        let h = decode_record_header(&data[off..]);
        let end = off as u64 + RECORD_HEADER_LEN as u64 + u64::from(h.len);
        if h.len <= max
            && end <= len as u64
            && (min_seq..=max_seq).contains(&h.seq)
            && h.checks(&data[off + RECORD_HEADER_LEN..end as usize])
        {
            return Some((h.seq, off as u64));
        }
        off += 1;
    }
    None
}

fn scan_segment(
    data: &[u8],
    name_seq: u64,
    is_last: bool,
    max: u32,
    rel: &str,
) -> Result<SegScan, LogError> {
    match decode_segment_header(data) {
        Ok(first) if first != name_seq => {
            return Err(corrupt(
                rel,
                0,
                Corruption::NameMismatch {
                    header: first,
                    name: name_seq,
                },
            ));
        }
        Ok(_) => {}
        Err(HeaderProblem::UnknownVersion(v)) => {
            return Err(corrupt(
                rel,
                8,
                Corruption::UnknownVersion {
                    found: v,
                    supported: SEGMENT_VERSION,
                },
            ));
        }
        Err(
            p @ (HeaderProblem::Short(_) | HeaderProblem::BadMagic | HeaderProblem::BadChecksum),
        ) if is_last && data.len() <= SEGMENT_HEADER_LEN => {
            // Row 4: a crash while creating the segment. Nothing in it was acknowledged.
            return Ok(SegScan {
                records: 0,
                valid_len: 0,
                torn: Some((0, format!("torn segment header ({p:?})"), true)),
            });
        }
        Err(p) => {
            let what = match p {
                HeaderProblem::Short(n) => format!("only {n} of {SEGMENT_HEADER_LEN} header bytes"),
                HeaderProblem::BadMagic => "bad magic (not a Veltrix log segment)".to_owned(),
                HeaderProblem::BadChecksum => "header checksum mismatch".to_owned(),
                HeaderProblem::BadFlags(f) => format!("non-zero flags {f:#06x}"),
                HeaderProblem::UnknownVersion(_) => unreachable!("handled above"),
            };
            return Err(corrupt(rel, 0, Corruption::BadHeader(what)));
        }
    }
    let mut off = SEGMENT_HEADER_LEN;
    let mut expected = name_seq;
    let mut records = 0;
    while off < data.len() {
        match check_record(data, off, expected, max) {
            Ok(n) => {
                off += n;
                expected += 1;
                records += 1;
            }
            Err(BadRecord::Hard(c)) => return Err(corrupt(rel, off as u64, c)),
            Err(BadRecord::Soft(problem)) => {
                if let Some((next_seq, next_offset)) = find_valid_after(data, off, name_seq, max) {
                    return Err(corrupt(
                        rel,
                        off as u64,
                        Corruption::BeforeTail {
                            problem,
                            seq: expected,
                            next_seq,
                            next_offset,
                        },
                    ));
                }
                if !is_last {
                    return Err(corrupt(
                        rel,
                        off as u64,
                        Corruption::NotLastSegment {
                            problem,
                            seq: expected,
                        },
                    ));
                }
                return Ok(SegScan {
                    records,
                    valid_len: off as u64,
                    torn: Some((
                        off as u64,
                        format!("{problem} (expected seq {expected})"),
                        false,
                    )),
                });
            }
        }
    }
    Ok(SegScan {
        records,
        valid_len: off as u64,
        torn: None,
    })
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |e| LogError::io(op, path, e)
}

/// Name of the file in `wal/` that names the newest segment: its first seq
/// (8 bytes, little-endian) and the CRC-32C of those 8 bytes. Written
/// atomically (temporary file, fsync, rename, directory fsync) each time a
/// segment is created, after the segment itself is durable, so it never names
/// a segment that a crash could take back. A newest segment that disappears
/// later (deleted by hand, lost with its directory entry) is then noticed on
/// open instead of looking like a shorter log. Absent in logs written before
/// it existed: open writes it.
pub const NEWEST_SEGMENT_FILE: &str = "NEWEST";
const NEWEST_LEN: usize = 12;

fn encode_newest(first_seq: u64) -> [u8; NEWEST_LEN] {
    let mut b = [0u8; NEWEST_LEN];
    b[..8].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[..8]);
    b[8..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The seq `wal/NEWEST` names; `None` when it is absent or does not check
/// (then it carries no information and is rewritten).
fn read_newest(storage: &dyn Storage, wal_dir: &Path) -> Result<Option<u64>, LogError> {
    let path = wal_dir.join(NEWEST_SEGMENT_FILE);
    let bytes = match storage.read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("read", &path, e)),
    };
    if bytes.len() != NEWEST_LEN {
        return Ok(None);
    }
    let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    Ok((bytes[..] == encode_newest(seq)[..]).then_some(seq))
}

/// Atomically replaces `wal/NEWEST` with `first_seq`.
fn write_newest(storage: &dyn Storage, wal_dir: &Path, first_seq: u64) -> Result<(), LogError> {
    let path = wal_dir.join(NEWEST_SEGMENT_FILE);
    let tmp = wal_dir.join(format!("{NEWEST_SEGMENT_FILE}.tmp"));
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LogError::io("remove", &tmp, e)),
    }
    let mut f = storage.create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&encode_newest(first_seq))
        .map_err(io_err("write", &tmp))?;
    f.sync_data().map_err(io_err("fsync", &tmp))?;
    drop(f);
    storage
        .rename(&tmp, &path)
        .map_err(io_err("rename", &tmp))?;
    storage
        .sync_dir(wal_dir)
        .map_err(io_err("fsync directory", wal_dir))
}

/// Writes a fresh segment: create, header, sync, then sync the directory so the
/// new entry survives power loss; then records it in `wal/NEWEST`.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    wal_dir: &Path,
    first_seq: u64,
) -> Result<(SegmentMeta, Box<dyn crate::storage::StorageFile>), LogError> {
    let path = wal_dir.join(segment_file_name(first_seq));
    let mut f = storage
        .create(&path)
        .map_err(io_err("create segment", &path))?;
    f.write_all(&encode_segment_header(first_seq))
        .map_err(io_err("write segment header", &path))?;
    f.sync_data()
        .map_err(io_err("fsync segment header", &path))?;
    storage
        .sync_dir(wal_dir)
        .map_err(io_err("fsync directory", wal_dir))?;
    write_newest(storage, wal_dir, first_seq)?;
    Ok((SegmentMeta { first_seq, path }, f))
}

/// Scans `wal_dir`, applies the decision table above and returns the segments.
pub(crate) fn recover(
    storage: &dyn Storage,
    wal_dir: &Path,
    max_record: u32,
) -> Result<Recovered, LogError> {
    let mut names: Vec<u64> = storage
        .list(wal_dir)
        .map_err(io_err("list", wal_dir))?
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    names.sort_unstable();
    let newest = read_newest(storage, wal_dir)?;
    if let Some(expected) = newest
        && names.last().is_none_or(|&present| present < expected)
    {
        return Err(corrupt(
            &format!("wal/{}", segment_file_name(expected)),
            0,
            Corruption::MissingNewestSegment {
                first_seq: expected,
                newest_present: names.last().copied(),
            },
        ));
    }
    if names.is_empty() {
        let (meta, _) = create_segment(storage, wal_dir, 1)?;
        return Ok(Recovered {
            segments: vec![meta],
            recovery: Recovery {
                records: 0,
                first_seq: 1,
                last_seq: 0,
                segments: 1,
                torn_tail: None,
            },
            active_len: SEGMENT_HEADER_LEN as u64,
        });
    }
    let mut segments = Vec::with_capacity(names.len());
    let mut records = 0u64;
    let mut prev: Option<(String, u64)> = None; // (file, last seq)
    let mut torn_tail = None;
    let mut active_len = 0;
    for (i, &first_seq) in names.iter().enumerate() {
        let is_last = i + 1 == names.len();
        let name = segment_file_name(first_seq);
        let rel = format!("wal/{name}");
        let path = wal_dir.join(&name);
        if let Some((previous, previous_last)) = &prev
            && first_seq != previous_last + 1
        {
            return Err(corrupt(
                &rel,
                0,
                Corruption::Gap {
                    first_seq,
                    previous: previous.clone(),
                    previous_last: *previous_last,
                },
            ));
        }
        let data = storage.read(&path).map_err(io_err("read segment", &path))?;
        let scan = scan_segment(&data, first_seq, is_last, max_record, &rel)?;
        active_len = scan.valid_len;
        if let Some((offset, reason, header_torn)) = scan.torn {
            storage
                .truncate(&path, offset)
                .map_err(io_err("truncate torn tail", &path))?;
            if header_torn {
                let mut f = storage
                    .open_append(&path)
                    .map_err(io_err("open segment", &path))?;
                f.write_all(&encode_segment_header(first_seq))
                    .map_err(io_err("write segment header", &path))?;
                f.sync_data()
                    .map_err(io_err("fsync segment header", &path))?;
                storage
                    .sync_dir(wal_dir)
                    .map_err(io_err("fsync directory", wal_dir))?;
                active_len = SEGMENT_HEADER_LEN as u64;
            }
            torn_tail = Some(TornTail {
                segment: path.clone(),
                offset,
                bytes_cut: data.len() as u64 - offset,
                reason,
            });
        }
        records += scan.records;
        prev = Some((rel, first_seq + scan.records - 1));
        segments.push(SegmentMeta { first_seq, path });
    }
    let newest_present = segments.last().expect("at least one segment").first_seq;
    if newest != Some(newest_present) {
        // Absent (an older log), or a crash between creating a segment and
        // recording it: record the newest segment now.
        write_newest(storage, wal_dir, newest_present)?;
    }
    let first_seq = segments[0].first_seq;
    let last_seq = prev.expect("at least one segment").1;
    Ok(Recovered {
        recovery: Recovery {
            records,
            first_seq,
            last_seq,
            segments: segments.len(),
            torn_tail,
        },
        segments,
        active_len,
    })
}
