//! The single-threaded engine: partitions, global claims and leaderboards,
//! applying records in log order. The server and `veltrix run` both use it;
//! `parallel` drives the same partitions from several threads.

use crate::boards::Boards;
use crate::cow::CowVec;
use crate::event::{Event, EventError, parse_event};
use crate::partition::{Claims, CountingClaims, Effect, Partition, SpendOutcome};
use crate::plan::Plan;
use std::collections::HashSet;

/// Hash maps keyed by player names and event ids: foldhash is several times
/// faster than SipHash on short strings and still seeded per process. No
/// output ever iterates these maps, so the seed cannot affect results.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;
use crate::player::PlayerState;
use std::sync::{Arc, Weak};
use xxhash_rust::xxh3::xxh3_64;

/// The stable partition of a player: xxh3 of the name, never std's hasher,
/// so the mapping is the same on every machine and version.
pub fn partition_of(player: &str, partitions: usize) -> usize {
    partition_of_spread(xxh3_64(player.as_bytes()), partitions)
}

/// The partition of a name's xxh3 hash: the one formula behind
/// [`partition_of`] and [`PlayerHashes::partition`].
fn partition_of_spread(spread: u64, partitions: usize) -> usize {
    debug_assert!(partitions > 0);
    (spread % partitions as u64) as usize
}

/// The two hashes of a player's name the engine finds the player by: the
/// one that picks the partition ([`partition_of`]) and the [`id_key`] the
/// partition and the leaderboards index players by. The server computes
/// them on its request threads, with the rest of parsing, so that the one
/// thread that applies does not hash (or even read) the name of a player
/// it already knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerHashes {
    spread: u64,
    key: u128,
}

impl PlayerHashes {
    pub fn of(player: &str) -> PlayerHashes {
        PlayerHashes {
            spread: xxh3_64(player.as_bytes()),
            key: id_key(player),
        }
    }

    /// The player's partition among `partitions` ([`partition_of`]).
    pub fn partition(self, partitions: usize) -> usize {
        partition_of_spread(self.spread, partitions)
    }

    /// The player's [`id_key`].
    pub fn key(self) -> u128 {
        self.key
    }
}

/// A record of the log, as the engine applies it.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Event(Event),
    Spend {
        player: Box<str>,
        currency: u16,
        amount: i64,
        key: Box<str>,
    },
}

#[derive(Clone)]
pub struct Engine {
    pub plan: Arc<Plan>,
    pub partitions: Vec<Partition>,
    pub claims: CountingClaims,
    pub boards: Boards,
    pub views: crate::analytics::Views,
    /// Greatest event time of any applied event (for period leaderboards).
    pub max_ts: Option<i64>,
    pub last_seq: u64,
    effects: Vec<Effect>,
}

impl Engine {
    pub fn new(plan: Arc<Plan>, partitions: usize) -> Engine {
        assert!(partitions > 0, "at least one partition");
        Engine {
            boards: Boards::new(&plan.config),
            views: crate::analytics::Views::new(&plan.config),
            plan,
            partitions: vec![Partition::default(); partitions],
            claims: CountingClaims::default(),
            max_ts: None,
            last_seq: 0,
            effects: Vec::new(),
        }
    }

    pub fn partition_of(&self, player: &str) -> usize {
        match self.partitions.len() {
            1 => 0,
            n => partition_of(player, n),
        }
    }

    /// Applies one accepted event at log position `seq`.
    pub fn apply_event(&mut self, seq: u64, event: &Event) -> &[Effect] {
        self.apply_event_located(seq, event);
        &self.effects
    }

    /// As [`Engine::apply_event`], returning where the event's player is
    /// kept; its effects are then [`Engine::last_effects`]. The server
    /// remembers recent players by slot, which costs no lookup by name.
    pub fn apply_event_located(&mut self, seq: u64, event: &Event) -> PlayerSlot {
        self.apply_event_hashed(seq, event, PlayerHashes::of(&event.player))
    }

