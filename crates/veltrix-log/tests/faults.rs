//! Log and snapshot faults, exhaustively where the space is small (issue 5):
//! torn writes at every byte of the last batch, every single-bit flip in
//! every byte of a multi-segment log, truncation of a non-last segment at
//! every byte, missing segments, damage found while reading, every snapshot
//! corruption and a newer snapshot format, and fsync (file and directory)
//! failing at every point of a run with segment rolls.
//!
//! Each case checks the outcome docs/LOG_FORMAT.md documents — a torn tail
//! cut and reported (`Recovery::torn_tail`), a refusal naming the file and
//! byte (`LogError::Corrupt`), a fallback to an older snapshot reported in
//! `LatestSnapshot::skipped` — and that no acknowledged record is ever
//! dropped without one of those reports.
//!
//! Most cases run on `SimStorage` (in memory, thousands of reopenings per
//! second); `fs_*` tests repeat the essentials on the real file system.

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use veltrix_log::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, decode_record_header};
use veltrix_log::{
    Corruption, CrashMode, Log, LogError, LogOptions, Recovery, SimStorage, SnapshotOptions,
    SnapshotStore, Storage,
};

fn dir() -> &'static Path {
    Path::new("/data")
}

fn seg_path(first: u64) -> PathBuf {
    dir().join("wal").join(format!("{first:020}.seg"))
}

fn rel(first: u64) -> String {
    format!("wal/{first:020}.seg")
}

fn open(s: &SimStorage, opts: &LogOptions) -> Result<(Log, Recovery), LogError> {
    Log::open_with(Arc::new(s.clone()) as Arc<dyn Storage>, dir(), opts.clone())
}

fn payload(seq: u64) -> Vec<u8> {
    // Lengths vary so record boundaries move around.
    format!("rec-{seq}-{}", "y".repeat((seq * 5 % 11) as usize)).into_bytes()
}

fn read_all(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_from(from)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn small(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        ..LogOptions::default()
    }
}

/// One segment of a written log: its first seq and the byte offset of each
/// record (parsed back from the bytes, so nothing here trusts the writer).
#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    bytes: Vec<u8>,
    /// (seq, offset, encoded length)
    records: Vec<(u64, usize, usize)>,
}

fn parse(first: u64, bytes: Vec<u8>) -> Segment {
    let mut records = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while off < bytes.len() {
        let h = decode_record_header(&bytes[off..]);
        let len = RECORD_HEADER_LEN + h.len as usize;
        records.push((h.seq, off, len));
        off += len;
    }
    assert_eq!(off, bytes.len(), "segment {first} parses back exactly");
    Segment {
        first,
        bytes,
        records,
    }
}

/// A closed log of `n` records (one append each) on fresh simulated storage.
fn written(n: u64, opts: &LogOptions) -> (SimStorage, Vec<Segment>) {
    let s = SimStorage::new();
    let (log, _) = open(&s, opts).unwrap();
    for seq in 1..=n {
        assert_eq!(log.append_sync(vec![payload(seq)]).unwrap(), seq..=seq);
    }
    let firsts: Vec<u64> = log
        .segment_paths()
        .iter()
        .map(|p| {
            veltrix_log::format::parse_segment_file_name(p.file_name().unwrap().to_str().unwrap())
                .unwrap()
        })
        .collect();
    log.close().unwrap();
    let segments = firsts
        .into_iter()
        .map(|f| parse(f, s.file_bytes(&seg_path(f)).unwrap()))
        .collect();
    (s, segments)
}

/// Puts every segment back to its original bytes.
fn restore(s: &SimStorage, segments: &[Segment]) {
    for seg in segments {
        s.set_file_bytes(&seg_path(seg.first), seg.bytes.clone());
    }
}

/// Asserts the reopened log holds exactly records 1..=last with their bytes.
fn assert_prefix(log: &Log, rec: &Recovery, last: u64, what: &str) {
    assert_eq!((rec.first_seq, rec.last_seq), (1, last), "{what}");
    let all = read_all(log, 1);
    assert_eq!(all.len() as u64, last, "{what}");
    for (seq, p) in all {
        assert_eq!(p, payload(seq), "{what}: seq {seq}");
    }
}

