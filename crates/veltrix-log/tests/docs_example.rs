//! The byte examples in docs/LOG_FORMAT.md are the bytes this crate writes.

use veltrix_log::{Log, LogOptions, SnapshotOptions, SnapshotStore};

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn documented_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    log.append_sync(vec![b"hi".to_vec()]).unwrap();
    log.close().unwrap();
    let seg = std::fs::read(dir.path().join("wal/00000000000000000001.seg")).unwrap();
    assert_eq!(
        hex(&seg),
        "56 4c 58 57 41 4c 00 00 01 00 00 00 01 00 00 00 00 00 00 00 f4 08 41 11 \
         02 00 00 00 c8 48 cf 11 01 00 00 00 00 00 00 00 68 69"
    );
    let store = SnapshotStore::open(dir.path(), SnapshotOptions::default()).unwrap();
    let p = store.write(500, b"state").unwrap();
    assert_eq!(
        hex(&std::fs::read(p).unwrap()),
        "56 4c 58 53 4e 41 50 00 02 00 00 00 f4 01 00 00 00 00 00 00 \
         25 00 00 00 00 00 00 00 58 4e 76 f9 \
         01 00 00 00 \
         f4 01 00 00 00 00 00 00 40 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 df 68 db 66 \
         73 74 61 74 65"
    );
}
