//! Snapshot store tests, on the real file system and on `SimStorage`.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use veltrix_log::{CrashMode, LogError, SimStorage, SnapshotOptions, SnapshotStore, Storage};

#[test]
fn write_latest_and_keep_n() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    assert_eq!(store.latest().unwrap().snapshot, None);
    for seq in [10, 20, 30, 40, 50] {
        store
            .write(seq, format!("state at {seq}").as_bytes())
            .unwrap();
    }
    assert_eq!(store.list().unwrap(), vec![30, 40, 50]);
    let latest = store.latest().unwrap();
    let snap = latest.snapshot.unwrap();
    assert_eq!(
        (snap.seq, snap.payload.as_slice()),
        (50, &b"state at 50"[..])
    );
    assert!(latest.skipped.is_empty());
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3);
}

fn snap_path(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join("snapshots").join(format!("{seq:020}.snap"))
}

#[test]
fn corrupt_newest_falls_back_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    store.write(10, b"ten").unwrap();
    store.write(20, b"twenty").unwrap();
    let p = snap_path(dir.path(), 20);
    let mut bytes = fs::read(&p).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&p, &bytes).unwrap();
    let latest = store.latest().unwrap();
    assert_eq!(latest.snapshot.unwrap().seq, 10);
    assert_eq!(latest.skipped.len(), 1);
    assert_eq!(latest.skipped[0].path, p);
    assert!(
        latest.skipped[0].reason.contains("checksum mismatch"),
        "{:?}",
        latest.skipped
    );

    // A truncated file is skipped as well.
    fs::write(&p, &bytes[..10]).unwrap();
    let latest = store.latest().unwrap();
    assert_eq!(latest.snapshot.unwrap().seq, 10);
    assert!(
        latest.skipped[0].reason.contains("shorter than"),
        "{:?}",
        latest.skipped
    );
}

#[test]
fn newer_format_version_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    store.write(10, b"ten").unwrap();
    store.write(20, b"twenty").unwrap();
    let p = snap_path(dir.path(), 20);
    let mut bytes = fs::read(&p).unwrap();
    bytes[8] = 3;
    fs::write(&p, &bytes).unwrap();
    let err = store.latest().unwrap_err();
    assert!(
        matches!(
            err,
            LogError::SnapshotVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("snapshots/00000000000000000020.snap: snapshot format version 3"),
        "{msg}"
    );
}

#[test]
fn crash_during_write_keeps_previous_snapshot() {
    let s = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(s.clone());
    let store =
        SnapshotStore::open_with(storage, Path::new("/d"), SnapshotOptions::default()).unwrap();
    store.write(5, b"five").unwrap();
    // The temp file's fsync fails: the new snapshot must not replace the old one.
    s.fail_next_syncs(1);
    assert!(store.write(6, b"six").is_err());
    let s2 = s.crash(CrashMode::TornPrefix { seed: 7 });
    let store = SnapshotStore::open_with(
        Arc::new(s2.clone()),
        Path::new("/d"),
        SnapshotOptions::default(),
    )
    .unwrap();
    let latest = store.latest().unwrap();
    assert_eq!(latest.snapshot.unwrap().payload, b"five");
    assert_eq!(store.list().unwrap(), vec![5]);

    // A completed write survives a crash.
    store.write(7, b"seven").unwrap();
    let s3 = s2.crash(CrashMode::SyncedOnly);
    let store = SnapshotStore::open_with(Arc::new(s3), Path::new("/d"), SnapshotOptions::default())
        .unwrap();
    assert_eq!(store.latest().unwrap().snapshot.unwrap().seq, 7);
}

#[test]
fn rewrite_same_seq_and_keep_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions { keep: 1 }).unwrap();
    store.write(3, b"a").unwrap();
    store.write(3, b"b").unwrap();
    store.write(4, b"c").unwrap();
    assert_eq!(store.list().unwrap(), vec![4]);
    assert_eq!(store.latest().unwrap().snapshot.unwrap().payload, b"c");
    assert!(SnapshotStore::open(dir.path(), SnapshotOptions { keep: 0 }).is_err());
}

