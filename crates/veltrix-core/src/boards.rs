//! Leaderboards: one order-statistic board per (leaderboard, period bucket).
//! A board's key includes the log position at which the player reached their
//! score, so the result does not depend on the order in which partitions
//! report their grants — only on each player's own grants, which one
//! partition applies in log order.

use crate::cow::CowVec;
use crate::engine::{FastMap, id_key};
use crate::grant::Grant;
use crate::windows::period_index;
use std::collections::BTreeMap;
use std::sync::Arc;
use veltrix_config::veltrix_expr::Period as ExprPeriod;
use veltrix_config::{Config, Period};
use veltrix_rank::{Board, Row};

/// Per leaderboard, per bucket: (player id, score, seq reached) in rank order.
pub type BoardEntries = Vec<Vec<(i64, Vec<(u32, i64, u64)>)>>;

#[derive(Clone, Debug, Default)]
pub struct Boards {
    /// Per configured leaderboard: bucket → board. `All` uses bucket 0.
    /// Each board behind an `Arc`, so a snapshot copy shares them and only
    /// the boards written after it are copied (past days and weeks never).
    pub boards: Vec<BTreeMap<i64, Arc<Board>>>,
    names: CowVec<Arc<str>>,
    /// Board player ids by the [`id_key`] of the name (as the partitions'
    /// player index, and for the same reason: no pointer to follow per
    /// lookup).
    ids: FastMap<u128, u32>,
    /// Updates held back while deferring (see [`Boards::defer`]).
    deferred: Deferred,
}

/// Leaderboard updates held back, one per (leaderboard, bucket, player):
/// a player's points summed and the seq of their last grant kept, in the
/// order each was first held.
#[derive(Clone, Debug, Default)]
struct Deferred {
    on: bool,
    at: FastMap<(usize, i64, u32), usize>,
    updates: Vec<RowUpdate>,
}

/// Points added to a player's row on one board, reached at `seq`.
#[derive(Clone, Copy, Debug)]
struct RowUpdate {
    leaderboard: usize,
    bucket: i64,
    player: u32,
    points: i64,
    seq: u64,
}

/// A leaderboard row with the player's name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NamedRow {
    pub rank: u64,
    pub player: String,
    pub score: i64,
}

pub fn bucket_of(period: Period, ts: i64) -> i64 {
    match period {
        Period::All => 0,
        Period::Day => period_index(ts, ExprPeriod::Day),
        Period::Week => period_index(ts, ExprPeriod::Week),
    }
}

impl Boards {
    pub fn new(config: &Config) -> Boards {
        Boards {
            boards: vec![BTreeMap::new(); config.leaderboards.len()],
            ..Boards::default()
        }
    }

    fn intern(&mut self, player: &Arc<str>) -> u32 {
        self.intern_keyed(player, id_key(player))
    }

