//! Rebuilding state from a data directory: the latest valid snapshot (if
//! asked for and usable) plus the log after it, or the whole log. The server's
//! start-up, `veltrix replay` and `veltrix verify` all go through [`rebuild`],
//! so they cannot disagree on how a log is read.
//!
//! A snapshot named `S` holds the state after applying every record with
//! seq ≤ S — events and spends, and also the server's own `Tally` and
//! `Config` records (their counts and dead letters are part of ingest) — so
//! replay continues at `S + 1`.

use crate::engine::{ConfigVersion, Core};
use crate::error::ServerError;
use crate::record::{self, LogRecord};
use serde_json::{Value, json};
use std::sync::Arc;
use veltrix_core::analytics::query_view;
use veltrix_core::cow::CowVec;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::snapshot::{Encoder, PieceRef, Pieces};
use veltrix_core::{Engine, Ingest, Plan};
use veltrix_log::{Log, Part, SnapshotStore};

/// Where a rebuild starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The newest valid snapshot with the active configuration version, then
    /// the log after it; the whole log when there is none.
    LatestSnapshot,
    /// Every record of the log from seq 1, ignoring snapshots.
    LogOnly,
}

/// What a rebuild did.
pub struct Rebuilt {
    pub core: Core,
    /// The snapshot it started from (its seq), if any.
    pub snapshot_seq: Option<u64>,
    /// Records read from the log.
    pub records_replayed: u64,
    /// The configuration version of the last `Config` record seen (in the
    /// tail, or the snapshot's own version when the tail has none).
    pub last_config_version: Option<String>,
    /// Snapshot files that were corrupt and skipped (already logged as
    /// warnings): the data directory is damaged.
    pub skipped_snapshots: Vec<String>,
    /// Why the newest valid snapshot was not used (another configuration
    /// version, say), if it was not; already logged as a warning.
    pub ignored_snapshot: Option<String>,
}

impl Rebuilt {
    /// Every warning, one line each.
    pub fn warnings(&self) -> Vec<String> {
        self.skipped_snapshots
            .iter()
            .chain(&self.ignored_snapshot)
            .cloned()
            .collect()
    }
}

/// Rebuilds state from `source`. Snapshots come from `store`, records from
/// `log` (up to its durable seq). Refuses, with a message saying what is
/// missing, when the log ends before the snapshot or when the records a
/// full replay needs were retired.
pub fn rebuild(
    plan: Arc<Plan>,
    partitions: usize,
    log: &Log,
    store: &SnapshotStore,
    source: Source,
) -> Result<Rebuilt, ServerError> {
    let mut skipped_snapshots = Vec::new();
    let mut ignored_snapshot = None;
    let mut start = None;
    if source == Source::LatestSnapshot {
        let started = std::time::Instant::now();
        let latest = store.latest().map_err(ServerError::Snapshot)?;
        let read_ms = started.elapsed().as_millis() as u64;
        for skipped in &latest.skipped {
            let line = format!(
                "skipped snapshot {}: {}",
                skipped.path.display(),
                skipped.reason
            );
            tracing::warn!("{line}; falling back to an older snapshot");
            skipped_snapshots.push(line);
        }
        if let Some(snapshot) = latest.snapshot {
            match decode_snapshot(plan.clone(), &snapshot.payload) {
                Ok(state) => {
                    tracing::info!(
                        seq = snapshot.seq,
                        bytes = snapshot.payload.len(),
                        read_ms,
                        decode_ms = started.elapsed().as_millis() as u64 - read_ms,
                        "loaded the snapshot"
                    );
                    start = Some((snapshot.seq, state));
                }
                Err(e) => {
                    let line = format!("ignored snapshot {} ({e})", snapshot.path.display());
                    tracing::warn!("{line}; replaying the whole log instead");
                    ignored_snapshot = Some(line);
                }
            }
        }
    }
    let last_seq = log.last_seq();
    let (snapshot_seq, core, last_config_version) = match start {
        Some((seq, decoded)) => {
            if last_seq < seq {
                return Err(ServerError::LogBehindSnapshot {
                    snapshot_seq: seq,
                    log_last_seq: last_seq,
                });
            }
            // The engine's plan: the snapshot's configuration with its
            // retained names.
            let plan = decoded.engine.plan.clone();
            let version = plan.config.version.clone();
            let config_history = decoded.config_history.unwrap_or_else(|| {
                vec![ConfigVersion {
                    version: version.clone(),
                    seq: 0,
                }]
            });
            let core = Core {
                plan,
                ingest: decoded.ingest,
                engine: decoded.engine,
                dead_letter_bodies: decoded.dead_letter_bodies,
                config_sources: decoded.config_sources,
                config_history,
            };
            (Some(seq), core, Some(version))
        }
        None => {
            let core = Core {
                ingest: Ingest::new(),
                engine: Engine::new(plan.clone(), partitions.max(1)),
                plan,
                dead_letter_bodies: CowVec::new(),
                config_sources: None,
                config_history: Vec::new(),
            };
            (None, core, None)
        }
    };
    let from = snapshot_seq.map_or(1, |s| s + 1);
    if log.first_seq() > from && last_seq >= from {
        if let Some(why) = &ignored_snapshot {
            return Err(ServerError::SnapshotUnusable {
                why: why.clone(),
                first: log.first_seq(),
            });
        }
        if snapshot_seq.is_none() && !skipped_snapshots.is_empty() {
            return Err(ServerError::NoUsableSnapshot {
                skipped: skipped_snapshots,
                first: log.first_seq(),
            });
        }
        return Err(ServerError::Retired {
            from,
            first: log.first_seq(),
        });
    }
    let mut rebuilt = Rebuilt {
        core,
        snapshot_seq,
        records_replayed: 0,
        last_config_version,
        skipped_snapshots,
        ignored_snapshot,
    };
    replay_tail(&mut rebuilt, log, from)?;
    Ok(rebuilt)
}