    /// As [`Engine::apply_event_located`], with the player's name hashed
    /// by the caller (`player` must be `PlayerHashes::of(&event.player)`).
    pub fn apply_event_hashed(
        &mut self,
        seq: u64,
        event: &Event,
        player: PlayerHashes,
    ) -> PlayerSlot {
        assert!(seq > self.last_seq, "records must be applied in log order");
        debug_assert_eq!(
            player,
            PlayerHashes::of(&event.player),
            "the event's player's hashes"
        );
        self.last_seq = seq;
        self.max_ts = Some(self.max_ts.map_or(event.ts, |m| m.max(event.ts)));
        self.views.record(&self.plan.config, event);
        let p = player.partition(self.partitions.len());
        self.effects.clear();
        let pid = self.partitions[p].apply_event_keyed(
            &self.plan,
            event,
            player.key(),
            seq,
            &mut self.claims as &mut dyn Claims,
            &mut self.effects,
        );
        for effect in &self.effects {
            if let Effect::Granted(index) = effect {
                let grant = &self.partitions[p].grants[*index];
                debug_assert_eq!(grant.player, event.player, "an event grants to its player");
                self.boards
                    .record_keyed(&self.plan.config, grant, player.key());
            }
        }
        PlayerSlot { partition: p, pid }
    }

    /// The effects of the last event applied.
    pub fn last_effects(&self) -> &[Effect] {
        &self.effects
    }

    pub fn apply_spend(
        &mut self,
        seq: u64,
        player: &str,
        currency: u16,
        amount: i64,
        key: &str,
    ) -> SpendOutcome {
        assert!(seq > self.last_seq, "records must be applied in log order");
        let p = self.partition_of(player);
        let outcome = self.partitions[p].apply_spend(player, currency, amount, key, seq);
        // Only an applied spend is a record of the log; a refused one leaves
        // the log position where it was.
        if matches!(outcome, SpendOutcome::Applied(_)) {
            self.last_seq = seq;
        }
        outcome
    }

    pub fn apply(&mut self, seq: u64, record: &Record) {
        match record {
            Record::Event(event) => {
                self.apply_event(seq, event);
            }
            Record::Spend {
                player,
                currency,
                amount,
                key,
            } => {
                self.apply_spend(seq, player, *currency, *amount, key);
            }
        }
    }

    pub fn player(&self, name: &str) -> Option<&crate::player::PlayerState> {
        self.partitions[self.partition_of(name)].player(name)
    }

    /// Copies `player`'s state when a snapshot copy shares it (its next
    /// write would copy it; see [`CowVec`]), under a shared borrow: the
    /// server makes copies while reads go on, then installs them with
    /// [`Engine::install_player`], so the next request does not pay for
    /// them. `None` for a slot past the end of its player list or a
    /// player nothing shares. Any slot is safe: the copy equals what it
    /// replaces, so a slot remembered from before a change of players only
    /// copies some other player.
    pub fn copy_of_shared_player(&self, slot: PlayerSlot) -> Option<PlayerCopy> {
        let PlayerSlot { partition, pid } = slot;
        let players = &self.partitions.get(partition)?.players;
        let state = players.get(pid as usize)?;
        // Shared directly, or through its chunk of the player list (a write
        // copies the chunk, and then the player held twice).
        let shared = Arc::strong_count(state) > 1 || players.is_shared_at(pid as usize);
        shared.then(|| PlayerCopy {
            partition,
            pid,
            from: Arc::downgrade(state),
            state: Arc::new((**state).clone()),
        })
    }

    /// Puts a copy from [`Engine::copy_of_shared_player`] in place of the
    /// shared state, unless the player was written since (then the copy is
    /// stale and dropped). The state's contents do not change.
    pub fn install_player(&mut self, copy: PlayerCopy) {
        let players = &mut self.partitions[copy.partition].players;
        if players
            .get(copy.pid as usize)
            .is_some_and(|state| std::ptr::eq(Arc::as_ptr(state), copy.from.as_ptr()))
        {
            players[copy.pid as usize] = copy.state;
        }
    }

    /// As [`Engine::copy_of_shared_player`], for the newest bucket of
    /// leaderboard `index` (the one grants go to).
    pub fn copy_of_shared_board(&self, index: usize) -> Option<BoardCopy> {
        let (&bucket, board) = self.boards.boards.get(index)?.iter().next_back()?;
        (Arc::strong_count(board) > 1).then(|| BoardCopy {
            index,
            bucket,
            from: Arc::downgrade(board),
            board: Arc::new((**board).clone()),
        })
    }