/// A payload written in parts (larger than the 8 MiB fsync piece, parts of
/// every size including empty) reads back as the parts joined, and the file
/// holds them after its piece table, in order.
#[test]
fn a_payload_in_parts_reads_back_joined() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let big: Vec<u8> = (0..9 << 20).map(|i: u32| (i % 251) as u8).collect();
    let parts: [&[u8]; 4] = [b"head", &[], &big, b"tail"];
    // The writer steps aside between writes of at most 256 KiB.
    let mut steps = 0;
    store
        .write_parts_stepping(8, &parts, &mut || steps += 1)
        .unwrap();
    assert!(steps >= (9 << 20) / (256 << 10), "{steps} steps");
    let file = fs::read(snap_path(dir.path(), 8)).unwrap();
    assert_eq!(file[32..36], 4u32.to_le_bytes(), "a table of four pieces");
    assert!(file[32 + 4 + 4 * 28..] == parts.concat());
    let latest = store.latest().unwrap().snapshot.unwrap();
    assert_eq!((latest.seq, latest.payload), (8, parts.concat()));
}

fn big_part(len: u32, salt: u32) -> Arc<Vec<u8>> {
    Arc::new((0..len).map(|i| ((i + salt) % 253) as u8).collect())
}

/// Shared parts written in a recent snapshot are neither read for their
/// checksum nor written again: the new file refers to them where they are,
/// and reads back whole and checked. A part in a new allocation (same
/// bytes or not) is read and written.
#[test]
fn shared_parts_written_recently_are_referred_to_not_written_again() {
    use veltrix_log::Part;
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let big = big_part(3 << 20, 0);
    let small = Arc::new(b"chunk".to_vec());
    let empty = Arc::new(Vec::new());
    let fresh: &[u8] = b"lengths";
    let parts = [
        Part::Bytes(fresh),
        Part::Shared(&big),
        Part::Shared(&empty),
        Part::Shared(&small),
    ];
    let payload = [fresh, &big, &small].concat();
    let table = 32 + 4 + 4 * 28;
    store.write_pieces_stepping(1, &parts, &mut || {}).unwrap();
    assert_eq!(store.bytes_checksummed(), payload.len() as u64);
    assert_eq!(store.bytes_written(), (table + payload.len()) as u64);
    store.write_pieces_stepping(2, &parts, &mut || {}).unwrap();
    assert_eq!(
        store.bytes_checksummed(),
        (payload.len() + fresh.len()) as u64
    );
    let second = fs::read(snap_path(dir.path(), 2)).unwrap();
    assert_eq!(
        second.len(),
        table + fresh.len(),
        "only the fresh part is written"
    );
    assert_eq!(
        store.bytes_written(),
        (2 * table + payload.len() + fresh.len()) as u64
    );
    let latest = store.latest().unwrap().snapshot.unwrap();
    assert_eq!((latest.seq, &latest.payload), (2, &payload));
    // The same bytes as a new allocation, and a changed part: both read
    // and written; the file no longer needs snapshot 1.
    let changed = Arc::new(b"chunk2".to_vec());
    let copy = Arc::new(big.to_vec());
    let parts = [
        Part::Bytes(fresh),
        Part::Shared(&copy),
        Part::Shared(&changed),
    ];
    let before = store.bytes_checksummed();
    store.write_pieces_stepping(3, &parts, &mut || {}).unwrap();
    assert_eq!(
        store.bytes_checksummed() - before,
        (fresh.len() + copy.len() + changed.len()) as u64
    );
    let latest = store.latest().unwrap().snapshot.unwrap();
    assert_eq!(latest.payload, [fresh, &copy, &changed[..]].concat());
}

