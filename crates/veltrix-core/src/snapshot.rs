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
use crate::cow::CowVec;
use crate::engine::{Counts, Dedup, Engine, Ingest, Rejection, id_key};
use crate::grant::{Grant, Spend};
use crate::partition::{CountingClaims, Partition, Resource};
use crate::plan::Plan;
use crate::player::PlayerState;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use veltrix_rank::Board;

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
/// names. `S` is the dedup set: ids up to format 2, from format 3 the keys'
/// 16 little-endian bytes each, end to end, as one byte vector.
#[derive(Serialize, Deserialize)]
struct Snapshot<'a, S> {
    #[serde(borrow)]
    base: SnapshotV1<'a, S>,
    retained_badges: Vec<String>,
    retained_currencies: Vec<String>,
}

/// Format 1: the fields up to the dedup set, then the rest (postcard
/// writes nested structs without framing, so the split costs no bytes and
/// lets format 3 read the head alone first).
#[derive(Serialize, Deserialize)]
struct SnapshotV1<'a, S> {
    #[serde(borrow)]
    head: Head<'a, S>,
    #[serde(borrow)]
    tail: Tail<'a>,
}

/// The fields up to and including the dedup set.
#[derive(Serialize, Deserialize)]
struct Head<'a, S> {
    format: u32,
    #[serde(borrow)]
    config_version: Cow<'a, str>,
    last_seq: u64,
    max_ts: Option<i64>,
    next_seq: u64,
    counts: Counts,
    rejected: CowVec<Rejection>,
    /// The accepted ids (formats 1-2) or their keys (3), in no particular
    /// order.
    seen: S,
}

/// The fields after the dedup set.
#[derive(Serialize, Deserialize)]
struct Tail<'a> {
    partitions: Vec<Partition>,
    claims: Vec<(Resource, u32)>,
    boards: BoardEntries,
    board_names: Vec<Arc<str>>,
    #[serde(borrow)]
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

/// Encodes the state with a fresh [`Encoder`]. The server keeps one
/// encoder across snapshots instead, so unchanged parts cost nothing.
pub fn encode(ingest: &Ingest, engine: &Engine) -> Vec<u8> {
    Encoder::default().encode(ingest, engine)
}

/// Encodes snapshots, remembering the bytes of every chunk of players,
/// grants, spends, dead letters, dedup keys and board names and of every
/// leaderboard it encoded, keyed by the `Arc` that held them. A later
/// snapshot reuses the bytes of each part whose `Arc` is unchanged instead
/// of encoding it again: sound because the encoder holds a `Weak` to each,
/// and `Arc::make_mut` never writes into an allocation a `Weak` points to
/// (it moves or copies the value to a new one first), so an unchanged
/// pointer means unchanged contents. Between two snapshots only what the
/// records in between touched is encoded again; the output is byte for
/// byte what a fresh encoder gives (tested against the plain serde
/// encoding).
///
/// [`Encoder::encode_pieces`] hands out the reused bytes themselves
/// ([`Pieces`]), so writing a snapshot does not first copy the whole state
/// into one buffer: the snapshot thread's memory traffic evicts the engine
/// thread's working set from the shared cache, and a batch applied meanwhile
/// runs several times slower (`cargo run --release -p veltrix-core --example
/// cow_cost`).
///
/// Memory: about one snapshot's size of cached bytes.
#[derive(Clone, Default)]
pub struct Encoder {
    partitions: Vec<PartitionCache>,
    rejected: Vec<Cached<Rejection>>,
    keys: Vec<Cached<u128>>,
    board_names: Vec<Cached<Arc<str>>>,
    /// Per leaderboard, per bucket.
    boards: Vec<BTreeMap<i64, CachedBoard>>,
}

/// The encoding of one leaderboard bucket's entries.
type CachedBoard = (Weak<Board>, Arc<Vec<u8>>);

#[derive(Clone, Default)]
struct PartitionCache {
    players: Vec<CachedPlayers>,
    grants: Vec<Cached<Grant>>,
    spends: Vec<Cached<Spend>>,
}

/// The encoding of one chunk.
#[derive(Clone)]
struct Cached<T> {
    chunk: Weak<Vec<T>>,
    bytes: Arc<Vec<u8>>,
}

