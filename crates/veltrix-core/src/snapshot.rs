//! Engine snapshots: the whole deterministic state (ingest dedup and counts,
//! partitions, global claims, leaderboards, views) as bytes, so a restart
//! loads the snapshot and replays only the log after it.
//!
//! The encoding is postcard (a documented, stable wire format) of
//! [`Snapshot`], preceded by nothing: framing, checksums and atomic writes are
//! the log crate's `SnapshotStore`. A snapshot is bound to the configuration
//! version and partition count it was taken with; caches and indexes
//! (player-name index, puzzle digests) are not stored but rebuilt.

use crate::analytics::Views;
use crate::boards::{BoardEntries, Boards};
use crate::engine::{Counts, Engine, FastSet, Ingest, Rejection, id_key};
use crate::partition::{CountingClaims, Partition, Resource};
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// Bumped whenever the encoding of any state type changes.
///
/// - 1: the state of one configuration.
/// - 2: adds the badge and currency names retained by configuration switches
///   (`Plan::retained_badges`, `Plan::retained_currencies`) after the format-1
///   fields, and the grant cause `Retired`. Format 1 still decodes (it has no
///   retained names and no retired causes).
/// - 3: the dedup set holds 128-bit keys of the accepted ids
///   (`engine::id_key`), 16 little-endian bytes each, instead of the ids.
///   Formats 1 and 2 still decode (their ids are keyed on loading).
pub const SNAPSHOT_FORMAT: u32 = 3;

/// Format 2 and later: the format-1 fields (postcard writes nested structs
/// without framing, so the bytes start exactly like format 1) and then the
/// names. `S` is the dedup set: ids up to format 2, [`SeenKeys`] from 3.
#[derive(Serialize, Deserialize)]
struct Snapshot<'a, S> {
    #[serde(borrow)]
    base: SnapshotV1<'a, S>,
    retained_badges: Vec<String>,
    retained_currencies: Vec<String>,
}

/// The dedup set of format 3: the keys' bytes end to end.
type SeenKeys = Vec<u8>;

#[derive(Serialize, Deserialize)]
struct SnapshotV1<'a, S> {
    format: u32,
    config_version: Cow<'a, str>,
    last_seq: u64,
    max_ts: Option<i64>,
    next_seq: u64,
    counts: Counts,
    rejected: Cow<'a, [Rejection]>,
    /// The accepted ids (formats 1-2) or their keys (3), in no particular
    /// order.
    seen: S,
    partitions: Cow<'a, [Partition]>,
    claims: Vec<(Resource, u32)>,
    boards: BoardEntries,
    board_names: Vec<Arc<str>>,
    views: Cow<'a, Views>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot is not readable: {0}")]
    Decode(String),
    #[error("snapshot format {found} is newer than this build understands ({SNAPSHOT_FORMAT})")]
    NewerFormat { found: u32 },
    #[error("snapshot was taken with configuration version {snapshot}, the active one is {active}")]
    ConfigMismatch { snapshot: String, active: String },
}

/// Encodes the state. Taking it costs a pass over the state; the server runs
/// it on a copy so ingest does not wait.
pub fn encode(ingest: &Ingest, engine: &Engine) -> Vec<u8> {
    let (boards, board_names) = engine.boards.export();
    let base = SnapshotV1 {
        format: SNAPSHOT_FORMAT,
        config_version: Cow::Borrowed(&engine.plan.config.version),
        last_seq: engine.last_seq,
        max_ts: engine.max_ts,
        next_seq: ingest.next_seq,
        counts: ingest.counts,
        rejected: Cow::Borrowed(&ingest.rejected),
        seen: ingest
            .seen
            .iter()
            .flat_map(|key| key.to_le_bytes())
            .collect::<SeenKeys>(),
        partitions: Cow::Borrowed(&engine.partitions),
        claims: engine.claims.counts(),
        boards,
        board_names,
        views: Cow::Borrowed(&engine.views),
    };
    let snapshot = Snapshot {
        base,
        retained_badges: engine.plan.retained_badges.clone(),
        retained_currencies: engine.plan.retained_currencies.clone(),
    };
    // Invariant: every state type serializes (no maps with non-string keys
    // reach a format that needs them).
    postcard::to_allocvec(&snapshot).expect("engine state encodes")
}