/// Referring to older files has bounds: an unchanged part is written again
/// within `2 * REWRITE_AFTER` snapshots, files that no kept snapshot takes
/// pieces from are deleted, and only the newest `keep` are restart points.
/// Every snapshot reads back as what was written, also after reopening
/// (a new store refers to nothing it did not write itself).
#[test]
fn unchanged_parts_are_written_again_within_a_bounded_number_of_snapshots() {
    use veltrix_log::{Part, REWRITE_AFTER};
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions { keep: 1 }).unwrap();
    let parts: Vec<Arc<Vec<u8>>> = (0..16).map(|i| big_part(1000, i)).collect();
    let shared: Vec<Part<'_>> = parts.iter().map(Part::Shared).collect();
    let payload: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let rounds = 6 * REWRITE_AFTER;
    let mut written_per_round = Vec::new();
    for seq in 1..=rounds {
        let before = store.bytes_written();
        store
            .write_pieces_stepping(seq, &shared, &mut || {})
            .unwrap();
        written_per_round.push(store.bytes_written() - before);
        let latest = store.latest().unwrap().snapshot.unwrap();
        assert_eq!((latest.seq, &latest.payload), (seq, &payload));
        assert_eq!(store.restart_points().unwrap(), vec![seq]);
        let present = store.list().unwrap();
        assert!(
            present.len() as u64 <= 2 * REWRITE_AFTER,
            "after {seq}: {present:?}"
        );
        assert!(
            present.iter().all(|&s| s + 2 * REWRITE_AFTER > seq),
            "after {seq}: {present:?}"
        );
    }
    // Every part was written again at least once after the first round,
    // and not all in one snapshot (they are staggered).
    let table = (32 + 4 + 16 * 28) as u64;
    let again: u64 = written_per_round[1..].iter().map(|w| w - table).sum();
    assert!(again >= payload.len() as u64, "{written_per_round:?}");
    let most = written_per_round[1..].iter().max().unwrap() - table;
    assert!(most < payload.len() as u64, "{written_per_round:?}");

    drop(store);
    let store = SnapshotStore::open(dir.path(), SnapshotOptions { keep: 1 }).unwrap();
    assert_eq!(store.latest().unwrap().snapshot.unwrap().payload, payload);
    let before = store.bytes_written();
    store
        .write_pieces_stepping(rounds + 1, &shared, &mut || {})
        .unwrap();
    assert_eq!(store.bytes_written() - before, table + payload.len() as u64);
    assert_eq!(
        store.list().unwrap(),
        vec![rounds + 1],
        "nothing older is needed"
    );
}

/// A snapshot whose piece in an older file is damaged or gone is skipped
/// with a reason naming the piece and the file; the store falls back to
/// an older snapshot that does not need it.
#[test]
fn a_damaged_or_missing_piece_elsewhere_skips_the_snapshot_with_the_reason() {
    use veltrix_log::Part;
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let kept = big_part(4000, 1);
    let other = big_part(4000, 2);
    store.write(5, b"independent").unwrap();
    store
        .write_pieces_stepping(10, &[Part::Shared(&kept), Part::Shared(&other)], &mut || {})
        .unwrap();
    let changed = big_part(10, 3);
    store
        .write_pieces_stepping(
            20,
            &[Part::Shared(&kept), Part::Shared(&changed)],
            &mut || {},
        )
        .unwrap();
    let twenty = store.latest().unwrap().snapshot.unwrap();
    assert_eq!(twenty.payload, [&kept[..], &changed[..]].concat());
    assert_eq!(store.list().unwrap(), vec![5, 10, 20]);

    // One byte of the shared piece flipped in snapshot 10: 20 and 10 both
    // need it; 5 does not.
    let ten = snap_path(dir.path(), 10);
    let good = fs::read(&ten).unwrap();
    let mut bad = good.clone();
    bad[32 + 4 + 2 * 28 + 100] ^= 1;
    fs::write(&ten, &bad).unwrap();
    let latest = store.latest().unwrap();
    assert_eq!(latest.snapshot.unwrap().seq, 5);
    assert_eq!(latest.skipped.len(), 2);
    assert!(
        latest.skipped[0].reason.contains("piece 0")
            && latest.skipped[0].reason.contains("of snapshot 10")
            && latest.skipped[0]
                .reason
                .contains("does not match its checksum"),
        "{:?}",
        latest.skipped
    );
    assert!(
        latest.skipped[1].reason.contains("checksum"),
        "{:?}",
        latest.skipped
    );

    // Writing snapshot 10 again would break 20, which takes a piece from it.
    let error = store.write(10, b"again").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("snapshot 20 takes pieces from it"),
        "{error}"
    );
    assert_eq!(fs::read(&ten).unwrap(), bad, "left as it was");

    // Snapshot 10 gone: 20 is skipped, saying which file is missing.
    fs::remove_file(&ten).unwrap();
    let latest = store.latest().unwrap();
    assert_eq!(latest.snapshot.unwrap().seq, 5);
    assert!(
        latest.skipped[0].reason.contains("missing")
            && latest.skipped[0]
                .reason
                .contains("00000000000000000010.snap"),
        "{:?}",
        latest.skipped
    );
}