    /// As [`Engine::install_player`], for a [`BoardCopy`].
    pub fn install_board(&mut self, copy: BoardCopy) {
        if let Some(board) = self
            .boards
            .boards
            .get_mut(copy.index)
            .and_then(|buckets| buckets.get_mut(&copy.bucket))
            && std::ptr::eq(Arc::as_ptr(board), copy.from.as_ptr())
        {
            *board = copy.board;
        }
    }

    /// Where `player`'s state is kept, for [`Engine::let_go`] on a snapshot
    /// copy (which has no name index). `None` for an unknown player.
    pub fn locate_player(&self, player: &str) -> Option<PlayerSlot> {
        let partition = self.partition_of(player);
        let pid = self.partitions[partition].player_id(player)?;
        Some(PlayerSlot { partition, pid })
    }

    /// For the owner of a snapshot copy: stops sharing with the live state
    /// the newest bucket of every leaderboard, the players at `players`
    /// (most urgent first) with their chunks of the player list, and the
    /// last chunk of every grant and spend list, by giving this copy its
    /// own copies of them. The live engine's next writes to those then find
    /// them unshared and copy nothing: the copying happens here, on the
    /// snapshot's thread, instead of in the live engine's next request.
    /// Slots past the end of a player list are skipped (the live engine may
    /// have added players since the slots were taken); the copy's contents
    /// do not change.
    pub fn let_go(&mut self, players: &[PlayerSlot]) {
        for buckets in &mut self.boards.boards {
            if let Some(board) = buckets.values_mut().next_back()
                && Arc::strong_count(board) > 1
            {
                *board = Arc::new((**board).clone());
            }
        }
        for slot in players {
            let Some(partition) = self.partitions.get_mut(slot.partition) else {
                continue;
            };
            if let Some(state) = partition.players.get_mut(slot.pid as usize)
                && Arc::strong_count(state) > 1
            {
                *state = Arc::new((**state).clone());
            }
        }
        for partition in &mut self.partitions {
            partition.grants.unshare_last_chunk();
            partition.spends.unshare_last_chunk();
        }
    }

    /// A copy of the state for a snapshot to encode, made in time
    /// independent of the number of players and grants: it shares their
    /// storage (see [`CowVec`]) and leaves out the indexes and caches a
    /// snapshot does not hold. The copy cannot apply records; decoding its
    /// snapshot rebuilds a full engine.
    pub fn snapshot_copy(&self) -> Engine {
        Engine {
            plan: self.plan.clone(),
            partitions: self
                .partitions
                .iter()
                .map(Partition::snapshot_copy)
                .collect(),
            claims: self.claims.clone(),
            boards: self.boards.snapshot_copy(),
            views: self.views.clone(),
            max_ts: self.max_ts,
            last_seq: self.last_seq,
            effects: Vec::new(),
        }
    }
}

/// Where a player's state is kept (see [`Engine::locate_player`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlayerSlot {
    pub partition: usize,
    pub pid: u32,
}

/// A player's state copied away from a snapshot copy (see
/// [`Engine::copy_of_shared_player`]).
pub struct PlayerCopy {
    partition: usize,
    pid: u32,
    /// The shared state it copies: installing checks it is still in place.
    from: Weak<PlayerState>,
    state: Arc<PlayerState>,
}

/// A leaderboard bucket copied away from a snapshot copy (see
/// [`Engine::copy_of_shared_board`]).
pub struct BoardCopy {
    index: usize,
    bucket: i64,
    from: Weak<veltrix_rank::Board>,
    board: Arc<veltrix_rank::Board>,
}

/// Submitted-event counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// A rejected event as kept in the dead-letter list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// 1-based line (offline runs) or submission position (server).
    pub line: u64,
    pub id: Option<String>,
    pub error: String,
}

/// What happened to one submitted event.
#[derive(Clone, Debug, PartialEq)]
pub enum Submission {
    Accepted { seq: u64, event: Event },
    Duplicate { id: String },
    Rejected(Rejection),
}

