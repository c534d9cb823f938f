//! Real file-system tests in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use veltrix_log::{Corruption, Log, LogError, LogOptions};

fn payload(seq: u64) -> Vec<u8> {
    // Length varies with seq so record boundaries move around.
    format!("record-{seq}-{}", "x".repeat((seq % 7) as usize)).into_bytes()
}

fn read_all(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_from(from)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn seg(dir: &Path, first: u64) -> PathBuf {
    dir.join("wal").join(format!("{first:020}.seg"))
}

fn small(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        ..LogOptions::default()
    }
}

/// Writes records 1..=n, one per append, and returns the byte offset of each record.
fn write_records(dir: &Path, n: u64, opts: LogOptions) -> Vec<u64> {
    let (log, _) = Log::open(dir, opts).unwrap();
    let mut offsets = Vec::new();
    let mut off = 24u64;
    for seq in 1..=n {
        offsets.push(off);
        off += 16 + payload(seq).len() as u64;
        assert_eq!(log.append_sync(vec![payload(seq)]).unwrap(), seq..=seq);
    }
    log.close().unwrap();
    offsets
}

#[test]
fn append_reopen_read_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(
            (
                rec.records,
                rec.first_seq,
                rec.last_seq,
                rec.torn_tail.clone()
            ),
            (0, 1, 0, None)
        );
        assert_eq!(
            log.append_sync(vec![payload(1), payload(2), payload(3)])
                .unwrap(),
            1..=3
        );
        assert_eq!(log.append_sync(vec![payload(4)]).unwrap(), 4..=4);
        assert_eq!(log.append_sync(vec![Vec::new()]).unwrap(), 5..=5);
        assert_eq!((log.last_seq(), log.durable_seq()), (5, 5));
        log.close().unwrap();
    }
    let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!((rec.records, rec.first_seq, rec.last_seq), (5, 1, 5));
    assert!(rec.torn_tail.is_none());
    let all = read_all(&log, 1);
    assert_eq!(all.len(), 5);
    for (i, (seq, p)) in all.iter().enumerate().take(4) {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*p, payload(*seq));
    }
    assert_eq!(all[4], (5, Vec::new()));
    assert_eq!(
        read_all(&log, 4).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(read_all(&log, 6).is_empty());
    assert_eq!(log.append_sync(vec![payload(6)]).unwrap(), 6..=6);
    drop(log); // Drop closes too.
    let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rec.last_seq, 6);
    assert_eq!(read_all(&log, 6), vec![(6, payload(6))]);
}

#[test]
fn second_open_fails_with_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    let err = Log::open(dir.path(), LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("is locked by another process") && msg.contains("LOCK"),
        "{msg}"
    );
    log.close().unwrap();
    let (_log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
}

#[test]
fn group_commit_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    let log = Arc::new(log);
    let threads = 8;
    let per_thread = 100;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..per_thread {
                    let p = format!("t{t}-i{i}").into_bytes();
                    let r = log.append_sync(vec![p.clone()]).unwrap();
                    acked.push((*r.start(), p));
                }
                acked
            })
        })
        .collect();
    let mut acked: Vec<(u64, Vec<u8>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    acked.sort();
    let stats = log.stats();
    let appends = (threads * per_thread) as u64;
    assert_eq!(stats.appends, appends);
    assert_eq!(stats.records, appends);
    eprintln!(
        "group commit: {} appends, {} fsyncs, {} batches",
        stats.appends, stats.syncs, stats.batches
    );
    assert!(
        stats.syncs * 2 <= appends,
        "expected group commit, got {stats:?}"
    );
    Arc::into_inner(log).unwrap().close().unwrap();

    let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rec.records, appends);
    let all = read_all(&log, 1);
    assert_eq!(all, acked, "every acknowledged record, contiguous from 1");
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == i as u64 + 1)
    );
}

/// Copies a data directory's wal so each variant starts from the same bytes.
fn fresh_copy(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    fs::create_dir(dst.path().join("wal")).unwrap();
    for e in fs::read_dir(src.join("wal")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.path().join("wal").join(e.file_name())).unwrap();
    }
    dst
}