/// First bytes of a server snapshot: core's snapshot plus what only the
/// server keeps (dead-letter bodies; from envelope 2 on, the active
/// configuration's sources when `POST /v1/config` set it, and the history
/// of configuration versions). Core's own encoding starts with its
/// format number as a postcard varint, which is never 0xFF followed by
/// `V`, `S` for any format this build reads; so a payload without this
/// prefix is a core snapshot of an older server, whose dead letters then
/// have no bodies. An older server reading this prefix sees a format
/// number far beyond its own and refuses the snapshot.
const SNAPSHOT_ENVELOPE: [u8; 4] = [0xFF, b'V', b'S', 2];
/// The envelope of servers before configuration switches (still read).
const SNAPSHOT_ENVELOPE_1: [u8; 4] = [0xFF, b'V', b'S', 1];

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    core: &'a [u8],
    dead_letter_bodies: DeadLetterBodies,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope2<'a> {
    #[serde(borrow)]
    core: &'a [u8],
    dead_letter_bodies: DeadLetterBodies,
    config_sources: Option<Vec<(String, String)>>,
    config_history: Vec<ConfigVersion>,
}

/// A server snapshot in three pieces that make the payload end to end
/// (for `SnapshotStore::write_parts`), so core's snapshot — nearly all of
/// it — is never copied into an envelope buffer.
pub struct SnapshotParts {
    /// The envelope's magic and the length of core's snapshot.
    head: Vec<u8>,
    /// Core's snapshot, sharing the encoder's cached bytes.
    core: Pieces,
    /// The rest of the envelope: bodies, configuration sources, history.
    tail: Vec<u8>,
}