/// The encoding of one chunk of players, and where each player's bytes end
/// in it, so a chunk with a few changed players copies the others' bytes.
#[derive(Clone)]
struct CachedPlayers {
    chunk: Weak<Vec<Arc<PlayerState>>>,
    bytes: Arc<Vec<u8>>,
    players: Vec<(Weak<PlayerState>, usize)>,
}

/// A snapshot's bytes as pieces to write one after another: fresh bytes,
/// and the encoder's cached bytes of unchanged parts, shared rather than
/// copied. Joined, they are exactly [`encode`]'s output.
#[derive(Default)]
pub struct Pieces {
    pieces: Vec<Piece>,
    len: usize,
}

enum Piece {
    Fresh(Vec<u8>),
    Cached(Arc<Vec<u8>>),
}

/// One of [`Pieces::pieces`].
pub enum PieceRef<'a> {
    Fresh(&'a [u8]),
    Cached(&'a Arc<Vec<u8>>),
}

impl Pieces {
    /// The buffer for the next fresh bytes.
    fn fresh(&mut self) -> &mut Vec<u8> {
        if !matches!(self.pieces.last(), Some(Piece::Fresh(_))) {
            self.pieces.push(Piece::Fresh(Vec::new()));
        }
        match self.pieces.last_mut() {
            Some(Piece::Fresh(bytes)) => bytes,
            _ => unreachable!("a fresh piece was just pushed"),
        }
    }

    fn cached(&mut self, bytes: &Arc<Vec<u8>>) {
        if !bytes.is_empty() {
            self.pieces.push(Piece::Cached(bytes.clone()));
        }
    }

    /// The pieces in order, each either fresh bytes or the encoder's
    /// cached bytes (the same `Arc` in every snapshot while the part is
    /// unchanged).
    pub fn pieces(&self) -> impl Iterator<Item = PieceRef<'_>> {
        self.pieces.iter().map(|piece| match piece {
            Piece::Fresh(bytes) => PieceRef::Fresh(bytes),
            Piece::Cached(bytes) => PieceRef::Cached(bytes),
        })
    }

    /// The pieces in order.
    pub fn slices(&self) -> Vec<&[u8]> {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Fresh(bytes) => bytes.as_slice(),
                Piece::Cached(bytes) => bytes.as_slice(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces joined.
    pub fn to_vec(&self) -> Vec<u8> {
        self.slices().concat()
    }

    fn finish(mut self) -> Pieces {
        self.len = self.slices().iter().map(|slice| slice.len()).sum();
        self
    }
}

impl Encoder {
    pub fn encode(&mut self, ingest: &Ingest, engine: &Engine) -> Vec<u8> {
        self.encode_pieces(ingest, engine).to_vec()
    }

    /// The encoding as [`Pieces`], sharing the cached bytes of unchanged
    /// parts.
    pub fn encode_pieces(&mut self, ingest: &Ingest, engine: &Engine) -> Pieces {
        self.encode_pieces_stepping(ingest, engine, &mut || {})
    }

    /// [`Encoder::encode_pieces`], calling `step` between chunks (and every
    /// [`PLAYERS_PER_STEP`] players of a chunk encoded again), so the caller
    /// can let other threads run: an encoder on a busy machine is
    /// background work. `step` sees nothing of the state; the bytes do not
    /// depend on it.
    pub fn encode_pieces_stepping(
        &mut self,
        ingest: &Ingest,
        engine: &Engine,
        step: &mut dyn FnMut(),
    ) -> Pieces {
        let mut out = Pieces::default();
        put(out.fresh(), &SNAPSHOT_FORMAT);
        put(out.fresh(), &*engine.plan.config.version);
        put(out.fresh(), &engine.last_seq);
        put(out.fresh(), &engine.max_ts);
        put(out.fresh(), &ingest.next_seq);
        put(out.fresh(), &ingest.counts);
        put_len(out.fresh(), ingest.rejected.len());
        encode_chunks(
            ingest.rejected.chunks(),
            &mut self.rejected,
            &mut out,
            put,
            step,
        );
        // `SeenKeys`: a byte vector, the keys end to end.
        let keys = ingest.seen.keys();
        put_len(out.fresh(), keys.len() * 16);
        encode_chunks(
            keys.chunks(),
            &mut self.keys,
            &mut out,
            |bytes, key| bytes.extend_from_slice(&key.to_le_bytes()),
            step,
        );
        put_len(out.fresh(), engine.partitions.len());
        self.partitions
            .resize_with(engine.partitions.len(), PartitionCache::default);
        for (partition, cache) in engine.partitions.iter().zip(&mut self.partitions) {
            put_len(out.fresh(), partition.players.len());
            encode_players(
                partition.players.chunks(),
                &mut cache.players,
                &mut out,
                step,
            );
            put_len(out.fresh(), partition.grants.len());
            encode_chunks(
                partition.grants.chunks(),
                &mut cache.grants,
                &mut out,
                put,
                step,
            );
            put_len(out.fresh(), partition.spends.len());
            encode_chunks(
                partition.spends.chunks(),
                &mut cache.spends,
                &mut out,
                put,
                step,
            );
        }
        put(out.fresh(), &engine.claims.counts());
        self.encode_boards(&engine.boards, &mut out, step);
        put_len(out.fresh(), engine.boards.names().len());
        encode_chunks(
            engine.boards.names().chunks(),
            &mut self.board_names,
            &mut out,
            put,
            step,
        );
        put(out.fresh(), &engine.views);
        put(out.fresh(), &engine.plan.retained_badges);
        put(out.fresh(), &engine.plan.retained_currencies);
        out.finish()
    }

    /// `BoardEntries`: per leaderboard, per bucket, the bucket and the
    /// board's entries in rank order.
    fn encode_boards(&mut self, boards: &Boards, out: &mut Pieces, step: &mut dyn FnMut()) {
        self.boards.resize_with(boards.boards.len(), BTreeMap::new);
        put_len(out.fresh(), boards.boards.len());
        for (buckets, cache) in boards.boards.iter().zip(&mut self.boards) {
            cache.retain(|bucket, _| buckets.contains_key(bucket));
            put_len(out.fresh(), buckets.len());
            for (bucket, board) in buckets {
                step();
                put(out.fresh(), bucket);
                let cached = cache
                    .entry(*bucket)
                    .or_insert_with(|| (Weak::new(), Arc::default()));
                if !std::ptr::eq(cached.0.as_ptr(), Arc::as_ptr(board)) {
                    let entries: Vec<(u32, i64, u64)> = board.entries().collect();
                    *cached = (Arc::downgrade(board), Arc::new(to_bytes(&entries)));
                }
                out.cached(&cached.1);
            }
        }
    }
}

/// Players encoded between two calls of the `step` of
/// [`Encoder::encode_pieces_stepping`]: the busiest players take tens of
/// microseconds each.
pub const PLAYERS_PER_STEP: usize = 64;

/// Appends the postcard encoding of `value`.
fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Invariant: every state type serializes (no maps with non-string keys
    // reach a format that needs them), and a Vec always grows.
    let bytes = postcard::to_extend(value, std::mem::take(out)).expect("engine state encodes");
    *out = bytes;
}

/// Appends a sequence length as postcard writes it (a varint, like a u64).
fn put_len(out: &mut Vec<u8>, len: usize) {
    put(out, &(len as u64));
}

fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, value);
    out
}