/// Restores the state taken by `encode` under the same configuration
/// version. When the snapshot holds names retained by a configuration switch,
/// the engine gets a copy of `plan` with those names (see
/// `Plan::with_retained`): use `engine.plan` from then on.
pub fn decode(plan: Arc<Plan>, bytes: &[u8]) -> Result<(Ingest, Engine), SnapshotError> {
    let format = peek_format(bytes)?;
    if format > SNAPSHOT_FORMAT {
        return Err(SnapshotError::NewerFormat { found: format });
    }
    let decode_error = |e: postcard::Error| SnapshotError::Decode(e.to_string());
    let (snapshot, seen, retained_badges, retained_currencies) = match format {
        1 => {
            let base: SnapshotV1<'_, Vec<Arc<str>>> =
                postcard::from_bytes(bytes).map_err(decode_error)?;
            let (base, seen) = base.keyed();
            (base, seen, Vec::new(), Vec::new())
        }
        2 => {
            let full: Snapshot<'_, Vec<Arc<str>>> =
                postcard::from_bytes(bytes).map_err(decode_error)?;
            let (base, seen) = full.base.keyed();
            (base, seen, full.retained_badges, full.retained_currencies)
        }
        _ => {
            let full: Snapshot<'_, SeenKeys> = postcard::from_bytes(bytes).map_err(decode_error)?;
            let mut base = full.base;
            let bytes = std::mem::take(&mut base.seen);
            if !bytes.len().is_multiple_of(16) {
                return Err(SnapshotError::Decode(format!(
                    "the dedup set holds {} bytes, not a whole number of 16-byte keys",
                    bytes.len()
                )));
            }
            let seen = bytes
                .chunks_exact(16)
                .map(|chunk| u128::from_le_bytes(chunk.try_into().expect("16 bytes")))
                .collect();
            (base, seen, full.retained_badges, full.retained_currencies)
        }
    };
    if snapshot.config_version != plan.config.version {
        return Err(SnapshotError::ConfigMismatch {
            snapshot: snapshot.config_version.into_owned(),
            active: plan.config.version.clone(),
        });
    }
    let plan = if retained_badges == plan.retained_badges
        && retained_currencies == plan.retained_currencies
    {
        plan
    } else {
        Arc::new(Plan::with_retained(
            &plan,
            &retained_badges,
            &retained_currencies,
        ))
    };
    let mut ingest = Ingest::new();
    ingest.seen = seen;
    ingest.counts = snapshot.counts;
    ingest.rejected = snapshot.rejected.into_owned();
    ingest.next_seq = snapshot.next_seq;
    let mut partitions = snapshot.partitions.into_owned();
    for partition in &mut partitions {
        partition.rebuild_index();
    }
    let mut engine = Engine::new(plan, partitions.len().max(1));
    engine.partitions = partitions;
    engine.claims = CountingClaims::from_counts(snapshot.claims);
    engine.boards = Boards::import(snapshot.boards, snapshot.board_names);
    engine.views = snapshot.views.into_owned();
    engine.max_ts = snapshot.max_ts;
    engine.last_seq = snapshot.last_seq;
    Ok((ingest, engine))
}

impl<'a> SnapshotV1<'a, Vec<Arc<str>>> {
    /// A format 1-2 base with its ids turned into keys.
    fn keyed(self) -> (SnapshotV1<'a, SeenKeys>, FastSet<u128>) {
        let seen = self.seen.iter().map(|id| id_key(id)).collect();
        let base = SnapshotV1 {
            format: self.format,
            config_version: self.config_version,
            last_seq: self.last_seq,
            max_ts: self.max_ts,
            next_seq: self.next_seq,
            counts: self.counts,
            rejected: self.rejected,
            seen: SeenKeys::new(),
            partitions: self.partitions,
            claims: self.claims,
            boards: self.boards,
            board_names: self.board_names,
            views: self.views,
        };
        (base, seen)
    }
}

/// The format number is the first field: a varint, readable before the rest.
fn peek_format(bytes: &[u8]) -> Result<u32, SnapshotError> {
    let (format, _) = postcard::take_from_bytes::<u32>(bytes)
        .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    Ok(format)
}