impl SnapshotParts {
    /// The parts in order: core's cached pieces as the shared bytes they
    /// are (the snapshot store remembers their checksums).
    pub fn parts(&self) -> Vec<Part<'_>> {
        let mut parts = vec![Part::Bytes(&self.head)];
        parts.extend(self.core.pieces().map(|piece| match piece {
            PieceRef::Fresh(bytes) => Part::Bytes(bytes),
            PieceRef::Cached(bytes) => Part::Shared(bytes),
        }));
        parts.push(Part::Bytes(&self.tail));
        parts
    }

    /// The payload joined.
    pub fn to_vec(&self) -> Vec<u8> {
        [self.head.as_slice(), &self.core.to_vec(), &self.tail].concat()
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.core.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encodes a snapshot of `core` (core's snapshot, the dead-letter bodies
/// and the configuration sources and history) in pieces. `encoder`
/// remembers what it encoded before (see [`Encoder`]); a fresh one gives
/// the same bytes. Postcard writes a struct as its fields end to end and a
/// byte slice as its length then its bytes, so the pieces joined are
/// exactly the serialized [`Envelope2`] (tested).
///
/// `step` runs between chunks (see `Encoder::encode_pieces_stepping`).
pub fn encode_snapshot_parts(
    core: &Core,
    encoder: &mut Encoder,
    step: &mut dyn FnMut(),
) -> SnapshotParts {
    let inner = encoder.encode_pieces_stepping(&core.ingest, &core.engine, step);
    // Invariant: lengths, byte vectors, strings and lists always encode
    // into a growable vector.
    let head = postcard::to_extend(&(inner.len() as u64), SNAPSHOT_ENVELOPE.to_vec())
        .expect("a length encodes");
    let tail = postcard::to_allocvec(&(
        &core.dead_letter_bodies,
        &core.config_sources,
        &core.config_history,
    ))
    .expect("snapshot encodes");
    SnapshotParts {
        head,
        core: inner,
        tail,
    }
}

/// The submitted bytes of each dead letter (see [`Core::dead_letter_bodies`]).
pub type DeadLetterBodies = CowVec<Option<Vec<u8>>>;

/// A decoded server snapshot.
pub struct DecodedSnapshot {
    pub ingest: Ingest,
    /// Its `plan` is the configuration in force at the snapshot's seq.
    pub engine: Engine,
    pub dead_letter_bodies: DeadLetterBodies,
    /// Sources of the configuration in force, when `POST /v1/config` set it.
    pub config_sources: Option<Vec<(String, String)>>,
    /// `None` for snapshots of older servers.
    pub config_history: Option<Vec<ConfigVersion>>,
}

/// Compiles a `ConfigSwitch` record's sources into a plan with
/// `puzzle_secret` (the secret never changes with the configuration).
pub fn plan_from_sources(
    sources: &[(String, String)],
    puzzle_secret: Arc<[u8]>,
) -> Result<Arc<Plan>, String> {
    let sources: Vec<veltrix_config::Source> = sources
        .iter()
        .map(|(name, text)| veltrix_config::Source::new(name.clone(), text.clone()))
        .collect();
    let config = veltrix_config::compile(&sources).map_err(|diagnostics| {
        let first = diagnostics
            .first()
            .map_or_else(String::new, |d| format!(": {}", d.message));
        format!(
            "the recorded configuration does not compile with this build ({} diagnostic(s){first})",
            diagnostics.len()
        )
    })?;
    Ok(Arc::new(Plan::with_secret(Arc::new(config), puzzle_secret)))
}

/// Decodes [`encode_snapshot_parts`]' output (either envelope), or a plain core
/// snapshot. `plan` is the start-up plan: used unless the snapshot holds
/// the sources of a configuration set by `POST /v1/config`, which are
/// compiled with `plan`'s puzzle secret.
pub fn decode_snapshot(plan: Arc<Plan>, bytes: &[u8]) -> Result<DecodedSnapshot, String> {
    let (core_bytes, bodies, config_sources, config_history) =
        if let Some(rest) = bytes.strip_prefix(&SNAPSHOT_ENVELOPE[..]) {
            let envelope: Envelope2<'_> =
                postcard::from_bytes(rest).map_err(|e| format!("snapshot is not readable: {e}"))?;
            (
                envelope.core,
                Some(envelope.dead_letter_bodies),
                envelope.config_sources,
                Some(envelope.config_history),
            )
        } else if let Some(rest) = bytes.strip_prefix(&SNAPSHOT_ENVELOPE_1[..]) {
            let envelope: Envelope<'_> =
                postcard::from_bytes(rest).map_err(|e| format!("snapshot is not readable: {e}"))?;
            (envelope.core, Some(envelope.dead_letter_bodies), None, None)
        } else {
            (bytes, None, None, None)
        };
    let plan = match &config_sources {
        Some(sources) => plan_from_sources(sources, plan.puzzle_secret.clone())?,
        None => plan,
    };
    let (ingest, engine) =
        veltrix_core::snapshot::decode(plan, core_bytes).map_err(|e| e.to_string())?;
    let bodies =
        bodies.unwrap_or_else(|| std::iter::repeat_n(None, ingest.rejected.len()).collect());
    if bodies.len() != ingest.rejected.len() {
        return Err(format!(
            "snapshot is not readable: {} dead letters but {} bodies",
            ingest.rejected.len(),
            bodies.len()
        ));
    }
    Ok(DecodedSnapshot {
        ingest,
        engine,
        dead_letter_bodies: bodies,
        config_sources,
        config_history,
    })
}

/// Largest record `veltrix replay` / `verify` read (a server with a 512 MiB
/// body limit writes records up to 1 GiB).
const READ_MAX_RECORD_BYTES: u32 = 1 << 30;

/// Opens a data directory for `veltrix replay` / `veltrix verify`: it must
/// exist, and no server may hold it. The log takes the directory's lock (it
/// has no lock-free reader: opening also cuts a torn tail, which must never
/// race a live writer), so a running server is reported as such.
pub fn open_data_dir(
    data_dir: &std::path::Path,
) -> Result<(Log, SnapshotStore, veltrix_log::Recovery), ServerError> {
    if !data_dir.join(veltrix_log::WAL_DIR).is_dir() {
        return Err(ServerError::NoLog(data_dir.display().to_string()));
    }
    // A server raises the record limit to fit its body limit; reading must
    // accept any record a server could have written (a lower limit is
    // refused at open, as a sign of a lowered limit).
    let options = veltrix_log::LogOptions {
        max_record_bytes: READ_MAX_RECORD_BYTES,
        queue_bytes: u64::from(READ_MAX_RECORD_BYTES),
        ..Default::default()
    };
    let (log, recovery) = Log::open(data_dir, options).map_err(|source| match source {
        veltrix_log::LogError::Locked { .. } => ServerError::InUse(data_dir.display().to_string()),
        source => ServerError::Log {
            dir: data_dir.display().to_string(),
            source,
        },
    })?;
    let store = SnapshotStore::open(data_dir, veltrix_log::SnapshotOptions::default())
        .map_err(ServerError::Snapshot)?;
    Ok((log, store, recovery))
}

/// Applies every durable record from `from` on.
fn replay_tail(rebuilt: &mut Rebuilt, log: &Log, from: u64) -> Result<(), ServerError> {
    let mut config = rebuilt.core.plan.config.clone();
    if from > log.durable_seq() {
        return Ok(());
    }
    let reader = log.read_from(from).map_err(|e| ServerError::Replay {
        seq: from,
        message: e.to_string(),
    })?;
    // Reading, checking and decoding records runs on a second thread ahead
    // of the one that applies them (records are independent of the
    // configuration until applied), so a restart uses both cores.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(DECODED_BATCHES_AHEAD);
        scope.spawn(move || decode_records(reader, from, tx));
        for batch in rx {
            for decoded in batch {
                let (seq, record) = decoded?;
                apply_record(rebuilt, &mut config, seq, record)?;
                rebuilt.core.ingest.next_seq = seq + 1;
                rebuilt.records_replayed += 1;
            }
        }
        Ok::<(), ServerError>(())
    })?;
    let core = &mut rebuilt.core;
    core.ingest.next_seq = core.ingest.next_seq.max(log.durable_seq() + 1);
    Ok(())
}