#[test]
fn torn_tail_at_every_byte_of_last_record() {
    let base = tempfile::tempdir().unwrap();
    let offsets = write_records(base.path(), 5, LogOptions::default());
    let original = fs::read(seg(base.path(), 1)).unwrap();
    let last = offsets[4];
    for cut in last..original.len() as u64 {
        let dir = fresh_copy(base.path());
        fs::write(seg(dir.path(), 1), &original[..cut as usize]).unwrap();
        let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!((rec.records, rec.last_seq), (4, 4), "cut at {cut}");
        if cut == last {
            // Cutting exactly at a record boundary leaves nothing torn.
            assert!(rec.torn_tail.is_none());
        } else {
            let torn = rec.torn_tail.clone().expect("torn tail reported");
            assert_eq!(
                (torn.offset, torn.bytes_cut),
                (last, cut - last),
                "cut at {cut}"
            );
            assert_eq!(torn.segment, seg(dir.path(), 1));
        }
        assert_eq!(
            fs::metadata(seg(dir.path(), 1)).unwrap().len(),
            last,
            "file truncated"
        );
        let all = read_all(&log, 1);
        assert_eq!(
            all.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            (1..=4).map(payload).collect::<Vec<_>>()
        );
        assert_eq!(log.append_sync(vec![b"after".to_vec()]).unwrap(), 5..=5);
        log.close().unwrap();
        let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!((rec.records, rec.torn_tail), (5, None));
        assert_eq!(read_all(&log, 5), vec![(5, b"after".to_vec())]);
    }
}

#[test]
fn torn_segment_header_is_rewritten() {
    let base = tempfile::tempdir().unwrap();
    write_records(base.path(), 0, LogOptions::default());
    let original = fs::read(seg(base.path(), 1)).unwrap();
    assert_eq!(original.len(), 24);
    for cut in 0..24 {
        let dir = fresh_copy(base.path());
        fs::write(seg(dir.path(), 1), &original[..cut]).unwrap();
        let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(rec.records, 0);
        let torn = rec.torn_tail.expect("reported");
        assert_eq!((torn.offset, torn.bytes_cut), (0, cut as u64));
        assert_eq!(log.append_sync(vec![b"x".to_vec()]).unwrap(), 1..=1);
    }
    // A zero-filled 24-byte header (file length persisted, data not) is torn too.
    let dir = fresh_copy(base.path());
    fs::write(seg(dir.path(), 1), [0u8; 24]).unwrap();
    let (_log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert!(rec.torn_tail.is_some());
}

#[test]
fn bit_flip_in_tail_record_is_cut() {
    let base = tempfile::tempdir().unwrap();
    let offsets = write_records(base.path(), 5, LogOptions::default());
    let original = fs::read(seg(base.path(), 1)).unwrap();
    for byte in offsets[4] as usize..original.len() {
        let dir = fresh_copy(base.path());
        let mut bytes = original.clone();
        bytes[byte] ^= 0x10;
        fs::write(seg(dir.path(), 1), &bytes).unwrap();
        let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(rec.last_seq, 4, "flip at {byte}");
        assert_eq!(rec.torn_tail.unwrap().offset, offsets[4]);
        assert_eq!(read_all(&log, 1).len(), 4);
    }
}

#[test]
fn bit_flip_in_middle_record_refuses_to_open() {
    let base = tempfile::tempdir().unwrap();
    let offsets = write_records(base.path(), 5, LogOptions::default());
    let original = fs::read(seg(base.path(), 1)).unwrap();
    let (start, end) = (offsets[2] as usize, offsets[3] as usize);
    for byte in start..end {
        let dir = fresh_copy(base.path());
        let mut bytes = original.clone();
        bytes[byte] ^= 0x01;
        fs::write(seg(dir.path(), 1), &bytes).unwrap();
        let err = Log::open(dir.path(), LogOptions::default()).unwrap_err();
        match &err {
            LogError::Corrupt {
                file,
                offset,
                problem: Corruption::BeforeTail { seq, next_seq, .. },
            } => {
                assert_eq!(file, "wal/00000000000000000001.seg");
                assert_eq!(
                    (*offset, *seq, *next_seq),
                    (start as u64, 3, 4),
                    "flip at {byte}"
                );
            }
            other => panic!("flip at {byte}: {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("wal/00000000000000000001.seg at byte {start}: ")),
            "{msg}"
        );
        assert!(
            msg.ends_with("corruption before the tail; refusing to start"),
            "{msg}"
        );
        // The file was not touched.
        assert_eq!(fs::read(seg(dir.path(), 1)).unwrap(), bytes);
    }
}

#[test]
fn segments_roll_and_retire() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(200);
    let (log, _) = Log::open(dir.path(), opts.clone()).unwrap();
    for seq in 1..=60 {
        log.append_sync(vec![payload(seq)]).unwrap();
    }
    // A batch spanning several segments.
    log.append_sync((61..=80).map(payload).collect()).unwrap();
    let segs = log.segment_paths();
    assert!(segs.len() > 5, "{segs:?}");
    for p in &segs {
        // No segment grows past segment_bytes (records here are small).
        assert!(fs::metadata(p).unwrap().len() <= 200);
    }
    assert_eq!(read_all(&log, 1).len(), 80);
    assert_eq!(read_all(&log, 37).first().unwrap().0, 37);

    let n = log.retire_before(30).unwrap();
    assert!(n > 0);
    let first = log.first_seq();
    assert!(first <= 30 && first > 1, "first retained {first}");
    assert_eq!(log.segment_paths().len(), segs.len() - n);
    assert!(matches!(
        log.read_from(1),
        Err(LogError::NotRetained { seq: 1, .. })
    ));
    let rest = read_all(&log, first);
    assert_eq!(rest.first().unwrap().0, first);
    assert_eq!(rest.len() as u64, 80 - first + 1);
    // Retiring everything keeps the active segment.
    log.retire_before(u64::MAX).unwrap();
    assert_eq!(log.segment_paths().len(), 1);
    let active_first = log.first_seq();
    assert_eq!(log.append_sync(vec![payload(81)]).unwrap(), 81..=81);
    log.close().unwrap();

    let (log, rec) = Log::open(dir.path(), opts).unwrap();
    assert_eq!((rec.first_seq, rec.last_seq), (active_first, 81));
    assert_eq!(
        read_all(&log, active_first).last().unwrap(),
        &(81, payload(81))
    );
}

#[test]
fn oversized_record_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(100);
    let (log, _) = Log::open(dir.path(), opts.clone()).unwrap();
    log.append_sync(vec![vec![1; 10]]).unwrap();
    log.append_sync(vec![vec![2; 500]]).unwrap();
    log.append_sync(vec![vec![3; 10]]).unwrap();
    assert_eq!(log.segment_paths().len(), 3);
    log.close().unwrap();
    let (log, rec) = Log::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records, 3);
    assert_eq!(read_all(&log, 2)[0].1, vec![2; 500]);
}

