//! A leaderboard: each player's (score, seq) plus an order-statistic set of
//! `(Reverse(score), seq, player)`, so that ascending set order is rank order:
//! higher score first, then the earlier log position, then the smaller id.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::set::{InvariantViolation, OrderStatisticSet};

/// One leaderboard row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// 1-based, unique and consecutive.
    pub rank: u64,
    pub player: u32,
    pub score: i64,
}

/// A player's standing: the score and the log position at which it was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Standing {
    score: i64,
    seq: u64,
}

/// The set key; ascending order is rank order.
type RankKey = (Reverse<i64>, u64, u32);

fn rank_key(player: u32, standing: Standing) -> RankKey {
    (Reverse(standing.score), standing.seq, player)
}

fn row_from_key(index: usize, (Reverse(score), _seq, player): RankKey) -> Row {
    Row {
        rank: index as u64 + 1,
        player,
        score,
    }
}

/// Player ids below this always fit in the dense table, whatever the player count.
const DENSE_FLOOR: usize = 1 << 16;

/// Player id -> standing.
///
/// Ids come from an interner and are dense, so a `Vec` indexed by id is the
/// fast path (one bounds check and one load, against hashing for a map; see
/// the README numbers). An id far beyond the table goes to a `BTreeMap`
/// instead of growing the table, so a stray `u32::MAX` costs one map entry
/// and not 100 GB. The table grows only while it stays within four times the
/// player count (or `DENSE_FLOOR`), which bounds memory by the players held.
/// Nothing here is iterated to produce output (the set is), and the map is a
/// `BTreeMap` anyway, so even `Debug` output is deterministic.
#[derive(Clone, Debug, Default)]
struct Standings {
    dense: Vec<Option<Standing>>,
    sparse: BTreeMap<u32, Standing>,
    players: usize,
}

impl Standings {
    fn get(&self, player: u32) -> Option<Standing> {
        match self.dense.get(player as usize) {
            Some(slot) => *slot,
            None => self.sparse.get(&player).copied(),
        }
    }

    fn set(&mut self, player: u32, standing: Standing) {
        let index = player as usize;
        if index >= self.dense.len() && index < self.dense_bound() {
            self.grow_dense(index + 1);
        }
        let previous = match self.dense.get_mut(index) {
            Some(slot) => slot.replace(standing),
            None => self.sparse.insert(player, standing),
        };
        if previous.is_none() {
            self.players += 1;
        }
    }

    /// Grows the dense table to at least `len` slots (doubling, within the
    /// memory bound) and moves sparse entries that now fit into it.
    fn grow_dense(&mut self, len: usize) {
        let old = self.dense.len();
        let new = len
            .max(old.saturating_mul(2))
            .min(self.dense_bound())
            .max(len);
        self.dense.resize(new, None);
        let moved: Vec<u32> = self
            .sparse
            .range(old as u32..)
            .take_while(|(player, _)| (**player as usize) < new)
            .map(|(player, _)| *player)
            .collect();
        for player in moved {
            if let Some(standing) = self.sparse.remove(&player) {
                self.dense[player as usize] = Some(standing);
            }
        }
    }

    fn len(&self) -> usize {
        self.players
    }

    /// The dense table never reaches this length: four slots per player held
    /// (at least `DENSE_FLOOR`), and never past `u32::MAX` so that every
    /// dense index is a player id.
    fn dense_bound(&self) -> usize {
        DENSE_FLOOR
            .max(self.players.saturating_mul(4))
            .min(u32::MAX as usize)
    }
}

/// A leaderboard: player -> (score, seq reached) plus the ordered set keyed
/// `(Reverse(score), seq, player)`.
///
/// Every operation is total: absent players have no rank, pages past the end
/// are empty, and scores saturate instead of overflowing.
#[derive(Clone, Debug, Default)]
pub struct Board {
    ranking: OrderStatisticSet<RankKey>,
    standings: Standings,
}

impl Board {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts the player or moves them to `score`; `seq` is the log position
    /// at which they reached it. Setting the same (score, seq) again is a no-op.
    pub fn set_score(&mut self, player: u32, score: i64, seq: u64) {
        let standing = Standing { score, seq };
        if let Some(old) = self.standings.get(player) {
            if old == standing {
                return;
            }
            let removed = self.ranking.remove(&rank_key(player, old));
            debug_assert!(
                removed,
                "player {player} in the table but not in the ranking"
            );
        }
        let inserted = self.ranking.insert(rank_key(player, standing));
        debug_assert!(inserted, "player {player} ranked twice");
        self.standings.set(player, standing);
        debug_assert_eq!(self.ranking.len(), self.standings.len());
    }