/// Batches of decoded records the decoding thread may run ahead by.
const DECODED_BATCHES_AHEAD: usize = 8;
const DECODED_BATCH: usize = 1024;

type Decoded = Result<(u64, LogRecord), ServerError>;

/// Reads and decodes records from `from` on, in batches; stops after the
/// first error (sent like a record) or when the receiver is gone.
fn decode_records(
    reader: veltrix_log::LogReader,
    from: u64,
    tx: std::sync::mpsc::SyncSender<Vec<Decoded>>,
) {
    let mut next = from;
    let mut batch = Vec::with_capacity(DECODED_BATCH);
    for entry in reader {
        let decoded = match entry {
            Ok((seq, payload)) => {
                next = seq + 1;
                record::decode(&payload)
                    .map(|record| (seq, record))
                    .map_err(|e| ServerError::Replay {
                        seq,
                        message: e.to_string(),
                    })
            }
            Err(e) => Err(ServerError::Replay {
                seq: next,
                message: e.to_string(),
            }),
        };
        let failed = decoded.is_err();
        batch.push(decoded);
        if (failed || batch.len() == DECODED_BATCH)
            && tx
                .send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(DECODED_BATCH),
                ))
                .is_err()
        {
            return;
        }
        if failed {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
}

/// Applies one log record to the state being rebuilt.
fn apply_record(
    rebuilt: &mut Rebuilt,
    config: &mut Arc<veltrix_config::Config>,
    seq: u64,
    record: LogRecord,
) -> Result<(), ServerError> {
    let core = &mut rebuilt.core;
    let bad = |message: String| ServerError::Replay { seq, message };
    match record {
        LogRecord::Event {
            id,
            player,
            event_type,
            ts,
            data,
        } => {
            let event = record::rebuild_event(config, &id, &player, &event_type, ts, &data)
                .map_err(|e| bad(e.to_string()))?;
            if core.ingest.is_known(&id) {
                return Err(bad(format!("event id {id:?} appears twice in the log")));
            }
            core.ingest.remember(&id, seq);
            core.engine.apply_event(seq, &event);
        }
        LogRecord::Spend {
            player,
            currency,
            amount,
            key,
        } => {
            let Some(c) = config.currency(&currency) else {
                return Err(bad(format!(
                    "spend of currency {currency:?}, which the configuration does not declare"
                )));
            };
            let outcome = core.engine.apply_spend(seq, &player, c, amount, &key);
            if !matches!(outcome, veltrix_core::partition::SpendOutcome::Applied(_)) {
                return Err(bad(format!(
                    "spend {key:?} of player {player:?} no longer applies ({outcome:?}); the configuration changed what players earned"
                )));
            }
        }
        LogRecord::Tally {
            duplicates,
            rejected,
        } => {
            add_dead_letters(
                core,
                duplicates,
                rejected.into_iter().map(|r| (r.into(), None)),
            );
        }
        LogRecord::Config { version } => {
            core.config_history.push(ConfigVersion {
                version: version.clone(),
                seq,
            });
            rebuilt.last_config_version = Some(version);
        }
        LogRecord::ConfigSwitch { version, sources } => {
            // The records before the switch must have been evaluated
            // with the configuration that was in force when it was made
            // (the last one the log recorded), or replaying the switch
            // would not reproduce the state it was applied to.
            if let Some(before) = &rebuilt.last_config_version
                && *before != core.plan.config.version
            {
                return Err(bad(format!(
                    "the log switches to configuration {version} here, from version {before}, but the records before it were replayed with version {}: start with the configuration that was in force before the switch (version {before}), or from a snapshot taken after it",
                    core.plan.config.version
                )));
            }
            let plan =
                plan_from_sources(&sources, core.plan.puzzle_secret.clone()).map_err(&bad)?;
            if plan.config.version != version {
                return Err(bad(format!(
                    "the recorded configuration compiles to version {} but was recorded as {version}",
                    plan.config.version
                )));
            }
            let report = veltrix_core::switch_config(&mut core.ingest, &mut core.engine, plan)
                .map_err(|e| bad(format!("the configuration switch no longer applies: {e}")))?;
            core.plan = report.plan;
            *config = core.plan.config.clone();
            core.config_sources = Some(sources);
            core.config_history.push(ConfigVersion {
                version: version.clone(),
                seq,
            });
            rebuilt.last_config_version = Some(version);
        }
        LogRecord::DeadLetters {
            duplicates,
            rejected,
        } => {
            let dead_letters = rejected.into_iter().map(|dead| {
                let rejection = veltrix_core::Rejection {
                    line: dead.line,
                    id: dead.id,
                    error: dead.error,
                };
                (rejection, Some(dead.body))
            });
            add_dead_letters(core, duplicates, dead_letters);
        }
        LogRecord::DeadLettersRemoved { positions } => {
            let len = core.ingest.rejected.len() as u64;
            let ascending = positions.windows(2).all(|w| w[0] < w[1]);
            if !ascending || positions.last().is_some_and(|&p| p >= len) {
                return Err(bad(format!(
                    "removes dead letters {positions:?} but the list holds {len}"
                )));
            }
            let positions: Vec<usize> = positions.iter().map(|&p| p as usize).collect();
            crate::engine::remove_dead_letters(core, &positions);
        }
    }
    Ok(())
}