    fn intern_keyed(&mut self, player: &Arc<str>, key: u128) -> u32 {
        debug_assert_eq!(key, id_key(player), "the name's key");
        if let Some(&id) = self.ids.get(&key) {
            debug_assert_eq!(self.names[id as usize], *player);
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(player.clone());
        self.ids.insert(key, id);
        id
    }

    /// Holds leaderboard updates back until [`Boards::flush`]: each
    /// (leaderboard, bucket, player) then gets one update, the sum of its
    /// held points at the seq of its last grant. That is the standing the
    /// updates one at a time would have left (points only add, so the sum
    /// saturates where the steps would; a board's order depends only on
    /// each player's standing), at one tree update per player instead of
    /// one per grant, where a busy player earns many in a batch. Player
    /// ids are still given out at once, in grant order. Nothing may read
    /// the boards until the flush (asserted where they are copied).
    pub fn defer(&mut self) {
        self.deferred.on = true;
    }

    /// Applies every held update, in the order first held, and stops
    /// deferring.
    pub fn flush(&mut self) {
        self.deferred.on = false;
        self.deferred.at.clear();
        // Taken out and put back, so the list keeps its room for the next batch.
        let mut updates = std::mem::take(&mut self.deferred.updates);
        for update in updates.drain(..) {
            self.apply(update);
        }
        self.deferred.updates = updates;
    }

    /// Moves a player's row on one board (copying the board first if a
    /// snapshot copy shares it).
    fn apply(&mut self, update: RowUpdate) {
        let board = self.boards[update.leaderboard]
            .entry(update.bucket)
            .or_default();
        Arc::make_mut(board).add(update.player, update.points, update.seq);
    }

    /// Whether no update is held back.
    pub fn is_flushed(&self) -> bool {
        self.deferred.updates.is_empty()
    }

    fn hold(&mut self, update: RowUpdate) {
        let key = (update.leaderboard, update.bucket, update.player);
        match self.deferred.at.get(&key) {
            Some(&at) => {
                let held = &mut self.deferred.updates[at];
                held.points = held.points.saturating_add(update.points);
                debug_assert!(update.seq >= held.seq, "grants come in log order");
                held.seq = update.seq;
            }
            None => {
                self.deferred.at.insert(key, self.deferred.updates.len());
                self.deferred.updates.push(update);
            }
        }
    }

    /// Every board's entries and the player names, as a snapshot holds
    /// them: the plain serde encoding the snapshot encoder is tested
    /// against (the encoder writes boards itself, from cached bytes).
    #[cfg(test)]
    pub(crate) fn export(&self) -> (BoardEntries, Vec<Arc<str>>) {
        let boards = self
            .boards
            .iter()
            .map(|buckets| {
                buckets
                    .iter()
                    .map(|(bucket, board)| (*bucket, board.entries().collect()))
                    .collect()
            })
            .collect();
        (boards, self.names.iter().cloned().collect())
    }

    /// The boards and names without the name index: what a snapshot
    /// encodes (see `Engine::snapshot_copy`).
    pub fn snapshot_copy(&self) -> Boards {
        assert!(
            self.is_flushed(),
            "a snapshot copy of boards with updates held back"
        );
        Boards {
            boards: self.boards.clone(),
            names: self.names.clone(),
            ids: FastMap::default(),
            deferred: Deferred::default(),
        }
    }

    /// Boards from a snapshot's entries and names.
    pub fn import(boards: BoardEntries, names: Vec<Arc<str>>) -> Boards {
        Boards {
            boards: boards
                .into_iter()
                .map(|buckets| {
                    buckets
                        .into_iter()
                        .map(|(bucket, entries)| (bucket, Arc::new(Board::from_entries(entries))))
                        .collect()
                })
                .collect(),
            ids: names
                .iter()
                .enumerate()
                .map(|(i, n)| (id_key(n), i as u32))
                .collect(),
            names: names.into(),
            deferred: Deferred::default(),
        }
    }

    /// Player names by board player id.
    pub fn names(&self) -> &CowVec<Arc<str>> {
        &self.names
    }

    pub fn player_id(&self, player: &str) -> Option<u32> {
        let id = self.ids.get(&id_key(player)).copied();
        debug_assert!(id.is_none_or(|id| &*self.names[id as usize] == player));
        id
    }

    /// Adds a grant's points to every leaderboard it counts toward.
    pub fn record(&mut self, config: &Config, grant: &Grant) {
        self.record_keyed(config, grant, id_key(&grant.player));
    }

    /// As [`Boards::record`], with the [`id_key`] of the grant's player
    /// computed by the caller.
    pub fn record_keyed(&mut self, config: &Config, grant: &Grant, player_key: u128) {
        if grant.points <= 0 {
            return;
        }
        let mut id = None;
        for (index, board) in config.leaderboards.iter().enumerate() {
            if board.hunt.is_some() && board.hunt != grant.cause.hunt() {
                continue;
            }
            let player = *id.get_or_insert_with(|| self.intern_keyed(&grant.player, player_key));
            let update = RowUpdate {
                leaderboard: index,
                bucket: bucket_of(board.period, grant.ts),
                player,
                points: grant.points,
                seq: grant.seq,
            };
            if self.deferred.on {
                self.hold(update);
            } else {
                self.apply(update);
            }
        }
    }

    /// Adds a grant's points to one leaderboard only (rebuilding a board
    /// from the grant history after a configuration switch).
    pub(crate) fn record_one(&mut self, index: usize, period: Period, grant: &Grant) {
        assert!(
            self.is_flushed(),
            "rebuilding a board with updates held back"
        );
        if grant.points <= 0 {
            return;
        }
        let player = self.intern(&grant.player);
        self.apply(RowUpdate {
            leaderboard: index,
            bucket: bucket_of(period, grant.ts),
            player,
            points: grant.points,
            seq: grant.seq,
        });
    }

    pub fn board(&self, leaderboard: usize, bucket: i64) -> Option<&Board> {
        debug_assert!(self.is_flushed(), "a board read with updates held back");
        self.boards
            .get(leaderboard)?
            .get(&bucket)
            .map(|board| &**board)
    }

    pub fn named(&self, row: Row) -> NamedRow {
        NamedRow {
            rank: row.rank,
            player: self.names[row.player as usize].to_string(),
            score: row.score,
        }
    }
}
