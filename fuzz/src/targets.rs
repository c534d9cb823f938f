// The bodies of Veltrix's fuzz targets (issue 5), one function per target.
//
// Each takes arbitrary bytes, runs them through a public API as a real
// caller would, and panics only when a property the project promises is
// broken (a panic inside the API is a crash too). This file is compiled in
// two places: by the fuzz workspace (`fuzz/`, through `src/lib.rs`) and,
// with `#[path]`, by `crates/veltrix-server/tests/access.rs`, which runs
// every file under `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/`
// through [`TARGETS`] on plain `cargo test`. So it names crates only by the
// names both places have: `veltrix_config`, `veltrix_core`, `veltrix_log`,
// `veltrix_server`, `serde_json`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use veltrix_config::Source;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::{Ingest, Plan, Submission};
use veltrix_log::{Log, LogError, LogOptions, SimStorage, SnapshotOptions, SnapshotStore, Storage};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (also its directory under `fuzz/seeds` and
/// `fuzz/regressions`) and its body.
pub const TARGETS: [(&str, Target); 7] = [
    ("event", event),
    ("ndjson", ndjson),
    ("config", config),
    ("expr", expr),
    ("log_segment", log_segment),
    ("snapshot", snapshot),
    ("record", record),
];

/// Acceptance time given to events without `ts` (fixed: runs are repeatable).
const NOW_MS: i64 = 1_796_083_200_000;

/// The example configuration, compiled once.
fn example() -> Arc<Plan> {
    static PLAN: OnceLock<Arc<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let text = include_str!("../../examples/golden-compass/veltrix.toml");
        let config = veltrix_config::compile(&[Source::new("veltrix.toml", text)])
            .expect("the example configuration compiles");
        Arc::new(Plan::new(Arc::new(config)))
    })
    .clone()
}

fn dump_json(ingest: &Ingest, engine: &veltrix_core::Engine) -> Vec<u8> {
    serde_json::to_vec(&dump(&DumpSource::from_engine(ingest, engine))).expect("dump serializes")
}

/// One event against the example configuration: parse and validate, then
/// submit twice. An accepted event has an id and a player of 1-128 bytes
/// and a declared type; the same bytes again are a duplicate; a rejection
/// says why.
pub fn event(data: &[u8]) {
    let plan = example();
    match veltrix_core::parse_event(&plan.config, data, NOW_MS) {
        Ok(event) => {
            assert!((1..=128).contains(&event.id.len()), "id {:?}", event.id);
            assert!((1..=128).contains(&event.player.len()));
            assert!((event.event_type as usize) < plan.config.event_types.len());
            let declared = &plan.config.event_types[event.event_type as usize];
            assert_eq!(event.data.len(), declared.fields.len());
        }
        Err(error) => assert!(!error.message.is_empty()),
    }
    let mut ingest = Ingest::new();
    let first = ingest.submit(&plan, data, 1, NOW_MS);
    let second = ingest.submit(&plan, data, 2, NOW_MS);
    match first {
        Submission::Accepted { .. } => {
            assert!(matches!(second, Submission::Duplicate { .. }), "dedup");
            assert_eq!(ingest.counts.accepted, 1);
        }
        Submission::Duplicate { .. } => panic!("a first submission is never a duplicate"),
        Submission::Rejected(r) => {
            assert!(!r.error.is_empty());
            // A rejected event does not use up its id.
            assert!(matches!(second, Submission::Rejected(_)));
        }
    }
}

/// A batch of NDJSON through the offline pipeline (`veltrix run`'s engine):
/// every non-blank line is counted exactly once, and 1 and 3 partitions
/// give the same state dump.
pub fn ndjson(data: &[u8]) {
    let plan = example();
    let lines = veltrix_core::ndjson_lines(data).count() as u64;
    let (ingest, engine) = veltrix_core::run_ndjson(plan.clone(), data, NOW_MS, 1);
    let c = ingest.counts;
    assert_eq!(c.accepted + c.duplicates + c.rejected, lines, "{c:?}");
    assert_eq!(ingest.rejected.len() as u64, c.rejected);
    let one = dump_json(&ingest, &engine);
    let (ingest3, engine3) = veltrix_core::run_ndjson(plan, data, NOW_MS, 3);
    assert!(
        one == dump_json(&ingest3, &engine3),
        "partitions changed the state"
    );
}

