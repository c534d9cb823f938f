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
    bytes[8] = 2;
    fs::write(&p, &bytes).unwrap();
    let err = store.latest().unwrap_err();
    assert!(
        matches!(
            err,
            LogError::SnapshotVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("snapshots/00000000000000000020.snap: snapshot format version 2"),
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
/// every size including empty) is the same file as the parts joined.
#[test]
fn a_payload_in_parts_is_the_same_file_as_in_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let big: Vec<u8> = (0..9 << 20).map(|i: u32| (i % 251) as u8).collect();
    let parts: [&[u8]; 4] = [b"head", &[], &big, b"tail"];
    store.write(7, &parts.concat()).unwrap();
    // The writer steps aside between writes of at most 256 KiB.
    let mut steps = 0;
    store
        .write_parts_stepping(8, &parts, &mut || steps += 1)
        .unwrap();
    assert!(steps >= (9 << 20) / (256 << 10), "{steps} steps");
    let joined = fs::read(snap_path(dir.path(), 7)).unwrap();
    let in_parts = fs::read(snap_path(dir.path(), 8)).unwrap();
    // The headers differ only in the seq (bytes 8..16).
    assert_eq!(in_parts.len(), joined.len());
    assert_eq!(in_parts[..8], joined[..8]);
    assert_eq!(in_parts[16..24], joined[16..24]);
    assert_eq!(in_parts[32..], joined[32..]);
    // The newest, so its checksum is checked on reading.
    let latest = store.latest().unwrap().snapshot.unwrap();
    assert_eq!((latest.seq, latest.payload), (8, parts.concat()));
}

/// Shared parts written in the previous snapshot are not read again for
/// the checksum (it is combined from the parts'), and the files still
/// read back whole and verified; a part in a new allocation is read.
#[test]
fn shared_parts_seen_last_time_are_not_checksummed_again() {
    use std::sync::Arc;
    use veltrix_log::Part;
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let big = Arc::new(
        (0..3 << 20)
            .map(|i: u32| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    );
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
    store.write_pieces_stepping(1, &parts, &mut || {}).unwrap();
    assert_eq!(store.bytes_checksummed(), payload.len() as u64);
    store.write_pieces_stepping(2, &parts, &mut || {}).unwrap();
    assert_eq!(
        store.bytes_checksummed(),
        (payload.len() + fresh.len()) as u64
    );
    let latest = store.latest().unwrap().snapshot.unwrap();
    assert_eq!((latest.seq, &latest.payload), (2, &payload));
    // The same bytes as a new allocation, and a changed part: both read.
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
    // The file is what writing the joined payload in one piece gives, but
    // for the seq in the header and the checksum over it.
    store.write(4, &latest.payload).unwrap();
    let pieces = fs::read(snap_path(dir.path(), 3)).unwrap();
    let joined = fs::read(snap_path(dir.path(), 4)).unwrap();
    assert!(pieces[..8] == joined[..8] && pieces[16..28] == joined[16..28]);
    assert!(pieces[32..] == joined[32..]);
}