fn three_segments() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), small(120)).unwrap();
    for seq in 1..=12 {
        log.append_sync(vec![payload(seq)]).unwrap();
    }
    let segs = log.segment_paths();
    assert!(segs.len() >= 3, "{segs:?}");
    log.close().unwrap();
    (dir, segs)
}

fn open_err(dir: &Path) -> LogError {
    Log::open(dir, small(120)).unwrap_err()
}

#[test]
fn truncated_non_last_segment_is_refused() {
    let (dir, segs) = three_segments();
    let bytes = fs::read(&segs[0]).unwrap();
    fs::write(&segs[0], &bytes[..bytes.len() - 3]).unwrap();
    let err = open_err(dir.path());
    assert!(
        matches!(
            &err,
            LogError::Corrupt {
                problem: Corruption::NotLastSegment { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("wal/00000000000000000001.seg at byte "),
        "{err}"
    );
}

#[test]
fn missing_middle_segment_is_refused() {
    let (dir, segs) = three_segments();
    fs::remove_file(&segs[1]).unwrap();
    let err = open_err(dir.path());
    assert!(
        matches!(
            &err,
            LogError::Corrupt {
                problem: Corruption::Gap { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let name = segs[2].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        err.to_string()
            .starts_with(&format!("wal/{name} at byte 0: segment starts at seq")),
        "{err}"
    );
    assert!(
        err.to_string().contains("missing segment or sequence gap"),
        "{err}"
    );
}

#[test]
fn missing_oldest_segment_is_retirement() {
    let (dir, segs) = three_segments();
    fs::remove_file(&segs[0]).unwrap();
    let (_log, rec) = Log::open(dir.path(), small(120)).unwrap();
    assert!(rec.first_seq > 1);
    assert_eq!(rec.last_seq, 12);
}

#[test]
fn bad_header_and_unknown_version_are_refused() {
    let (dir, segs) = three_segments();
    let good = fs::read(&segs[1]).unwrap();
    let mut bad = good.clone();
    bad[0] = b'X';
    fs::write(&segs[1], &bad).unwrap();
    let err = open_err(dir.path());
    assert!(
        matches!(
            &err,
            LogError::Corrupt {
                problem: Corruption::BadHeader(_),
                offset: 0,
                ..
            }
        ),
        "{err:?}"
    );

    let mut newer = good.clone();
    newer[8] = 9;
    fs::write(&segs[1], &newer).unwrap();
    let err = open_err(dir.path());
    assert!(
        matches!(
            &err,
            LogError::Corrupt {
                problem: Corruption::UnknownVersion {
                    found: 9,
                    supported: 1
                },
                offset: 8,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unknown segment format version 9"),
        "{err}"
    );

    // Unknown version on the last segment is refused too, never treated as torn.
    fs::write(&segs[1], &good).unwrap();
    let last = segs.last().unwrap();
    let mut newer = fs::read(last).unwrap();
    newer[8] = 2;
    fs::write(last, &newer[..24]).unwrap();
    assert!(matches!(
        open_err(dir.path()),
        LogError::Corrupt {
            problem: Corruption::UnknownVersion { .. },
            ..
        }
    ));
}

#[test]
fn too_large_record_on_read_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append_sync(vec![vec![7; 100]]).unwrap();
    log.close().unwrap();
    let opts = LogOptions {
        max_record_bytes: 50,
        queue_bytes: 50,
        ..LogOptions::default()
    };
    let err = Log::open(dir.path(), opts).unwrap_err();
    assert!(
        matches!(
            &err,
            LogError::Corrupt {
                problem: Corruption::RecordTooLarge {
                    len: 100,
                    max: 50,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    // Still there with the old limit.
    let (log, rec) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rec.records, 1);
    drop(log);
}

#[test]
fn append_limits() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        max_record_bytes: 10,
        queue_bytes: 25,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    assert!(matches!(
        log.append_sync(vec![vec![0; 11]]),
        Err(LogError::RecordTooLarge { len: 11, max: 10 })
    ));
    assert!(matches!(
        log.append_sync(vec![vec![0; 10]; 3]),
        Err(LogError::BatchTooLarge { bytes: 30, max: 25 })
    ));
    assert!(matches!(
        log.append_sync(vec![]),
        Err(LogError::EmptyAppend)
    ));
    // Nothing was assigned by the refused appends.
    assert_eq!(log.append_sync(vec![vec![0; 10]]).unwrap(), 1..=1);
    assert!(matches!(
        Log::open(
            tempfile::tempdir().unwrap().path(),
            LogOptions {
                queue_capacity: 0,
                ..LogOptions::default()
            }
        ),
        Err(LogError::InvalidOptions(_))
    ));
}

#[test]
fn snapshot_then_retire_then_replay_tail() {
    use veltrix_log::{SnapshotOptions, SnapshotStore};
    let dir = tempfile::tempdir().unwrap();
    let opts = small(150);
    let (log, _) = Log::open(dir.path(), opts.clone()).unwrap();
    let snaps = SnapshotStore::open(dir.path(), SnapshotOptions { keep: 2 }).unwrap();
    for seq in 1..=40 {
        log.append_sync(vec![payload(seq)]).unwrap();
        if seq % 10 == 0 {
            snaps.write(seq, format!("state@{seq}").as_bytes()).unwrap();
            // Keep the log tail of the oldest kept snapshot.
            let oldest = snaps.list().unwrap()[0];
            log.retire_before(oldest + 1).unwrap();
        }
    }
    log.close().unwrap();
    let (log, rec) = Log::open(dir.path(), opts).unwrap();
    let latest = snaps.latest().unwrap().snapshot.unwrap();
    assert_eq!(latest.seq, 40);
    assert!(rec.first_seq > 1 && rec.first_seq <= 31, "{rec:?}");
    // Falling back to the older kept snapshot still finds its tail.
    let tail = read_all(&log, 31);
    assert_eq!(tail.len(), 10);
    assert_eq!(tail[0], (31, payload(31)));
}