/// Configuration text (one file, lossily UTF-8): compiles, or fails with at
/// least one diagnostic, each located inside the text; a compiled one
/// builds a plan.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_config(&text);
}

fn check_config(text: &str) -> Option<Arc<Plan>> {
    match veltrix_config::compile(&[Source::new("veltrix.toml", text)]) {
        Ok(config) => Some(Arc::new(Plan::new(Arc::new(config)))),
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "an error without a diagnostic");
            let lines = text.lines().count().max(1) + 1;
            for d in &diagnostics {
                assert!(!d.message.is_empty());
                assert!(
                    d.span.start <= d.span.end && d.span.end <= text.len(),
                    "{d:?}"
                );
                assert!(d.line >= 1 && d.line <= lines, "{d:?}");
                assert!(d.column >= 1, "{d:?}");
            }
            None
        }
    }
}

/// An expression as a rule's `when` (escaped into a TOML string) in a
/// configuration whose event type has fields of every type: it compiles or
/// is refused with a diagnostic; when it compiles, running events through
/// the rule (fields present, missing, odd values) never panics and is
/// deterministic.
pub fn expr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", c as u32)),
            c => escaped.push(c),
        }
    }
    let toml = format!(
        r#"
[currencies.coins]
[events.login]
[events.purchase.fields]
amount = {{ type = "number", min = 0 }}
count = {{ type = "integer", optional = true }}
currency = {{ type = "string", optional = true, enum = ["coins", "gems"] }}
vip = {{ type = "boolean", optional = true }}

[rules.fuzzed]
on = "purchase"
when = "{escaped}"
reward = {{ points = 1, coins = 1, badge = "b" }}

[rules.second]
on = "purchase"
when = "has_badge('b')"
reward = {{ points = 2 }}
"#
    );
    let Some(plan) = check_config(&toml) else {
        return;
    };
    let events = br#"{"id":"1","player":"a","type":"login","ts":1796083200000}
{"id":"2","player":"a","type":"purchase","ts":1796083201000,"data":{"amount":5,"count":3,"currency":"coins","vip":true}}
{"id":"3","player":"a","type":"purchase","ts":1796169600000,"data":{"amount":0}}
{"id":"4","player":"b","type":"purchase","ts":1796083202000,"data":{"amount":1e300,"count":-9223372036854775808,"currency":"gems","vip":false}}
{"id":"5","player":"a","type":"purchase","ts":1796083203000,"data":{"amount":0.5,"count":9223372036854775807}}
"#;
    let (i1, e1) = veltrix_core::run_ndjson(plan.clone(), events, NOW_MS, 1);
    let (i2, e2) = veltrix_core::run_ndjson(plan, events, NOW_MS, 2);
    assert!(
        dump_json(&i1, &e1) == dump_json(&i2, &e2),
        "not deterministic"
    );
}

/// Arbitrary bytes as the only segment of a log (after a valid header when
/// the first byte is odd, so the records are reached), opened on simulated
/// storage with a small or the default record limit. Open either refuses
/// with a named error, or every record it reports reads back with its
/// checksum, and reopening finds the same records and nothing torn.
pub fn log_segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = Vec::new();
    if mode & 1 == 1 {
        file.extend_from_slice(&veltrix_log::format::encode_segment_header(1));
    }
    file.extend_from_slice(rest);
    let opts = LogOptions {
        max_record_bytes: if mode & 2 == 2 { 64 } else { 1 << 20 },
        queue_bytes: 1 << 20,
        segment_bytes: 1 << 20,
        ..LogOptions::default()
    };
    let storage = SimStorage::new();
    let dir = Path::new("/d");
    let wal = dir.join("wal");
    storage.create_dir_all(&wal).unwrap();
    let seg = wal.join(veltrix_log::format::segment_file_name(1));
    let mut f = storage.create(&seg).unwrap();
    f.write_all(&file).unwrap();
    f.sync_data().unwrap();
    drop(f);
    storage.sync_dir(&wal).unwrap();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let (log, recovery) = match Log::open_with(shared.clone(), dir, opts.clone()) {
        Ok(opened) => opened,
        Err(e @ LogError::Corrupt { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("wal/00000000000000000001.seg at byte "));
            assert!(message.ends_with("refusing to start"));
            // A refusal leaves the file as it was.
            assert!(storage.file_bytes(&seg).unwrap() == file);
            return;
        }
        Err(e) => panic!("unexpected error: {e:?}"),
    };
    assert_eq!(recovery.first_seq, 1);
    assert_eq!(recovery.last_seq, recovery.records);
    let records: Vec<(u64, Vec<u8>)> = log
        .read_from(1)
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("what open accepted reads back");
    assert_eq!(records.len() as u64, recovery.records);
    for (i, (seq, _)) in records.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
    }
    if let Some(torn) = &recovery.torn_tail {
        assert!(torn.bytes_cut > 0 || torn.offset == 0);
    }
    log.close().unwrap();
    let (log, again) = Log::open_with(shared, dir, opts).expect("reopens");
    assert_eq!((again.records, again.torn_tail), (recovery.records, None));
    let next = recovery.last_seq + 1;
    assert_eq!(log.append_sync(vec![b"x".to_vec()]).unwrap(), next..=next);
}

