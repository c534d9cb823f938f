//! Fault injection and crash simulation through `SimStorage`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use veltrix_log::{CrashMode, Log, LogError, LogOptions, SimStorage, Storage};

fn dir() -> &'static Path {
    Path::new("/data")
}

fn open(s: &SimStorage, opts: LogOptions) -> Result<(Log, veltrix_log::Recovery), LogError> {
    Log::open_with(Arc::new(s.clone()) as Arc<dyn Storage>, dir(), opts)
}

fn read_all(log: &Log) -> Vec<(u64, Vec<u8>)> {
    log.read_from(1)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn p(seq: u64) -> Vec<u8> {
    format!("payload {seq}").into_bytes()
}

#[test]
fn fsync_failure_stops_the_log() {
    let s = SimStorage::new();
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    log.append_sync(vec![p(1), p(2)]).unwrap();
    s.fail_next_syncs(1);
    let err = log.append_sync(vec![p(3)]).unwrap_err();
    assert!(matches!(&err, LogError::Io { op: "fsync", .. }), "{err:?}");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert_eq!(log.durable_seq(), 2);
    // No retry: every later append fails until reopened, even though fsync would work now.
    let later = log.append_sync(vec![p(4)]).unwrap_err();
    assert!(matches!(&later, LogError::Failed { .. }), "{later:?}");
    assert!(later.to_string().contains("reopen"), "{later}");
    assert!(log.failure().is_some());
    assert!(matches!(log.close(), Err(LogError::Failed { .. })));

    // Reopen in the same process: the acknowledged records are there; seq 3 was
    // written but never acknowledged, so it may or may not be.
    let (log, rec) = open(&s, LogOptions::default()).unwrap();
    assert!(rec.last_seq >= 2);
    assert_eq!(&read_all(&log)[..2], &[(1, p(1)), (2, p(2))]);
    let next = rec.last_seq + 1;
    assert_eq!(log.append_sync(vec![p(next)]).unwrap(), next..=next);
}

#[test]
fn queued_appends_fail_with_the_batch() {
    let s = SimStorage::new();
    s.set_sync_delay(Duration::from_millis(30));
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    s.fail_next_syncs(1);
    let results = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5 {
        let r = results.clone();
        log.append(vec![p(i)], Box::new(move |res| r.lock().unwrap().push(res)))
            .unwrap();
    }
    let _ = log.close();
    let results = results.lock().unwrap();
    assert_eq!(results.len(), 5, "every waiter is completed");
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    assert!(matches!(results[0], Err(LogError::Io { .. })));
}

#[test]
fn disk_full_is_no_space() {
    let s = SimStorage::new();
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    log.append_sync(vec![p(1)]).unwrap();
    s.set_space_left(Some(10));
    let err = log.append_sync(vec![vec![1; 100]]).unwrap_err();
    assert!(matches!(err, LogError::NoSpace { .. }), "{err:?}");
    assert!(err.is_no_space());
    let later = log.append_sync(vec![p(3)]).unwrap_err();
    assert!(
        matches!(later, LogError::Failed { .. }) && later.is_no_space(),
        "{later:?}"
    );
    drop(log);
    s.set_space_left(None);
    // The partial record left by the full disk is a torn tail.
    let (log, rec) = open(&s, LogOptions::default()).unwrap();
    let torn = rec.torn_tail.expect("partial write cut");
    assert_eq!(torn.bytes_cut, 10);
    assert_eq!(read_all(&log), vec![(1, p(1))]);
}

#[test]
fn write_failure_stops_the_log() {
    let s = SimStorage::new();
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    s.fail_next_writes(1);
    assert!(matches!(
        log.append_sync(vec![p(1)]),
        Err(LogError::Io { op: "write", .. })
    ));
    assert!(matches!(
        log.append_sync(vec![p(1)]),
        Err(LogError::Failed { .. })
    ));
}

#[test]
fn crash_keeps_synced_and_loses_unsynced() {
    let s = SimStorage::new();
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    log.append_sync(vec![p(1), p(2), p(3)]).unwrap();
    // Written but not synced: the fsync fails, so never acknowledged.
    s.fail_next_syncs(1);
    assert!(log.append_sync(vec![p(4)]).is_err());
    let s2 = s.crash(CrashMode::SyncedOnly);
    drop(log); // The dead process's handles fail; nothing it does now lands.
    let (log, rec) = open(&s2, LogOptions::default()).unwrap();
    assert_eq!((rec.last_seq, rec.torn_tail), (3, None));
    assert_eq!(read_all(&log), vec![(1, p(1)), (2, p(2)), (3, p(3))]);
    assert_eq!(log.append_sync(vec![p(4)]).unwrap(), 4..=4);
}

#[test]
fn crash_with_torn_prefix_cuts_the_tail() {
    let mut torn_seen = 0;
    for seed in 0..20 {
        let s = SimStorage::new();
        let (log, _) = open(&s, LogOptions::default()).unwrap();
        log.append_sync(vec![p(1)]).unwrap();
        s.fail_next_syncs(1);
        assert!(log.append_sync(vec![vec![9; 200]]).is_err());
        let s2 = s.crash(CrashMode::TornPrefix { seed });
        drop(log);
        let (log, rec) = open(&s2, LogOptions::default()).unwrap();
        if let Some(t) = &rec.torn_tail {
            torn_seen += 1;
            assert_eq!(t.offset, 24 + 16 + p(1).len() as u64);
            assert_eq!(rec.last_seq, 1);
            assert_eq!(read_all(&log), vec![(1, p(1))]);
        } else {
            // The prefix kept was empty or the whole (never acknowledged) record.
            assert!(rec.last_seq == 1 || rec.last_seq == 2);
        }
    }
    assert!(torn_seen > 10, "{torn_seen}");
}

#[test]
fn crash_before_new_segment_directory_sync() {
    // Rolling creates the next segment; a crash before its directory entry is
    // durable loses only unacknowledged records.
    let s = SimStorage::new();
    let opts = LogOptions {
        segment_bytes: 64,
        ..LogOptions::default()
    };
    let (log, _) = open(&s, opts.clone()).unwrap();
    log.append_sync(vec![p(1)]).unwrap();
    // Next append rolls: sync old (ok), then the new header's sync fails.
    s.fail_sync_after(1);
    assert!(log.append_sync(vec![p(2)]).is_err());
    let s2 = s.crash(CrashMode::SyncedOnly);
    drop(log);
    let (log, rec) = open(&s2, opts).unwrap();
    assert_eq!(rec.last_seq, 1);
    assert_eq!(log.append_sync(vec![p(2)]).unwrap(), 2..=2);
}

#[test]
fn group_commit_batches_under_slow_fsync() {
    let s = SimStorage::new();
    s.set_sync_delay(Duration::from_millis(2));
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    let log = Arc::new(log);
    let hs: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.append_sync(vec![format!("{t}/{i}").into_bytes()])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let st = log.stats();
    assert_eq!(st.appends, 400);
    assert!(st.syncs * 3 <= st.appends, "{st:?}");
    assert_eq!(read_all(&log).len(), 400);
}

#[test]
fn queue_full_is_reported() {
    let s = SimStorage::new();
    s.set_sync_delay(Duration::from_millis(50));
    let opts = LogOptions {
        queue_capacity: 2,
        ..LogOptions::default()
    };
    let (log, _) = open(&s, opts).unwrap();
    let mut full = 0;
    let mut ranges = Vec::new();
    for i in 0..6 {
        match log.append(vec![p(i)], Box::new(|_| {})) {
            Ok(r) => ranges.push(r),
            Err(LogError::QueueFull { .. }) => full += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(full >= 1, "bounded queue refused some appends");
    // Refused appends took no seqs.
    let starts: Vec<u64> = ranges.iter().map(|r| *r.start()).collect();
    assert_eq!(starts, (1..=starts.len() as u64).collect::<Vec<_>>());
    log.close().unwrap();
}

#[test]
fn second_open_on_sim_is_locked_and_crash_releases_lock() {
    let s = SimStorage::new();
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    assert!(matches!(
        open(&s, LogOptions::default()),
        Err(LogError::Locked { .. })
    ));
    let s2 = s.crash(CrashMode::SyncedOnly);
    drop(log);
    open(&s2, LogOptions::default()).unwrap();
}

#[test]
fn last_handle_dropped_inside_callback_does_not_deadlock() {
    let s = SimStorage::new();
    s.set_sync_delay(Duration::from_millis(20));
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    let log = Arc::new(log);
    let inner = log.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    log.append(
        vec![p(1)],
        Box::new(move |r| {
            drop(inner);
            tx.send(r).unwrap();
        }),
    )
    .unwrap();
    drop(log); // The callback now holds the last handle.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap(),
        1..=1
    );
}

#[test]
fn read_while_appending_sees_only_durable_prefix() {
    let s = SimStorage::new();
    let (log, _) = open(
        &s,
        LogOptions {
            segment_bytes: 128,
            ..LogOptions::default()
        },
    )
    .unwrap();
    let log = Arc::new(log);
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 1..=300 {
                log.append_sync(vec![p(i)]).unwrap();
            }
        })
    };
    for _ in 0..50 {
        let durable = log.durable_seq();
        let got = read_all(&log);
        assert!(got.len() as u64 >= durable);
        for (i, (seq, payload)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*payload, p(*seq));
        }
    }
    writer.join().unwrap();
    assert_eq!(read_all(&log).len(), 300);
}