/// The `Corrupt` error's file and offset, and that its message names them
/// and says the log refuses to start.
fn corrupt_at(err: &LogError) -> (String, u64, Corruption) {
    match err {
        LogError::Corrupt {
            file,
            offset,
            problem,
        } => {
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{file} at byte {offset}: ")),
                "{msg}"
            );
            assert!(msg.ends_with("; refusing to start"), "{msg}");
            (file.clone(), *offset, problem.clone())
        }
        other => panic!("expected a refusal naming file and byte, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Torn writes
// ---------------------------------------------------------------------------

/// A crash during the last, unacknowledged batch (three records, spanning no
/// roll) of a log with several segments: every prefix of that batch. The
/// complete records of the prefix may stay (never acknowledged, harmless);
/// a partial record is cut and reported; every acknowledged record stays.
#[test]
fn torn_write_at_every_byte_of_the_last_batch() {
    let opts = small(300);
    let s = SimStorage::new();
    let (log, _) = open(&s, &opts).unwrap();
    // Up to the first record of a third segment: room for three more.
    let mut acked = 0;
    while log.segment_paths().len() < 3 {
        acked += 1;
        log.append_sync(vec![payload(acked)]).unwrap();
    }
    let last_first = log.segment_paths().last().unwrap().clone();
    let before = s.file_bytes(&last_first).unwrap();
    // The batch reaches the file, its fsync fails: never acknowledged.
    s.fail_next_syncs(1);
    assert!(
        log.append_sync((acked + 1..=acked + 3).map(payload).collect())
            .is_err()
    );
    assert_eq!(log.segment_paths().len(), 3, "the batch did not roll");
    let full = s.file_bytes(&last_first).unwrap();
    drop(log);
    assert!(full.len() > before.len());
    let batch = parse(0, full.clone()); // offsets only; first seq unused
    let boundaries: Vec<usize> = batch.records.iter().map(|r| r.1 + r.2).collect();
    let original_segments = s.list(&dir().join("wal")).unwrap();
    let marker = dir().join("wal").join(veltrix_log::NEWEST_SEGMENT_FILE);
    let original_marker = s.file_bytes(&marker).unwrap();
    for cut in before.len()..=full.len() {
        // Power loss kept this prefix of the unsynced batch.
        for name in s.list(&dir().join("wal")).unwrap() {
            if !original_segments.contains(&name) {
                s.remove(&dir().join("wal").join(name)).unwrap();
            }
        }
        s.set_file_bytes(&marker, original_marker.clone());
        s.set_file_bytes(&last_first, full[..cut].to_vec());
        let (log, rec) = open(&s, &opts).unwrap();
        let complete = boundaries.iter().filter(|&&b| b <= cut).count() as u64;
        // The acknowledged records, plus the complete ones of the prefix.
        let expect = acked + complete - (boundaries.len() as u64 - 3);
        assert_eq!(rec.last_seq, expect, "cut at {cut}");
        assert!(
            rec.last_seq >= acked,
            "cut at {cut}: acknowledged data lost"
        );
        let at_boundary = cut == before.len() || boundaries.contains(&cut);
        match &rec.torn_tail {
            None => assert!(at_boundary, "cut at {cut}: partial record not reported"),
            Some(t) => {
                assert!(!at_boundary, "cut at {cut}: nothing was torn");
                assert_eq!(t.segment, last_first);
                let start = *boundaries.iter().filter(|&&b| b <= cut).max().unwrap();
                assert_eq!(
                    (t.offset, t.bytes_cut),
                    (start as u64, (cut - start) as u64)
                );
                assert!(t.reason.contains("expected seq"), "{}", t.reason);
            }
        }
        assert_prefix(&log, &rec, expect, &format!("cut at {cut}"));
        // Recovery is idempotent, and the log continues at the next seq.
        log.close().unwrap();
        let (log, again) = open(&s, &opts).unwrap();
        assert_eq!((again.last_seq, again.torn_tail), (expect, None));
        let next = expect + 1;
        assert_eq!(log.append_sync(vec![payload(next)]).unwrap(), next..=next);
    }
}

/// Unsynced blocks may come back as zeros or garbage instead of a prefix
/// (disk assumption 4). Whatever fills the region after the last
/// acknowledged record, recovery cuts it and keeps every acknowledged one.
#[test]
fn zeros_or_garbage_after_the_last_acknowledged_record_are_cut() {
    let opts = LogOptions::default();
    let (s, segments) = written(8, &opts);
    let seg = &segments[0];
    let end = seg.bytes.len();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for fill in ["zeros", "ones", "garbage", "a copy of the last record"] {
        for extra in [1usize, 7, 15, 16, 17, 40, 100, 4096] {
            let mut bytes = seg.bytes.clone();
            let last = *seg.records.last().unwrap();
            for i in 0..extra {
                bytes.push(match fill {
                    "zeros" => 0,
                    "ones" => 0xff,
                    "garbage" => {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng as u8
                    }
                    // Same bytes as the last record (seq 8): a valid checksum
                    // but seq 8 where 9 is expected, if complete.
                    _ => seg.bytes[last.1 + i % last.2],
                });
            }
            s.set_file_bytes(&seg_path(1), bytes.clone());
            let what = format!("{extra} bytes of {fill}");
            match open(&s, &opts) {
                Ok((log, rec)) => {
                    assert_prefix(&log, &rec, 8, &what);
                    let t = rec.torn_tail.expect("reported");
                    assert_eq!(
                        (t.offset, t.bytes_cut),
                        (end as u64, extra as u64),
                        "{what}"
                    );
                }
                Err(err) => {
                    // Only a complete copy of a real record may refuse (its
                    // checksum is valid, so it is not torn bytes).
                    assert!(
                        fill.starts_with("a copy") && extra >= last.2,
                        "{what}: {err}"
                    );
                    let (file, offset, problem) = corrupt_at(&err);
                    assert_eq!((file.as_str(), offset), (rel(1).as_str(), end as u64));
                    assert_eq!(
                        problem,
                        Corruption::SeqMismatch {
                            expected: 9,
                            found: 8
                        }
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Bit flips anywhere
// ---------------------------------------------------------------------------

/// Every single-bit flip in every byte of a three-segment log. Only damage
/// inside the very last record of the last segment may be cut (it cannot be
/// told apart from a torn write; it is reported); anything else refuses to
/// open with the file and the byte where the damaged record or header
/// starts, and leaves the file as it was.
#[test]
fn every_bit_flip_is_cut_in_the_tail_and_refused_anywhere_else() {
    let opts = small(200);
    let (s, segments) = written(18, &opts);
    assert!(segments.len() >= 3, "{segments:?}");
    let total = 18;
    let mut outcomes = [0usize; 3]; // cut, refused at header, refused at record
    for (si, seg) in segments.iter().enumerate() {
        let is_last = si + 1 == segments.len();
        for byte in 0..seg.bytes.len() {
            for bit in 0..8 {
                restore(&s, &segments);
                let mut bytes = seg.bytes.clone();
                bytes[byte] ^= 1 << bit;
                s.set_file_bytes(&seg_path(seg.first), bytes.clone());
                let what = format!("segment {} byte {byte} bit {bit}", seg.first);
                let in_record = seg
                    .records
                    .iter()
                    .find(|r| (r.1..r.1 + r.2).contains(&byte))
                    .copied();
                let in_last_record = is_last && in_record == seg.records.last().copied();
                match open(&s, &opts) {
                    Ok((log, rec)) => {
                        assert!(in_last_record, "{what}: opened with damage: {rec:?}");
                        assert_prefix(&log, &rec, total - 1, &what);
                        let t = rec.torn_tail.clone().expect("the cut is reported");
                        assert_eq!(t.offset, in_record.unwrap().1 as u64, "{what}");
                        assert_eq!(t.segment, seg_path(seg.first));
                        outcomes[0] += 1;
                    }
                    Err(err) => {
                        assert!(!in_last_record, "{what}: tail damage refused: {err}");
                        let (file, offset, problem) = corrupt_at(&err);
                        assert_eq!(file, rel(seg.first), "{what}");
                        match in_record {
                            None => {
                                assert!(byte < SEGMENT_HEADER_LEN);
                                // Offset 8 for a version that changed, else 0.
                                let expect = if matches!(problem, Corruption::UnknownVersion { .. })
                                {
                                    8
                                } else {
                                    0
                                };
                                assert_eq!(offset, expect, "{what}: {err}");
                                outcomes[1] += 1;
                            }
                            Some((seq, start, _)) => {
                                assert_eq!(offset, start as u64, "{what}: {err}");
                                match &problem {
                                    Corruption::BeforeTail { seq: s2, .. }
                                    | Corruption::NotLastSegment { seq: s2, .. } => {
                                        assert_eq!(*s2, seq, "{what}")
                                    }
                                    other => panic!("{what}: {other:?}"),
                                }
                                outcomes[2] += 1;
                            }
                        }
                        // Refusing never touches the file.
                        assert_eq!(s.file_bytes(&seg_path(seg.first)).unwrap(), bytes);
                    }
                }
            }
        }
    }
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
}

// ---------------------------------------------------------------------------
// Truncated and missing segments
// ---------------------------------------------------------------------------

/// A segment that is not the last one, truncated at every byte: never a
/// shorter log, always a refusal naming a file (the truncated segment, or
/// the next one when the cut fell on a record boundary and the seqs no
/// longer continue).
#[test]
fn a_non_last_segment_truncated_at_any_byte_is_refused() {
    let opts = small(200);
    let (s, segments) = written(18, &opts);
    let (first, second) = (&segments[0], &segments[1]);
    for cut in 0..first.bytes.len() {
        restore(&s, &segments);
        s.set_file_bytes(&seg_path(first.first), first.bytes[..cut].to_vec());
        let err = open(&s, &opts).map(|_| ()).unwrap_err();
        let (file, offset, problem) = corrupt_at(&err);
        match problem {
            Corruption::Gap {
                first_seq,
                previous_last,
                ..
            } => {
                assert_eq!((file, offset), (rel(second.first), 0), "cut {cut}");
                assert_eq!(first_seq, second.first);
                assert!(previous_last < first_seq - 1, "cut {cut}");
                assert!(err.to_string().contains("missing segment or sequence gap"));
            }
            Corruption::NotLastSegment { .. } => {
                assert_eq!(file, rel(first.first), "cut {cut}");
                assert!(first.records.iter().any(|r| r.1 as u64 == offset));
            }
            Corruption::BadHeader(_) => {
                assert!(cut < SEGMENT_HEADER_LEN, "cut {cut}");
                assert_eq!((file, offset), (rel(first.first), 0));
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

/// A missing middle segment is a gap (refused); missing oldest segments are
/// what retirement after a snapshot leaves (opens, starting later); a
/// missing newest segment is refused too, because `wal/NEWEST` names it —
/// until the operator deletes that file on purpose.
#[test]
fn missing_segments_middle_and_newest_refused_oldest_is_retirement() {
    let opts = small(200);
    let (s, segments) = written(18, &opts);
    let n = segments.len();
    // Middle: refused, naming the segment after the hole.
    let removed = s.crash(CrashMode::SyncedOnly);
    removed.remove(&seg_path(segments[1].first)).unwrap();
    let err = open(&removed, &opts).map(|_| ()).unwrap_err();
    let (file, offset, problem) = corrupt_at(&err);
    assert_eq!((file, offset), (rel(segments[2].first), 0));
    assert!(matches!(problem, Corruption::Gap { .. }), "{problem:?}");

    // Oldest: the log starts later (what retirement after a snapshot does).
    let s2 = s.crash(CrashMode::SyncedOnly);
    s2.remove(&seg_path(segments[0].first)).unwrap();
    let (log, rec) = open(&s2, &opts).unwrap();
    assert_eq!((rec.first_seq, rec.last_seq), (segments[1].first, 18));
    assert!(matches!(
        log.read_from(1),
        Err(LogError::NotRetained { seq: 1, .. })
    ));
    drop(log);

    // Newest: refused, naming the missing file.
    let s3 = s.crash(CrashMode::SyncedOnly);
    let newest = segments[n - 1].first;
    s3.remove(&seg_path(newest)).unwrap();
    let err = open(&s3, &opts).map(|_| ()).unwrap_err();
    let (file, offset, problem) = corrupt_at(&err);
    assert_eq!((file, offset), (rel(newest), 0));
    assert_eq!(
        problem,
        Corruption::MissingNewestSegment {
            first_seq: newest,
            newest_present: Some(segments[n - 2].first)
        }
    );
    assert!(err.to_string().contains("delete wal/NEWEST"), "{err}");
    // Every segment gone (the marker left): refused as well.
    let s4 = s.crash(CrashMode::SyncedOnly);
    for seg in &segments {
        s4.remove(&seg_path(seg.first)).unwrap();
    }
    assert!(matches!(
        open(&s4, &opts).map(|_| ()),
        Err(LogError::Corrupt {
            problem: Corruption::MissingNewestSegment {
                newest_present: None,
                ..
            },
            ..
        })
    ));
    // The operator accepts the loss by deleting the marker: the log opens
    // shorter, and says where it ends.
    let s5 = s.crash(CrashMode::SyncedOnly);
    s5.remove(&seg_path(newest)).unwrap();
    s5.remove(&dir().join("wal").join(veltrix_log::NEWEST_SEGMENT_FILE))
        .unwrap();
    let (log, rec) = open(&s5, &opts).unwrap();
    assert_eq!(rec.last_seq, newest - 1);
    assert_eq!(rec.segments, n - 1);
    // It records the segment that is now the newest.
    log.close().unwrap();
    let (_log, again) = open(&s5, &opts).unwrap();
    assert_eq!(again.last_seq, newest - 1);
}

/// A crash after a segment was created but before `wal/NEWEST` named it
/// (or a log from before the marker existed): open records the newest
/// segment, and from then on its loss is noticed.
#[test]
fn an_outdated_or_absent_newest_marker_is_rewritten_at_open() {
    let opts = small(200);
    let (s, segments) = written(18, &opts);
    let marker = dir().join("wal").join(veltrix_log::NEWEST_SEGMENT_FILE);
    let newest = segments.last().unwrap().first;
    for damage in ["absent", "names an older segment", "garbage"] {
        let s = s.crash(CrashMode::SyncedOnly);
        match damage {
            "absent" => s.remove(&marker).unwrap(),
            "names an older segment" => {
                let mut b = segments[0].first.to_le_bytes().to_vec();
                b.extend_from_slice(&crc32c_of(&b).to_le_bytes());
                s.set_file_bytes(&marker, b);
            }
            _ => s.set_file_bytes(&marker, b"not a marker".to_vec()),
        }
        let (log, rec) = open(&s, &opts).unwrap();
        assert_eq!(rec.last_seq, 18, "{damage}");
        log.close().unwrap();
        let s = s.crash(CrashMode::SyncedOnly);
        s.remove(&seg_path(newest)).unwrap();
        assert!(
            matches!(
                open(&s, &opts).map(|_| ()),
                Err(LogError::Corrupt {
                    problem: Corruption::MissingNewestSegment { .. },
                    ..
                })
            ),
            "{damage}: the marker was not rewritten"
        );
    }
}

/// CRC-32C (Castagnoli), bitwise; only for building test files.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------
// Damage found while reading (after a successful open)
// ---------------------------------------------------------------------------

/// Media damage that appears after open is an error from `read_from`, with
/// the file and byte, never a silently shorter read.
#[test]
fn damage_after_open_is_an_error_while_reading_never_a_short_read() {
    let opts = small(200);
    let (s, segments) = written(18, &opts);
    let (log, _) = open(&s, &opts).unwrap();
    let mid = &segments[1];
    let (seq, start, len) = mid.records[1];
    for (what, bytes) in [
        ("flipped payload byte", {
            let mut b = mid.bytes.clone();
            b[start + len - 1] ^= 0x40;
            b
        }),
        ("truncated mid-record", mid.bytes[..start + 5].to_vec()),
        (
            "truncated at a record boundary",
            mid.bytes[..start].to_vec(),
        ),
    ] {
        s.set_file_bytes(&seg_path(mid.first), bytes);
        let results: Vec<_> = log.read_from(1).unwrap().collect();
        let err = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap_or_else(|| panic!("{what}: read everything without an error"));
        assert!(results.last().unwrap().is_err(), "{what}: error is last");
        let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(ok.iter().all(|(q, p)| *p == payload(*q)), "{what}");
        assert_eq!(ok.len() as u64, seq - 1, "{what}");
        match err {
            // A clean end at a record boundary is only noticed where the
            // next segment does not continue it.
            LogError::Corrupt { file, offset, .. } if what.ends_with("boundary") => {
                assert_eq!((file, *offset), (&rel(segments[2].first), 0), "{what}");
                assert!(
                    err.to_string().contains("previous segment ended at seq"),
                    "{err}"
                );
            }
            LogError::Corrupt { file, offset, .. } => {
                assert_eq!(
                    (file, *offset),
                    (&rel(mid.first), start as u64),
                    "{what}: {err}"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Failing fsync (file and directory) at every point
// ---------------------------------------------------------------------------

/// Runs appends of 1-3 records through a log with small segments (so rolls
/// happen) and fails the k-th file fsync, for every k. The failing append
/// and every later one get an error and nothing more is acknowledged; after
/// power loss (synced data only, or a torn prefix of the rest) every
/// acknowledged record is there with its bytes.
#[test]
fn fsync_failing_at_every_point_loses_nothing_acknowledged() {
    let opts = small(160);
    let mut failures = 0;
    for k in 0..40u32 {
        for torn in [false, true] {
            let s = SimStorage::new();
            let (log, _) = open(&s, &opts).unwrap();
            s.fail_sync_after(k);
            let mut acked: Vec<RangeInclusive<u64>> = Vec::new();
            let mut failed_at = None;
            let mut seq = 1;
            for i in 0..25u64 {
                let n = 1 + i % 3;
                let batch: Vec<Vec<u8>> = (seq..seq + n).map(payload).collect();
                match log.append_sync(batch) {
                    Ok(r) => {
                        assert!(failed_at.is_none(), "k {k}: acknowledged after a failure");
                        seq = r.end() + 1;
                        acked.push(r);
                    }
                    Err(e) => {
                        if failed_at.is_some() {
                            assert!(matches!(e, LogError::Failed { .. }), "k {k}: {e:?}");
                        } else {
                            assert!(
                                e.to_string().contains("injected fsync failure"),
                                "k {k}: {e}"
                            );
                            failed_at = Some(i);
                        }
                    }
                }
            }
            failures += usize::from(failed_at.is_some());
            let mode = if torn {
                CrashMode::TornPrefix { seed: u64::from(k) }
            } else {
                CrashMode::SyncedOnly
            };
            let s2 = s.crash(mode);
            drop(log);
            let (log, rec) = open(&s2, &opts)
                .unwrap_or_else(|e| panic!("k {k} torn {torn}: reopen refused: {e}"));
            let last_acked = acked.last().map_or(0, |r| *r.end());
            assert!(
                rec.last_seq >= last_acked,
                "k {k} torn {torn}: acked up to {last_acked}, recovered {}",
                rec.last_seq
            );
            for (q, p) in read_all(&log, 1) {
                assert_eq!(p, payload(q), "k {k} torn {torn}");
            }
        }
    }
    // Every k up to the run's number of fsyncs injected a failure.
    assert!(failures >= 60, "only {failures} runs failed an fsync");
}

/// A directory fsync that fails while rolling to a new segment stops the
/// log like a failed file fsync; after a crash the new segment may be gone,
/// the acknowledged records are not.
#[test]
fn a_failing_directory_fsync_during_a_roll_stops_the_log_and_loses_nothing_acked() {
    let opts = small(100);
    let s = SimStorage::new();
    let (log, _) = open(&s, &opts).unwrap();
    let mut acked = 0;
    while log.segment_paths().len() < 2 {
        acked += 1;
        log.append_sync(vec![payload(acked)]).unwrap();
    }
    // Fill the active segment until the next append must roll.
    let segs_before = log.segment_paths().len();
    s.fail_next_dir_syncs(1);
    let mut failed = None;
    for _ in 0..10 {
        match log.append_sync(vec![payload(acked + 1)]) {
            Ok(_) => {
                assert_eq!(log.segment_paths().len(), segs_before, "rolled anyway");
                acked += 1;
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let err = failed.expect("the roll's directory fsync failed");
    assert!(err.to_string().contains("directory fsync"), "{err}");
    assert!(matches!(
        log.append_sync(vec![b"more".to_vec()]),
        Err(LogError::Failed { .. })
    ));
    let s2 = s.crash(CrashMode::SyncedOnly);
    drop(log);
    let (log, rec) = open(&s2, &opts).unwrap();
    assert!(rec.last_seq >= acked, "acked {acked}, recovered {rec:?}");
    assert_prefix(&log, &rec, rec.last_seq, "after the crash");
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

fn snap_path(seq: u64) -> PathBuf {
    dir().join("snapshots").join(format!("{seq:020}.snap"))
}

fn store(s: &SimStorage) -> SnapshotStore {
    SnapshotStore::open_with(Arc::new(s.clone()), dir(), SnapshotOptions::default()).unwrap()
}

/// Every single-bit flip and every truncation of the newest snapshot: it is
/// skipped with a reason naming the file and the previous snapshot is used,
/// with its exact payload; never the damaged payload. A flip in the
/// version field that makes it newer refuses instead (documented: a newer
/// file is probably valid).
#[test]
fn every_damage_to_the_newest_snapshot_falls_back_to_the_previous_one() {
    let s = SimStorage::new();
    let st = store(&s);
    st.write(100, b"state at one hundred").unwrap();
    st.write(200, b"state at two hundred, newer").unwrap();
    let good = s.file_bytes(&snap_path(200)).unwrap();
    let mut newer_refusals = 0;
    let mut damaged: Vec<(String, Option<usize>, Vec<u8>)> = Vec::new();
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[byte] ^= 1 << bit;
            damaged.push((format!("byte {byte} bit {bit}"), Some(byte), b));
        }
    }
    for cut in 0..good.len() {
        damaged.push((format!("cut at {cut}"), None, good[..cut].to_vec()));
    }
    damaged.push((
        "a trailing byte".into(),
        None,
        [good.clone(), vec![0]].concat(),
    ));
    for (what, flipped, bytes) in damaged {
        s.set_file_bytes(&snap_path(200), bytes);
        match st.latest() {
            Ok(latest) => {
                let snap = latest.snapshot.expect("falls back");
                assert_eq!(
                    (snap.seq, snap.payload.as_slice()),
                    (100, &b"state at one hundred"[..]),
                    "{what}"
                );
                assert_eq!(latest.skipped.len(), 1, "{what}");
                assert_eq!(latest.skipped[0].path, snap_path(200), "{what}");
                assert!(!latest.skipped[0].reason.is_empty());
            }
            Err(LogError::SnapshotVersion { file, found, .. }) => {
                // Only the version field (bytes 8-9) can say "newer".
                assert!(matches!(flipped, Some(8 | 9)), "{what}");
                assert!(found > 1);
                assert_eq!(file, "snapshots/00000000000000000200.snap");
                newer_refusals += 1;
            }
            Err(other) => panic!("{what}: {other:?}"),
        }
    }
    assert!(newer_refusals > 0);
}

/// Every snapshot damaged: no snapshot, each one reported (the caller then
/// replays the whole log). A header whose seq differs from the file name
/// (a renamed file) is skipped too. A newer-format file that is *older*
/// than a valid snapshot does not get in the way.
#[test]
fn all_snapshots_corrupt_gives_none_with_every_file_reported() {
    let s = SimStorage::new();
    let st = store(&s);
    for seq in [10, 20, 30] {
        st.write(seq, format!("s{seq}").as_bytes()).unwrap();
    }
    for seq in [10, 20, 30] {
        let mut b = s.file_bytes(&snap_path(seq)).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        s.set_file_bytes(&snap_path(seq), b);
    }
    let latest = st.latest().unwrap();
    assert_eq!(latest.snapshot, None);
    let paths: Vec<_> = latest.skipped.iter().map(|k| k.path.clone()).collect();
    assert_eq!(paths, vec![snap_path(30), snap_path(20), snap_path(10)]);

    // A valid frame under another name: skipped, the name is the contract.
    let s = SimStorage::new();
    let st = store(&s);
    st.write(10, b"ten").unwrap();
    st.write(20, b"twenty").unwrap();
    let twenty = s.file_bytes(&snap_path(20)).unwrap();
    st.write(30, b"thirty").unwrap();
    s.set_file_bytes(&snap_path(30), twenty);
    let latest = st.latest().unwrap();
    assert_eq!(latest.snapshot.unwrap().seq, 20);
    assert!(
        latest.skipped[0]
            .reason
            .contains("header says seq 20 but the file name says 30"),
        "{:?}",
        latest.skipped
    );

    // A newer-format file behind a valid newest snapshot is never read.
    let mut newer = s.file_bytes(&snap_path(10)).unwrap();
    newer[8] = 7;
    s.set_file_bytes(&snap_path(10), newer);
    st.write(30, b"thirty").unwrap();
    assert_eq!(st.latest().unwrap().snapshot.unwrap().seq, 30);
}

/// A snapshot write that fails at any fsync (the temporary file's, or the
/// directory's after the rename) and a crash right after: the snapshots
/// present are the old set or the new one, each intact, never a damaged or
/// half-renamed file; the next open removes the temporary file.
#[test]
fn a_snapshot_write_failing_at_any_fsync_keeps_a_usable_snapshot() {
    for (what, fail) in [("file fsync", 0), ("directory fsync", 1)] {
        for mode in [CrashMode::SyncedOnly, CrashMode::TornPrefix { seed: 3 }] {
            let s = SimStorage::new();
            let st = store(&s);
            st.write(5, b"five").unwrap();
            if fail == 0 {
                s.fail_next_syncs(1);
            } else {
                s.fail_next_dir_syncs(1);
            }
            let err = st.write(6, b"six").unwrap_err();
            assert!(err.to_string().contains("injected"), "{what}: {err}");
            let s2 = s.crash(mode);
            let st = store(&s2);
            let latest = st.latest().unwrap();
            assert!(latest.skipped.is_empty(), "{what}: {:?}", latest.skipped);
            let snap = latest.snapshot.unwrap();
            assert!(
                matches!(
                    (snap.seq, snap.payload.as_slice()),
                    (5, b"five") | (6, b"six")
                ),
                "{what}: {snap:?}"
            );
            let names = s2.list(&dir().join("snapshots")).unwrap();
            assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// The same on the real file system
// ---------------------------------------------------------------------------

fn fs_seg(dir: &Path, first: u64) -> PathBuf {
    dir.join("wal").join(format!("{first:020}.seg"))
}

/// On disk: a middle record damaged in three segments' worth of log is
/// refused with the file and byte, and the message is the one an operator
/// sees; the oldest damaged byte decides.
#[test]
fn fs_damage_in_the_middle_of_the_second_segment_names_file_and_byte() {
    let d = tempfile::tempdir().unwrap();
    let opts = small(200);
    let (log, _) = Log::open(d.path(), opts.clone()).unwrap();
    for seq in 1..=18 {
        log.append_sync(vec![payload(seq)]).unwrap();
    }
    let firsts: Vec<u64> = log
        .segment_paths()
        .iter()
        .map(|p| {
            veltrix_log::format::parse_segment_file_name(p.file_name().unwrap().to_str().unwrap())
                .unwrap()
        })
        .collect();
    log.close().unwrap();
    let second = parse(firsts[1], fs::read(fs_seg(d.path(), firsts[1])).unwrap());
    let (seq, start, _) = second.records[0];
    let mut bytes = second.bytes.clone();
    bytes[start + RECORD_HEADER_LEN] ^= 0x08;
    fs::write(fs_seg(d.path(), firsts[1]), &bytes).unwrap();
    let err = Log::open(d.path(), opts.clone()).unwrap_err();
    let (file, offset, problem) = corrupt_at(&err);
    assert_eq!((file, offset), (rel(firsts[1]), start as u64));
    assert!(
        matches!(problem, Corruption::BeforeTail { seq: s, .. } if s == seq),
        "{problem:?}"
    );
    assert_eq!(fs::read(fs_seg(d.path(), firsts[1])).unwrap(), bytes);
    // Repaired (the operator restores the file): opens with everything.
    fs::write(fs_seg(d.path(), firsts[1]), &second.bytes).unwrap();
    let (log, rec) = Log::open(d.path(), opts).unwrap();
    assert_prefix(&log, &rec, 18, "repaired");
}