/// Arbitrary bytes as a snapshot file: the frame decoder accepts only what
/// re-encodes to the same bytes (format 2: header, piece table, the pieces
/// held here; format 1: header and payload); the store skips (with a
/// reason) or refuses (newer version) what it cannot use, including pieces
/// said to be in files that are not there; the server's payload decoder
/// refuses garbage without panicking.
pub fn snapshot(data: &[u8]) {
    use veltrix_log::format::{Placed, SnapshotProblem, decode_snapshot, snapshot_head};
    match decode_snapshot(data) {
        Ok(file) if file.version == 2 => {
            let placed: Vec<Placed> = file
                .pieces
                .iter()
                .map(|piece| match piece.source == file.seq {
                    true => Placed::Here {
                        crc: piece.crc,
                        len: piece.len as usize,
                    },
                    false => Placed::Elsewhere(*piece),
                })
                .collect();
            let (head, _) = snapshot_head(file.seq, &placed);
            assert!(data.starts_with(&head), "re-encodes to the same head");
        }
        Ok(file) => assert_eq!((file.version, file.pieces.len()), (1, 1)),
        Err(SnapshotProblem::NewerVersion(v)) => assert!(v > 2),
        Err(SnapshotProblem::Corrupt(reason)) => assert!(!reason.is_empty()),
    }
    let storage = SimStorage::new();
    let dir = Path::new("/d");
    let store =
        SnapshotStore::open_with(Arc::new(storage.clone()), dir, SnapshotOptions::default())
            .unwrap();
    let path = dir.join("snapshots").join("00000000000000000007.snap");
    let mut f = storage.create(&path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    match store.latest() {
        Ok(latest) => match latest.snapshot {
            Some(s) => {
                assert_eq!(s.seq, 7);
                assert!(latest.skipped.is_empty());
            }
            None => assert_eq!(latest.skipped.len(), 1),
        },
        Err(e) => assert!(matches!(e, LogError::SnapshotVersion { .. }), "{e:?}"),
    }
    // The payload as the server's snapshot (envelope, core state).
    let _ = veltrix_server::rebuild::decode_snapshot(example(), data);
}

/// Arbitrary bytes as one log record payload of the server: decodes or is
/// refused; what decodes re-encodes stably; an event record is checked
/// against the example configuration without panicking.
pub fn record(data: &[u8]) {
    use veltrix_server::record::{LogRecord, decode, encode, rebuild_event};
    let Ok(decoded) = decode(data) else {
        return;
    };
    let once = encode(&decoded);
    let again = decode(&once).expect("an encoded record decodes");
    assert!(encode(&again) == once, "encoding is not stable");
    if let LogRecord::Event {
        id,
        player,
        event_type,
        ts,
        data,
    } = &decoded
    {
        let plan = example();
        if let Ok(event) = rebuild_event(&plan.config, id, player, event_type, *ts, data) {
            let mut engine = veltrix_core::Engine::new(plan, 1);
            engine.apply_event(1, &event);
        }
    }
}
