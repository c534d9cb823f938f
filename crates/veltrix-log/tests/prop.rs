//! Property: whatever the batches, faults and crash point, every acknowledged
//! record survives reopening, in order, with its bytes; recovery is repeatable.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use veltrix_log::{CrashMode, Log, LogError, LogOptions, SimStorage, Storage};

#[derive(Debug, Clone)]
enum Op {
    Append { n: usize, len: usize, fill: u8 },
    AppendSync { n: usize, len: usize, fill: u8 },
    FailSync,
    NoSpace(u64),
    Retire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..80, any::<u8>()).prop_map(|(n, len, fill)| Op::Append { n, len, fill }),
        8 => (1usize..6, 0usize..80, any::<u8>()).prop_map(|(n, len, fill)| Op::AppendSync { n, len, fill }),
        1 => Just(Op::FailSync),
        1 => (0u64..300).prop_map(Op::NoSpace),
        1 => Just(Op::Retire),
    ]
}

fn payloads(n: usize, len: usize, fill: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            (0..len)
                .map(|j| fill.wrapping_add((i * 31 + j) as u8))
                .collect()
        })
        .collect()
}

fn open(s: &SimStorage, opts: LogOptions) -> Result<(Log, veltrix_log::Recovery), LogError> {
    Log::open_with(
        Arc::new(s.clone()) as Arc<dyn Storage>,
        Path::new("/data"),
        opts,
    )
}

fn contents(log: &Log, first: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_from(first)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_records_survive_crashes(
        ops in proptest::collection::vec(op(), 1..40),
        segment_bytes in prop_oneof![Just(64u64), Just(200), Just(4096)],
        torn in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let opts = LogOptions { segment_bytes, ..LogOptions::default() };
        let s = SimStorage::new();
        let (log, _) = open(&s, opts.clone()).unwrap();
        let written: Arc<Mutex<BTreeMap<u64, Vec<u8>>>> = Arc::default();
        let acked: Arc<Mutex<Vec<RangeInclusive<u64>>>> = Arc::default();
        for op in ops {
            match op {
                Op::Append { n, len, fill } => {
                    let ps = payloads(n, len, fill);
                    let a = acked.clone();
                    if let Ok(r) = log.append(ps.clone(), Box::new(move |res| {
                        if let Ok(r) = res { a.lock().unwrap().push(r) }
                    })) {
                        written.lock().unwrap().extend(r.zip(ps));
                    }
                }
                Op::AppendSync { n, len, fill } => {
                    let ps = payloads(n, len, fill);
                    let (tx, rx) = std::sync::mpsc::channel();
                    if let Ok(r) = log.append(ps.clone(), Box::new(move |res| { let _ = tx.send(res); })) {
                        written.lock().unwrap().extend(r.zip(ps));
                        if let Ok(Ok(r)) = rx.recv() {
                            acked.lock().unwrap().push(r);
                        }
                    }
                }
                Op::FailSync => s.fail_next_syncs(1),
                Op::NoSpace(b) => s.set_space_left(Some(b)),
                Op::Retire => { let _ = log.retire_before(log.durable_seq() / 2); }
            }
        }
        let mode = if torn { CrashMode::TornPrefix { seed } } else { CrashMode::SyncedOnly };
        let s2 = s.crash(mode);
        drop(log);

        let (log, rec) = open(&s2, opts.clone()).unwrap();
        let got = contents(&log, rec.first_seq);
        let written = written.lock().unwrap();
        // Contiguous, in order, each with the bytes appended under that seq.
        prop_assert_eq!(got.len() as u64, rec.records);
        for (i, (seq, p)) in got.iter().enumerate() {
            prop_assert_eq!(*seq, rec.first_seq + i as u64);
            prop_assert_eq!(Some(p), written.get(seq));
        }
        prop_assert_eq!(rec.last_seq, rec.first_seq + rec.records - 1);
        // Never acknowledged-then-lost.
        for r in acked.lock().unwrap().iter() {
            prop_assert!(*r.end() <= rec.last_seq, "acked {:?} but recovered up to {}", r, rec.last_seq);
        }
        // Recovery is repeatable: reopening finds exactly the same records.
        log.close().unwrap();
        let (log, rec2) = open(&s2, opts.clone()).unwrap();
        prop_assert_eq!(rec2.torn_tail.clone(), None);
        prop_assert_eq!((rec2.first_seq, rec2.last_seq), (rec.first_seq, rec.last_seq));
        prop_assert_eq!(contents(&log, rec.first_seq), got);
        // And the log keeps going.
        let next = rec.last_seq + 1;
        prop_assert_eq!(log.append_sync(vec![b"after".to_vec()]).unwrap(), next..=next);
    }
}