    /// Adds `delta` to the player's score (0 for a new player) and returns the
    /// new score. The sum saturates at the `i64` bounds.
    ///
    /// A zero `delta` for a known player keeps their old `seq`: they did not
    /// reach a new score, so they keep their place among equals. A new player
    /// is placed even with `delta == 0`.
    pub fn add(&mut self, player: u32, delta: i64, seq: u64) -> i64 {
        match self.standings.get(player) {
            Some(old) if delta == 0 => old.score,
            Some(old) => {
                let score = old.score.saturating_add(delta);
                self.set_score(player, score, seq);
                score
            }
            None => {
                self.set_score(player, delta, seq);
                delta
            }
        }
    }

    /// The player's score, `None` if they are not on the board.
    pub fn score(&self, player: u32) -> Option<i64> {
        self.standings.get(player).map(|standing| standing.score)
    }

    /// The player's score and the seq at which they reached it.
    pub fn standing(&self, player: u32) -> Option<(i64, u64)> {
        self.standings
            .get(player)
            .map(|standing| (standing.score, standing.seq))
    }

    /// The player's 1-based rank, `None` if they are not on the board.
    pub fn rank(&self, player: u32) -> Option<u64> {
        let position = self.position(player)?;
        Some(position as u64 + 1)
    }

    /// The player's row, `None` if they are not on the board.
    pub fn row(&self, player: u32) -> Option<Row> {
        let standing = self.standings.get(player)?;
        Some(Row {
            rank: self.rank(player)?,
            player,
            score: standing.score,
        })
    }

    /// Rows `offset + 1 ..= offset + limit` (fewer at the end, none past it).
    pub fn page(&self, offset: usize, limit: usize) -> Vec<Row> {
        let count = limit.min(self.len().saturating_sub(offset));
        self.ranking
            .iter_from(offset)
            .take(count)
            .enumerate()
            .map(|(index, key)| row_from_key(offset + index, key))
            .collect()
    }

    /// The player's row with up to `n` rows above and `n` below; empty if the
    /// player is not on the board.
    pub fn around(&self, player: u32, n: usize) -> Vec<Row> {
        let Some(position) = self.position(player) else {
            return Vec::new();
        };
        let first = position.saturating_sub(n);
        let end = position.saturating_add(n).saturating_add(1).min(self.len());
        self.page(first, end - first)
    }

    /// Number of players on the board.
    pub fn len(&self) -> usize {
        self.ranking.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranking.is_empty()
    }

    /// All rows in rank order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Row> + '_ {
        self.ranking
            .iter_from(0)
            .enumerate()
            .map(|(index, key)| row_from_key(index, key))
    }

    /// `(player, score, seq)` for every player, in rank order, for snapshots.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (u32, i64, u64)> + '_ {
        self.ranking
            .iter_from(0)
            .map(|(Reverse(score), seq, player)| (player, score, seq))
    }

    /// Rebuilds a board from `entries()` output (any order). When a player
    /// appears twice, the later entry wins, as if applied with `set_score`.
    /// O(n log n): one sort, then a bottom-up build of the set.
    pub fn from_entries(entries: impl IntoIterator<Item = (u32, i64, u64)>) -> Self {
        let mut standings = Standings::default();
        let mut listed: Vec<(u32, i64, u64)> = entries.into_iter().collect();
        // Stable sort by player keeps input order among a player's entries,
        // so the last of each run is the one that wins.
        listed.sort_by_key(|&(player, _, _)| player);
        let mut keys = Vec::with_capacity(listed.len());
        for (index, &(player, score, seq)) in listed.iter().enumerate() {
            let superseded = listed
                .get(index + 1)
                .is_some_and(|&(next, _, _)| next == player);
            if superseded {
                continue;
            }
            let standing = Standing { score, seq };
            standings.set(player, standing);
            keys.push(rank_key(player, standing));
        }
        let board = Self {
            ranking: OrderStatisticSet::from_keys(keys),
            standings,
        };
        debug_assert_eq!(board.ranking.len(), board.standings.len());
        board
    }

    /// Verifies the set's invariants and that the set and the player table
    /// agree. O(n); meant for tests.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.ranking.check_invariants()?;
        if self.ranking.len() != self.standings.len() {
            return Err(InvariantViolation(format!(
                "{} ranked players but {} standings",
                self.ranking.len(),
                self.standings.len()
            )));
        }
        for (player, score, seq) in self.entries() {
            if self.standings.get(player) != Some(Standing { score, seq }) {
                return Err(InvariantViolation(format!(
                    "player {player} ranked at ({score}, {seq}) but the table disagrees"
                )));
            }
        }
        Ok(())
    }

    fn position(&self, player: u32) -> Option<usize> {
        let standing = self.standings.get(player)?;
        let position = self.ranking.rank(&rank_key(player, standing));
        debug_assert!(
            position.is_some(),
            "player {player} in the table but not ranked"
        );
        position
    }
}