/// Many snapshots of parts that change at random, written with random
/// `keep`: the newest always reads back as written, each restart point
/// reads back as what was written at it, and nothing a restart point
/// needs is ever deleted.
#[test]
fn random_changes_always_read_back_as_written() {
    use veltrix_log::Part;
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for keep in 1..=3 {
        let s = SimStorage::new();
        let store = SnapshotStore::open_with(
            Arc::new(s.clone()),
            Path::new("/d"),
            SnapshotOptions { keep },
        )
        .unwrap();
        let mut parts: Vec<Arc<Vec<u8>>> = (0..12).map(|i| big_part(50 + i * 7, i)).collect();
        let mut written = std::collections::BTreeMap::new();
        for seq in 1..=60u64 {
            for _ in 0..next() % 4 {
                let at = (next() % parts.len() as u64) as usize;
                parts[at] = big_part((next() % 300) as u32, seq as u32);
            }
            if next() % 5 == 0 {
                parts.push(big_part(40, seq as u32 * 3));
            }
            let fresh = seq.to_le_bytes();
            let mut pieces = vec![Part::Bytes(&fresh)];
            pieces.extend(parts.iter().map(Part::Shared));
            store
                .write_pieces_stepping(seq, &pieces, &mut || {})
                .unwrap();
            let payload: Vec<u8> = fresh
                .iter()
                .copied()
                .chain(parts.iter().flat_map(|p| p.iter().copied()))
                .collect();
            written.insert(seq, payload);
            assert_eq!(
                store.latest().unwrap().snapshot.unwrap().payload,
                written[&seq]
            );
            for point in store.restart_points().unwrap() {
                // Reading a restart point alone: a store over copies of it
                // and the older files present.
                let alone = SimStorage::new();
                let dir = Path::new("/d/snapshots");
                alone.create_dir_all(dir).unwrap();
                for older in store.list().unwrap().into_iter().filter(|&o| o <= point) {
                    let path = dir.join(format!("{older:020}.snap"));
                    let mut f = alone.create(&path).unwrap();
                    f.write_all(&s.file_bytes(&path).unwrap()).unwrap();
                }
                let reader = SnapshotStore::open_with(
                    Arc::new(alone),
                    Path::new("/d"),
                    SnapshotOptions { keep },
                )
                .unwrap();
                let got = reader.latest().unwrap();
                assert!(
                    got.skipped.is_empty(),
                    "keep {keep}, at {seq}: {:?}",
                    got.skipped
                );
                assert_eq!(
                    got.snapshot.unwrap().payload,
                    written[&point],
                    "keep {keep}, point {point}"
                );
            }
        }
    }
}