/// Appends every element of `chunks` (each encoded by `encode`), reusing
/// the cached bytes of each chunk whose `Arc` the cache saw last time.
fn encode_chunks<T>(
    chunks: &[Arc<Vec<T>>],
    cache: &mut Vec<Cached<T>>,
    out: &mut Pieces,
    encode: impl Fn(&mut Vec<u8>, &T),
    step: &mut dyn FnMut(),
) {
    cache.truncate(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        step();
        let hit = cache
            .get(i)
            .is_some_and(|cached| std::ptr::eq(cached.chunk.as_ptr(), Arc::as_ptr(chunk)));
        if !hit {
            let mut bytes = Vec::new();
            for value in chunk.iter() {
                encode(&mut bytes, value);
            }
            let fresh = Cached {
                chunk: Arc::downgrade(chunk),
                bytes: Arc::new(bytes),
            };
            match cache.get_mut(i) {
                Some(slot) => *slot = fresh,
                None => cache.push(fresh),
            }
        }
        out.cached(&cache[i].bytes);
    }
}

/// Like [`encode_chunks`], and within a changed chunk reuses the bytes of
/// each unchanged player.
fn encode_players(
    chunks: &[Arc<Vec<Arc<PlayerState>>>],
    cache: &mut Vec<CachedPlayers>,
    out: &mut Pieces,
    step: &mut dyn FnMut(),
) {
    cache.truncate(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        step();
        let old = cache.get(i);
        if !old.is_some_and(|cached| std::ptr::eq(cached.chunk.as_ptr(), Arc::as_ptr(chunk))) {
            let mut bytes = Vec::new();
            let mut players = Vec::with_capacity(chunk.len());
            for (j, player) in chunk.iter().enumerate() {
                if j % PLAYERS_PER_STEP == PLAYERS_PER_STEP - 1 {
                    step();
                }
                let reused = old.and_then(|old| {
                    let (weak, end) = old.players.get(j)?;
                    let start = if j == 0 { 0 } else { old.players[j - 1].1 };
                    std::ptr::eq(weak.as_ptr(), Arc::as_ptr(player))
                        .then(|| &old.bytes[start..*end])
                });
                match reused {
                    Some(player_bytes) => bytes.extend_from_slice(player_bytes),
                    None => put(&mut bytes, &**player),
                }
                players.push((Arc::downgrade(player), bytes.len()));
            }
            let fresh = CachedPlayers {
                chunk: Arc::downgrade(chunk),
                bytes: Arc::new(bytes),
                players,
            };
            match cache.get_mut(i) {
                Some(slot) => *slot = fresh,
                None => cache.push(fresh),
            }
        }
        out.cached(&cache[i].bytes);
    }
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
    let (head, tail, seen, retained_badges, retained_currencies) = match format {
        1 => {
            let base: SnapshotV1<'_, Vec<Arc<str>>> =
                postcard::from_bytes(bytes).map_err(decode_error)?;
            let (head, seen) = base.head.keyed();
            (head, base.tail, seen, Vec::new(), Vec::new())
        }
        2 => {
            let full: Snapshot<'_, Vec<Arc<str>>> =
                postcard::from_bytes(bytes).map_err(decode_error)?;
            let (head, seen) = full.base.head.keyed();
            let tail = full.base.tail;
            (
                head,
                tail,
                seen,
                full.retained_badges,
                full.retained_currencies,
            )
        }
        _ => decode_format_3(bytes)?,
    };
    if head.config_version != plan.config.version {
        return Err(SnapshotError::ConfigMismatch {
            snapshot: head.config_version.into_owned(),
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
    ingest.counts = head.counts;
    ingest.rejected = head.rejected;
    ingest.next_seq = head.next_seq;
    let mut partitions = tail.partitions;
    for partition in &mut partitions {
        partition.rebuild_index();
    }
    let mut engine = Engine::new(plan, partitions.len().max(1));
    engine.partitions = partitions;
    engine.claims = CountingClaims::from_counts(tail.claims);
    engine.boards = Boards::import(tail.boards, tail.board_names);
    engine.views = tail.views.into_owned();
    engine.max_ts = head.max_ts;
    engine.last_seq = head.last_seq;
    Ok((ingest, engine))
}

type Decoded<'a> = (Head<'a, ()>, Tail<'a>, Dedup, Vec<String>, Vec<String>);

/// Decodes format 3: the head first, with the dedup keys borrowed (postcard
/// writes a byte vector exactly like a byte slice), then the tail and the
/// retained names while a second thread builds the dedup set from the keys.
/// Building the set takes about as long as decoding everything else, and
/// restart time is what snapshots are for. The
/// result does not depend on the threads.
fn decode_format_3(bytes: &[u8]) -> Result<Decoded<'_>, SnapshotError> {
    let decode_error = |e: postcard::Error| SnapshotError::Decode(e.to_string());
    let (head, rest): (Head<'_, &[u8]>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(decode_error)?;
    if !head.seen.len().is_multiple_of(16) {
        return Err(SnapshotError::Decode(format!(
            "the dedup set holds {} bytes, not a whole number of 16-byte keys",
            head.seen.len()
        )));
    }
    let keys = head.seen;
    let (seen, rest) = std::thread::scope(|scope| {
        let builder = scope.spawn(move || {
            let mut seen = Dedup::with_capacity(keys.len() / 16);
            for chunk in keys.chunks_exact(16) {
                seen.insert(u128::from_le_bytes(chunk.try_into().expect("16 bytes")));
            }
            seen
        });
        let rest = postcard::from_bytes::<(Tail<'_>, Vec<String>, Vec<String>)>(rest);
        // Invariant: inserting keys cannot panic short of running out of
        // memory, which aborts anyway.
        (
            builder.join().expect("building the dedup set panicked"),
            rest,
        )
    });
    let (tail, retained_badges, retained_currencies) = rest.map_err(decode_error)?;
    Ok((
        head.map_seen(|_| ()),
        tail,
        seen,
        retained_badges,
        retained_currencies,
    ))
}

impl<'a, S> Head<'a, S> {
    fn map_seen<T>(self, f: impl FnOnce(S) -> T) -> Head<'a, T> {
        Head {
            format: self.format,
            config_version: self.config_version,
            last_seq: self.last_seq,
            max_ts: self.max_ts,
            next_seq: self.next_seq,
            counts: self.counts,
            rejected: self.rejected,
            seen: f(self.seen),
        }
    }
}

impl<'a> Head<'a, Vec<Arc<str>>> {
    /// A format 1-2 head with its ids turned into keys.
    fn keyed(self) -> (Head<'a, ()>, Dedup) {
        let seen = self.seen.iter().map(|id| id_key(id)).collect();
        (self.map_seen(|_| ()), seen)
    }
}

/// The format number is the first field: a varint, readable before the rest.
fn peek_format(bytes: &[u8]) -> Result<u32, SnapshotError> {
    let (format, _) = postcard::take_from_bytes::<u32>(bytes)
        .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Submission, ndjson_lines};

    /// The dedup set of format 3: the keys' bytes end to end.
    type SeenKeys = Vec<u8>;

    const CONFIG: &str = r#"
[currencies.coins]
[events.login]
[events.buy.fields]
amount = { type = "integer", min = 0 }
[rules.first]
on = "login"
once = true
reward = { points = 10, coins = 2, badge = "hello" }
[rules.big]
on = "buy"
when = "event.amount >= 50"
reward = { points = 5 }
[leaderboards.global]
[leaderboards.daily]
period = "day"
"#;

    /// The encoding as a plain serde serialization of [`Snapshot`]: what
    /// `decode` reads. The encoder must give these very bytes.
    fn encode_with_serde(ingest: &Ingest, engine: &Engine) -> Vec<u8> {
        let (boards, board_names) = engine.boards.export();
        let base = SnapshotV1 {
            head: Head {
                format: SNAPSHOT_FORMAT,
                config_version: Cow::Borrowed(&engine.plan.config.version),
                last_seq: engine.last_seq,
                max_ts: engine.max_ts,
                next_seq: ingest.next_seq,
                counts: ingest.counts,
                rejected: ingest.rejected.clone(),
                seen: ingest
                    .seen
                    .keys()
                    .iter()
                    .flat_map(|key| key.to_le_bytes())
                    .collect::<SeenKeys>(),
            },
            tail: Tail {
                partitions: engine.partitions.clone(),
                claims: engine.claims.counts(),
                boards,
                board_names,
                views: Cow::Borrowed(&engine.views),
            },
        };
        postcard::to_allocvec(&Snapshot {
            base,
            retained_badges: engine.plan.retained_badges.clone(),
            retained_currencies: engine.plan.retained_currencies.clone(),
        })
        .unwrap()
    }

    /// Events for 2,500 players over three days, with some invalid ones:
    /// several chunks of players, grants and dead letters.
    fn events(from: usize, to: usize) -> Vec<u8> {
        let mut out = String::new();
        for i in from..to {
            let player = format!("p{}", (i * 7919) % 2500);
            let ts = 1_800_000_000_000i64 + i as i64 * 40_000;
            let line = match i % 4 {
                0 => format!(r#"{{"id":"e{i}","player":"{player}","type":"login","ts":{ts}}}"#),
                1 | 2 => format!(
                    r#"{{"id":"e{i}","player":"{player}","type":"buy","ts":{ts},"data":{{"amount":{}}}}}"#,
                    i % 90
                ),
                _ => format!(
                    r#"{{"id":"e{i}","player":"{player}","type":"buy","ts":{ts},"data":{{"amount":"x"}}}}"#
                ),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out.into_bytes()
    }

    fn feed(plan: &Plan, ingest: &mut Ingest, engine: &mut Engine, bytes: &[u8]) {
        for (line, text) in ndjson_lines(bytes) {
            if let Submission::Accepted { seq, event } = ingest.submit(plan, text, line, 0) {
                engine.apply_event(seq, &event);
            }
        }
    }

    #[test]
    fn a_warm_encoder_writes_exactly_what_serde_writes() {
        let config = veltrix_config::compile(&[veltrix_config::Source::new("t.toml", CONFIG)])
            .expect("the test configuration compiles");
        let plan = Arc::new(Plan::new(Arc::new(config)));
        for partitions in [1, 3] {
            let mut ingest = Ingest::new();
            let mut engine = Engine::new(plan.clone(), partitions);
            let mut encoder = Encoder::default();
            let mut copies = Vec::new();
            for (from, to) in [
                (0, 3000),
                (3000, 3001),
                (3001, 9000),
                (9000, 9000),
                (9000, 20000),
            ] {
                feed(&plan, &mut ingest, &mut engine, &events(from, to));
                let warm = encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy());
                let expected = encode_with_serde(&ingest, &engine);
                assert_eq!(
                    warm.len(),
                    expected.len(),
                    "{partitions} partitions, after event {to}"
                );
                assert!(
                    warm == expected,
                    "{partitions} partitions, after event {to}: bytes differ"
                );
                // Copies taken earlier keep encoding their own moment.
                copies.push((ingest.snapshot_copy(), engine.snapshot_copy(), expected));
                let (ingest2, engine2) = decode(plan.clone(), &warm).unwrap();
                assert_eq!(encode(&ingest2, &engine2), warm);
            }
            assert!(engine.partitions[0].grants.chunks().len() > 1);
            for (ingest, engine, expected) in copies {
                assert!(encode(&ingest, &engine) == expected);
            }
        }
    }

    /// Unchanged parts go out as the encoder's cached bytes themselves, not
    /// copies: a second encoding of an unchanged state is (almost) all
    /// shared pieces, and one more event re-encodes only what it touched.
    #[test]
    fn unchanged_parts_are_shared_not_copied() {
        let config = veltrix_config::compile(&[veltrix_config::Source::new("t.toml", CONFIG)])
            .expect("the test configuration compiles");
        let plan = Arc::new(Plan::new(Arc::new(config)));
        let mut ingest = Ingest::new();
        let mut engine = Engine::new(plan.clone(), 1);
        feed(&plan, &mut ingest, &mut engine, &events(0, 12_000));
        let mut encoder = Encoder::default();
        let cached_bytes = |pieces: &Pieces| -> Vec<*const Vec<u8>> {
            pieces
                .pieces
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Cached(bytes) => Some(Arc::as_ptr(bytes)),
                    Piece::Fresh(_) => None,
                })
                .collect()
        };
        let fresh_len = |pieces: &Pieces| -> usize {
            pieces
                .pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Fresh(bytes) => bytes.len(),
                    Piece::Cached(_) => 0,
                })
                .sum()
        };
        let mut steps = 0;
        let first = encoder.encode_pieces_stepping(
            &ingest.snapshot_copy(),
            &engine.snapshot_copy(),
            &mut || steps += 1,
        );
        // A step between any two chunks, and within player chunks.
        let chunks = ingest.seen.keys().chunks().len()
            + engine.partitions[0].grants.chunks().len()
            + engine.partitions[0].players.chunks().len();
        let players = engine.partitions[0].players.len();
        assert!(
            steps >= chunks + players / PLAYERS_PER_STEP - 1,
            "{steps} steps for {chunks} chunks"
        );
        assert!(first.to_vec() == encode_with_serde(&ingest, &engine));
        let second = encoder.encode_pieces(&ingest.snapshot_copy(), &engine.snapshot_copy());
        assert!(second.to_vec() == first.to_vec());
        assert_eq!(cached_bytes(&first), cached_bytes(&second));
        // The fresh bytes are lengths, counts, claims and the views only.
        assert!(
            fresh_len(&second) * 20 < second.len(),
            "{} of {}",
            fresh_len(&second),
            second.len()
        );
        feed(&plan, &mut ingest, &mut engine, &events(12_000, 12_001));
        let third = encoder.encode_pieces(&ingest.snapshot_copy(), &engine.snapshot_copy());
        assert!(third.to_vec() == encode_with_serde(&ingest, &engine));
        let before = cached_bytes(&second);
        let still_shared = cached_bytes(&third)
            .iter()
            .filter(|bytes| before.contains(bytes))
            .count();
        // One event touches one player chunk, the last chunks of the keys
        // and grants, and the boards it scores on.
        assert!(
            still_shared + 8 >= before.len(),
            "{still_shared} of {}",
            before.len()
        );
    }
}