/// The dedup key of an event id: its 128-bit xxh3 hash. Keeping keys
/// instead of ids holds the set to 16 bytes an id (in memory and in
/// snapshots) whatever the ids' length; two distinct ids share a key with
/// probability about n²/2¹²⁹ (below 10⁻¹⁸ for ten billion ids). The hash is
/// fixed (no seed), so replays and snapshots agree on every machine.
pub fn id_key(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// The accepted event ids, as [`id_key`]s.
///
/// Lookups go to a hash set split into [`DEDUP_SHARDS`] shards by the key's
/// top bits, so growing the set rehashes one shard at a time (a single
/// ten-million-key table would stall the engine thread for a rehash of all
/// of them). The keys are also kept in acceptance order in a [`CowVec`]
/// (16 more bytes an id), so a snapshot copy shares them instead of copying
/// the set.
#[derive(Clone)]
pub struct Dedup {
    shards: Vec<FastSet<u128>>,
    keys: CowVec<u128>,
}

pub const DEDUP_SHARDS: usize = 64;

/// Invariant: only a snapshot copy lacks the shards, and it only encodes.
const NO_LOOKUP_SET: &str = "a snapshot copy of the dedup set has no lookup set";

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            shards: vec![FastSet::default(); DEDUP_SHARDS],
            keys: CowVec::new(),
        }
    }
}

impl Dedup {
    /// Room for `keys` keys without growing.
    pub fn with_capacity(keys: usize) -> Dedup {
        let per_shard = keys / DEDUP_SHARDS + keys / DEDUP_SHARDS / 16 + 1;
        Dedup {
            shards: (0..DEDUP_SHARDS)
                .map(|_| FastSet::with_capacity_and_hasher(per_shard, Default::default()))
                .collect(),
            keys: CowVec::new(),
        }
    }

    fn shard_index(key: u128) -> usize {
        (key >> (128 - DEDUP_SHARDS.trailing_zeros())) as usize
    }

    pub fn contains(&self, key: u128) -> bool {
        self.shards
            .get(Dedup::shard_index(key))
            .expect(NO_LOOKUP_SET)
            .contains(&key)
    }

    /// Adds a key; false (and no change) when it was there.
    pub fn insert(&mut self, key: u128) -> bool {
        !self.admit(true, Some(key))
    }

    /// [`Dedup::probe`], appending a new key to the ordered list at once.
    fn admit(&mut self, valid: bool, key: Option<u128>) -> bool {
        let (known, new) = self.probe(valid, key);
        if let Some(key) = new {
            self.keys.push(key);
        }
        known
    }

    /// [`Dedup::admit`] for each submission of a batch, in order: the same
    /// answers and the same keys in the same order. The probes run in one
    /// tight loop, so the CPU overlaps their cache misses, and the new keys
    /// are appended to the ordered list once per batch: an append per key
    /// costs an atomic uniqueness check, which waits for the set's
    /// outstanding stores.
    fn known_in_order(&mut self, submissions: &[(bool, Option<u128>)]) -> Vec<bool> {
        let mut added = Vec::with_capacity(submissions.len());
        let known = submissions
            .iter()
            .map(|&(valid, key)| {
                let (known, new) = self.probe(valid, key);
                added.extend(new);
                known
            })
            .collect();
        self.keys.extend_from_slice(&added);
        known
    }