/// Adds a tally record's counts and dead letters, keeping
/// `dead_letter_bodies` aligned with `ingest.rejected` (`None` where the
/// record kept no body).
fn add_dead_letters(
    core: &mut Core,
    duplicates: u64,
    dead_letters: impl Iterator<Item = (veltrix_core::Rejection, Option<Vec<u8>>)>,
) {
    core.ingest.counts.duplicates += duplicates;
    for (rejection, body) in dead_letters {
        core.ingest.counts.rejected += 1;
        core.ingest.rejected.push(rejection);
        core.dead_letter_bodies.push(body);
    }
    debug_assert_eq!(core.dead_letter_bodies.len(), core.ingest.rejected.len());
}

/// Everything `veltrix verify` compares: the state dump (SPEC §3), every
/// player's ledger (grants with provenance and spends), every analytics view
/// and the ingest position. Leaves nothing out that a snapshot stores and a
/// reader can observe.
pub fn comparable_state(core: &Core) -> Value {
    let source = DumpSource::from_engine(&core.ingest, &core.engine);
    // Invariant: the dump holds only strings, numbers, maps and lists.
    let dump = serde_json::to_value(dump(&source)).expect("state dump serializes");
    let mut ledgers = serde_json::Map::new();
    if let Some(players) = dump["players"].as_object() {
        for player in players.keys() {
            let entries = veltrix_core::views::ledger(&core.engine, player);
            ledgers.insert(player.clone(), json!(entries));
        }
    }
    let config = &core.plan.config;
    let views: serde_json::Map<String, Value> = config
        .views
        .iter()
        .zip(&core.engine.views.views)
        .map(|(view, state)| {
            let rows = query_view(view, state, &Default::default());
            (view.name.clone(), json!(rows))
        })
        .collect();
    // What `POST /v1/deadletters/replay` would submit: part of the state a
    // snapshot must keep.
    let bodies: Vec<Option<String>> = core
        .dead_letter_bodies
        .iter()
        .map(|b| {
            b.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect();
    json!({
        "next_seq": core.ingest.next_seq,
        "config_version": config.version,
        "dead_letter_bodies": bodies,
        "state": dump,
        "ledgers": ledgers,
        "views": views,
    })
}

/// One difference between two JSON values: where (a JSON Pointer) and both
/// sides (`null` for a missing key or element).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    pub path: String,
    pub left: Value,
    pub right: Value,
}

/// Every place where `left` and `right` differ, as JSON Pointers (RFC 6901).
pub fn differences(left: &Value, right: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_into(&mut String::new(), left, right, &mut out);
    out
}

fn diff_into(path: &mut String, left: &Value, right: &Value, out: &mut Vec<Difference>) {
    let len = path.len();
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                let null = Value::Null;
                diff_into(
                    path,
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    out,
                );
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                path.push('/');
                path.push_str(&i.to_string());
                let null = Value::Null;
                diff_into(
                    path,
                    a.get(i).unwrap_or(&null),
                    b.get(i).unwrap_or(&null),
                    out,
                );
                path.truncate(len);
            }
        }
        _ if left != right => out.push(Difference {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.clone()
            },
            left: left.clone(),
            right: right.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_pieces_joined_are_the_serialized_envelope() {
        let config = veltrix_config::compile(&[veltrix_config::Source::new(
            "t.toml",
            "[events.login]\n[rules.hello]\non = \"login\"\nreward = { points = 1 }\n",
        )])
        .unwrap();
        let plan = Arc::new(Plan::new(Arc::new(config)));
        let mut ingest = Ingest::new();
        let mut engine = Engine::new(plan.clone(), 1);
        for (line, text) in [
            br#"{"id":"a","player":"p","type":"login","ts":5}"#.as_slice(),
            br#"{"id":"b","player":"p","type":"logout","ts":6}"#.as_slice(),
        ]
        .into_iter()
        .enumerate()
        {
            if let veltrix_core::Submission::Accepted { seq, event } =
                ingest.submit(&plan, text, line as u64 + 1, 0)
            {
                engine.apply_event(seq, &event);
            }
        }
        let core = Core {
            plan: plan.clone(),
            ingest,
            engine,
            dead_letter_bodies: vec![Some(b"logout".to_vec())].into(),
            config_sources: Some(vec![("t.toml".into(), "x".into())]),
            config_history: vec![ConfigVersion {
                version: plan.config.version.clone(),
                seq: 0,
            }],
        };
        let pieces = encode_snapshot_parts(&core, &mut Encoder::default(), &mut || {});
        let joined = pieces.to_vec();
        let inner = veltrix_core::snapshot::encode(&core.ingest, &core.engine);
        let envelope = Envelope2 {
            core: &inner,
            dead_letter_bodies: core.dead_letter_bodies.clone(),
            config_sources: core.config_sources.clone(),
            config_history: core.config_history.clone(),
        };
        let serialized = postcard::to_extend(&envelope, SNAPSHOT_ENVELOPE.to_vec()).unwrap();
        assert_eq!(joined, serialized);
        assert_eq!(pieces.len(), joined.len());
    }

    #[test]
    fn differences_name_json_pointers() {
        let a = json!({"players": {"a/b": {"points": 1}}, "grants": [1, 2]});
        let b = json!({"players": {"a/b": {"points": 2}}, "grants": [1], "x": true});
        let d = differences(&a, &b);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["/grants/1", "/players/a~1b/points", "/x"]);
        assert!(differences(&a, &a).is_empty());
    }
}