#[test]
fn sync_observer_sees_every_fsync() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let s = SimStorage::new();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let opts = LogOptions {
        segment_bytes: 64,
        sync_observer: Some(Arc::new(move |_d| {
            counter.fetch_add(1, Ordering::Relaxed);
        })),
        ..LogOptions::default()
    };
    let (log, _) = open(&s, opts).unwrap();
    for i in 1..=5 {
        log.append_sync(vec![p(i)]).unwrap();
    }
    let st = log.stats();
    assert_eq!(st.batches, 5);
    // Rolls add a sync of the finished segment.
    assert!(st.syncs > 5);
    assert_eq!(seen.load(Ordering::Relaxed), st.syncs);
}

#[test]
fn media_damage_in_sim_is_refused() {
    let s = SimStorage::new();
    let (log, _) = open(&s, LogOptions::default()).unwrap();
    log.append_sync(vec![p(1), p(2), p(3)]).unwrap();
    log.close().unwrap();
    let seg = dir().join("wal/00000000000000000001.seg");
    let mut bytes = s.file_bytes(&seg).unwrap();
    bytes[24 + 16] ^= 0xff; // first payload byte of seq 1
    s.set_file_bytes(&seg, bytes);
    let err = open(&s, LogOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("wal/00000000000000000001.seg at byte 24: checksum mismatch"),
        "{err}"
    );
}