impl PartialEq for Board {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.entries().eq(other.entries())
    }
}

impl Eq for Board {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(board: &Board) -> Vec<(u64, u32, i64)> {
        board
            .iter()
            .map(|row| (row.rank, row.player, row.score))
            .collect()
    }

    #[test]
    fn higher_score_then_earlier_seq_then_smaller_id() {
        let mut board = Board::new();
        board.set_score(7, 10, 5);
        board.set_score(3, 10, 2);
        board.set_score(9, 20, 9);
        board.set_score(1, 10, 5);
        board.check_invariants().unwrap();
        assert_eq!(
            rows(&board),
            vec![(1, 9, 20), (2, 3, 10), (3, 1, 10), (4, 7, 10)]
        );
        assert_eq!(board.rank(7), Some(4));
        assert_eq!(board.rank(8), None);
    }

    #[test]
    fn add_moves_players_and_keeps_seq_on_zero_delta() {
        let mut board = Board::new();
        assert_eq!(board.add(1, 5, 1), 5);
        assert_eq!(board.add(2, 5, 2), 5);
        assert_eq!(board.add(1, 0, 3), 5);
        assert_eq!(board.rank(1), Some(1), "a zero delta must not lose the tie");
        assert_eq!(board.add(2, 1, 4), 6);
        assert_eq!(board.rank(2), Some(1));
        assert_eq!(board.add(3, 0, 5), 0);
        assert_eq!(board.rank(3), Some(3));
        assert_eq!(board.add(4, i64::MAX, 6), i64::MAX);
        assert_eq!(board.add(4, 1, 7), i64::MAX);
        board.check_invariants().unwrap();
    }

    #[test]
    fn page_and_around_clip_at_the_edges() {
        let mut board = Board::new();
        for player in 0..10u32 {
            board.set_score(player, i64::from(player), u64::from(player));
        }
        assert_eq!(board.page(8, 5).len(), 2);
        assert!(board.page(10, 5).is_empty());
        assert!(board.page(usize::MAX, usize::MAX).is_empty());
        assert_eq!(board.page(0, usize::MAX).len(), 10);
        let around: Vec<u32> = board.around(9, 2).iter().map(|row| row.player).collect();
        assert_eq!(around, vec![9, 8, 7]);
        assert_eq!(board.around(0, usize::MAX).len(), 10);
        assert!(board.around(42, 3).is_empty());
        assert_eq!(
            board.around(5, 0),
            vec![Row {
                rank: 5,
                player: 5,
                score: 5
            }]
        );
    }

    #[test]
    fn sparse_and_huge_ids_work() {
        let mut board = Board::new();
        board.set_score(u32::MAX, 3, 1);
        board.set_score(70_000, 2, 2);
        for player in 0..20_000 {
            board.set_score(player, 1, 3 + u64::from(player));
        }
        // Growing the dense table past 70_000 moves that player out of the map.
        assert_eq!(
            board.standings.dense.len() > 70_000,
            board.standings.sparse.len() == 1
        );
        assert_eq!(board.rank(u32::MAX), Some(1));
        assert_eq!(board.rank(70_000), Some(2));
        assert_eq!(board.score(19_999), Some(1));
        board.check_invariants().unwrap();
        let rebuilt = Board::from_entries(board.entries());
        rebuilt.check_invariants().unwrap();
        assert_eq!(rebuilt, board);
    }

    #[test]
    fn from_entries_last_entry_wins() {
        let board = Board::from_entries([(1, 5, 1), (2, 9, 2), (1, 50, 3)]);
        board.check_invariants().unwrap();
        assert_eq!(board.score(1), Some(50));
        assert_eq!(rows(&board), vec![(1, 1, 50), (2, 2, 9)]);
    }
}