    /// Whether one submission's id is known, looking only at the lookup
    /// set: a valid submission's key goes in (and is returned as new when
    /// it was not there), an invalid one's is only looked up. Appending a
    /// new key to the ordered list is the caller's.
    fn probe(&mut self, valid: bool, key: Option<u128>) -> (bool, Option<u128>) {
        match key {
            _ if valid => {
                let key = key.expect("a parsed event has an id");
                let new = self
                    .shards
                    .get_mut(Dedup::shard_index(key))
                    .expect(NO_LOOKUP_SET)
                    .insert(key);
                (!new, new.then_some(key))
            }
            Some(key) => (self.contains(key), None),
            None => (false, None),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key, in the order added.
    pub fn keys(&self) -> &CowVec<u128> {
        &self.keys
    }

    /// The keys only, without the lookup set: what a snapshot encodes.
    fn snapshot_copy(&self) -> Dedup {
        Dedup {
            shards: Vec::new(),
            keys: self.keys.clone(),
        }
    }
}

impl FromIterator<u128> for Dedup {
    fn from_iter<I: IntoIterator<Item = u128>>(iter: I) -> Self {
        let mut dedup = Dedup::default();
        for key in iter {
            dedup.insert(key);
        }
        dedup
    }
}

/// The id a submission carries, valid or not (a rejected event's id, when
/// it had a readable one).
pub fn submitted_id(parsed: &Result<Event, EventError>) -> Option<&str> {
    match parsed {
        Ok(event) => Some(&event.id),
        Err(error) => error.id.as_deref(),
    }
}

/// Validation, deduplication and sequencing: everything between bytes and
/// the log. Dedup is global (an id is a duplicate whatever player it names),
/// so it lives here, before events are split by player.
#[derive(Clone, Default)]
pub struct Ingest {
    /// The [`id_key`] of every accepted id.
    pub(crate) seen: Dedup,
    pub counts: Counts,
    pub rejected: CowVec<Rejection>,
    pub next_seq: u64,
}

impl Ingest {
    pub fn new() -> Ingest {
        Ingest {
            next_seq: 1,
            ..Ingest::default()
        }
    }

    /// Validates one JSON event. `line` locates it for error reports;
    /// `accept_time_ms` becomes its `ts` when it has none.
    pub fn submit(
        &mut self,
        plan: &Plan,
        bytes: &[u8],
        line: u64,
        accept_time_ms: i64,
    ) -> Submission {
        self.admit(parse_event(&plan.config, bytes, accept_time_ms), line)
    }

    /// Deduplicates and sequences an event parsed and validated elsewhere
    /// (by [`parse_event`] against the configuration in force, so that
    /// parsing can run on other threads ahead of the one sequencer). A
    /// known id is a duplicate whatever the parse said, as in `submit`.
    pub fn admit(&mut self, parsed: Result<Event, EventError>, line: u64) -> Submission {
        let key = submitted_id(&parsed).map(id_key);
        self.admit_keyed(parsed, key, line)
    }

    /// [`Ingest::admit_keyed`] for each submission of a batch, in order:
    /// the same outcomes, counts, dead letters, seqs and dedup set, with
    /// the dedup set's probes for the whole batch done first, in one loop
    /// (see `Dedup::known_in_order`). `keys` and `lines` are aligned with
    /// `batch`.
    pub fn admit_batch(
        &mut self,
        batch: Vec<Result<Event, EventError>>,
        keys: &[Option<u128>],
        lines: &[u64],
    ) -> Vec<Submission> {
        assert!(
            batch.len() == keys.len() && batch.len() == lines.len(),
            "a key and a line for every submission"
        );
        let probes: Vec<(bool, Option<u128>)> = batch
            .iter()
            .zip(keys)
            .map(|(parsed, &key)| {
                debug_assert_eq!(
                    key,
                    submitted_id(parsed).map(id_key),
                    "the submitted id's key"
                );
                (parsed.is_ok(), key)
            })
            .collect();
        let known = self.seen.known_in_order(&probes);
        batch
            .into_iter()
            .zip(known)
            .zip(lines)
            .map(|((parsed, known), &line)| self.admit_known(parsed, known, line))
            .collect()
    }

    /// The rest of admitting a submission once the dedup set said whether
    /// its id was `known` (and took a new valid one in).
    fn admit_known(
        &mut self,
        parsed: Result<Event, EventError>,
        known: bool,
        line: u64,
    ) -> Submission {
        match parsed {
            Ok(event) if known => {
                self.counts.duplicates += 1;
                Submission::Duplicate {
                    id: event.id.to_string(),
                }
            }
            Ok(event) => {
                self.counts.accepted += 1;
                let seq = self.next_seq;
                self.next_seq += 1;
                Submission::Accepted { seq, event }
            }
            Err(error) if known => {
                self.counts.duplicates += 1;
                Submission::Duplicate {
                    id: error.id.expect("a key comes with its id"),
                }
            }
            Err(error) => {
                self.counts.rejected += 1;
                let rejection = Rejection {
                    line,
                    id: error.id,
                    error: error.message,
                };
                self.rejected.push(rejection.clone());
                Submission::Rejected(rejection)
            }
        }
    }

    /// [`Ingest::admit`] with the id's [`id_key`] computed by the caller
    /// (the server hashes ids on its request threads, off the one thread
    /// that sequences). `key` must be the key of [`submitted_id`].
    pub fn admit_keyed(
        &mut self,
        parsed: Result<Event, EventError>,
        key: Option<u128>,
        line: u64,
    ) -> Submission {
        debug_assert_eq!(
            key,
            submitted_id(&parsed).map(id_key),
            "the key is the submitted id's"
        );
        // A valid event's key is looked up and added in one probe: the
        // usual case, a new id, then costs one hash lookup instead of two.
        let known = self.seen.admit(parsed.is_ok(), key);
        self.admit_known(parsed, known, line)
    }

    /// Marks an id as accepted when rebuilding from the log.
    pub fn remember(&mut self, id: &str, seq: u64) {
        self.seen.insert(id_key(id));
        self.counts.accepted += 1;
        self.next_seq = self.next_seq.max(seq + 1);
    }

    pub fn is_known(&self, id: &str) -> bool {
        self.seen.contains(id_key(id))
    }

    /// For the owner of a snapshot copy, as [`Engine::let_go`]: gives this
    /// copy its own last chunk of the dedup keys and dead letters (the
    /// chunks the live state appends to next).
    pub fn let_go(&mut self) {
        self.seen.keys.unshare_last_chunk();
        self.rejected.unshare_last_chunk();
    }

    /// What a snapshot encodes, without the lookup set (see
    /// [`Engine::snapshot_copy`]).
    pub fn snapshot_copy(&self) -> Ingest {
        Ingest {
            seen: self.seen.snapshot_copy(),
            counts: self.counts,
            rejected: self.rejected.clone(),
            next_seq: self.next_seq,
        }
    }
}

/// Splits NDJSON into (1-based line number, line) pairs, skipping blank lines.
pub fn ndjson_lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut start = 0;
    let mut line = 0u64;
    std::iter::from_fn(move || {
        while start < bytes.len() {
            line += 1;
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            let mut text = &bytes[start..end];
            start = end + 1;
            if text.last() == Some(&b'\r') {
                text = &text[..text.len() - 1];
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some((line, text));
        }
        None
    })
}

/// Runs a whole NDJSON file through ingest and the engine: `veltrix run`.
pub fn run_ndjson(
    plan: Arc<Plan>,
    bytes: &[u8],
    accept_time_ms: i64,
    partitions: usize,
) -> (Ingest, Engine) {
    let mut ingest = Ingest::new();
    let mut engine = Engine::new(plan.clone(), partitions);
    for (line, text) in ndjson_lines(bytes) {
        if let Submission::Accepted { seq, event } =
            ingest.submit(&plan, text, line, accept_time_ms)
        {
            engine.apply_event(seq, &event);
        }
    }
    (ingest, engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// A submission of the model: a valid event or an invalid one, with
    /// one of a few ids (so that duplicates within and across batches are
    /// common) or, when invalid, maybe none.
    fn submission() -> impl Strategy<Value = Result<Event, EventError>> {
        let id = (0u8..12).prop_map(|n| format!("e{n}"));
        prop_oneof![
            3 => (id.clone(), 0u8..4).prop_map(|(id, player)| Ok(Event {
                id: id.into(),
                player: format!("p{player}").into(),
                event_type: 0,
                ts: 1,
                data: Vec::new(),
            })),
            1 => proptest::option::of(id).prop_map(|id| Err(EventError {
                id,
                message: "bad".into(),
            })),
        ]
    }

    proptest! {
        /// Admitting batches whole gives what admitting their submissions
        /// one at a time gives: the same outcomes, counts, dead letters,
        /// next seq and dedup keys in the same order.
        #[test]
        fn a_batch_is_admitted_as_its_submissions_one_at_a_time(
            batches in proptest::collection::vec(proptest::collection::vec(submission(), 0..40), 1..8),
        ) {
            let mut one_by_one = Ingest::new();
            let mut batched = Ingest::new();
            for batch in batches {
                let keys: Vec<Option<u128>> =
                    batch.iter().map(|s| submitted_id(s).map(id_key)).collect();
                let lines: Vec<u64> = (1..=batch.len() as u64).collect();
                let expected: Vec<Submission> = batch
                    .iter()
                    .cloned()
                    .zip(&keys)
                    .zip(&lines)
                    .map(|((s, &key), &line)| one_by_one.admit_keyed(s, key, line))
                    .collect();
                prop_assert_eq!(batched.admit_batch(batch, &keys, &lines), expected);
                prop_assert_eq!(batched.counts, one_by_one.counts);
                prop_assert_eq!(batched.next_seq, one_by_one.next_seq);
                prop_assert_eq!(&batched.rejected, &one_by_one.rejected);
                prop_assert_eq!(batched.seen.keys(), one_by_one.seen.keys());
            }
        }
    }
}
