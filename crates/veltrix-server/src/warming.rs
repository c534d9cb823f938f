//! Paying for a snapshot's copy-on-write on the snapshot thread and while
//! idle, instead of in the next request.
//!
//! A snapshot copy shares the players and leaderboards with the live state
//! (`Core::snapshot_copy`); the first write to each shared player or board
//! after it copies that player or board. The players written next are the
//! ones written last (activity is skewed: a few players send most events),
//! and they are also the largest (long rule candidate lists and windows),
//! so the first batch after a copy used to pay for all of them at once:
//! 8–18 ms of engine time instead of about 1 ms for 1,000 events in
//! `cargo run --release -p veltrix-core --example cow_cost`.
//!
//! So the engine thread remembers the players of the last
//! [`RECENT_EVENTS`] accepted events ([`RecentPlayers`]) and hands where
//! they are to the snapshot thread with the copy. That thread, before it
//! encodes anything, gives its copy its own copies of those players (most
//! active first), of the newest bucket of every leaderboard and of the
//! chunks appended to next (`Core::let_go`): the live state then owns them
//! alone, and its next writes copy nothing. The copying runs on the other
//! core, concurrently with the engine's next request; a write that gets
//! there first copies as before (reference counts decide, so either order
//! is correct). In `cow_cost` the first batch after such a copy took 2.9–6.8
//! ms against 9–20 ms.
//!
//! The engine thread also does the same from its side ([`Warming`]): after
//! taking a copy it copies the newest bucket of every leaderboard and those
//! players itself, in steps of at most `engine::YIELD_INTERVAL` and
//! only while no command is waiting. It copies under an upgradable read
//! lock (reads go on; this thread is the only writer, so nothing changes
//! meanwhile) and takes the write lock only to put the copies in place. A
//! command that arrives meanwhile runs first and copies what it touches
//! itself, as before. The copies equal what they replace, so replay and
//! snapshots are unaffected. With both, the acknowledgement p99 of the 2 M
//! event open-loop run went from 14.2–20.0 ms (warming alone) to 11.1–12.7
//! ms (docs/PERFORMANCE.md, session 7); letting go alone gave 12.0–13.6 ms.

use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockUpgradableReadGuard};

use crate::engine::Core;
use veltrix_core::engine::PlayerSlot;

/// Accepted events whose players are warmed after a snapshot copy.
pub const RECENT_EVENTS: usize = 4096;

/// Players copied between two checks of the clock.
const PLAYERS_PER_CHECK: usize = 16;

/// Where the players of the last [`RECENT_EVENTS`] accepted events are
/// kept, repeats included (a ring). Slots, not names: pushing one is a
/// copy of two integers, where a name cost a reference count up on the new
/// player and one down on a player 4,096 events old, a cache miss (about 5 %
/// of the engine thread).
#[derive(Default)]
pub struct RecentPlayers {
    ring: Vec<PlayerSlot>,
    next: usize,
}

impl RecentPlayers {
    pub fn push(&mut self, player: PlayerSlot) {
        if self.ring.len() < RECENT_EVENTS {
            self.ring.push(player);
        } else {
            self.ring[self.next] = player;
        }
        self.next = (self.next + 1) % RECENT_EVENTS;
    }

    /// Where each player of the ring is, repeats included.
    pub fn slots(&self) -> Vec<PlayerSlot> {
        self.ring.clone()
    }

    /// The distinct players, the least active first (see [`Warming::step`]).
    fn by_activity(&self) -> Vec<PlayerSlot> {
        let mut players = most_repeated_first(self.ring.clone());
        players.reverse();
        players
    }
}

/// The distinct items of `items`, the most often repeated first.
pub fn most_repeated_first<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort_unstable();
    let mut counted: Vec<(usize, T)> = Vec::new();
    for item in items {
        match counted.last_mut() {
            Some((n, last)) if *last == item => *n += 1,
            _ => counted.push((1, item)),
        }
    }
    counted.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    counted.into_iter().map(|(_, item)| item).collect()
}

/// What is left to un-share after the last snapshot copy.
#[derive(Default)]
pub struct Warming {
    players: Vec<PlayerSlot>,
    /// Leaderboards not yet un-shared: indexes `0..boards`.
    boards: usize,
}

impl Warming {
    /// Starts over after a new snapshot copy.
    pub fn start(&mut self, recent: &RecentPlayers, leaderboards: usize) {
        self.players = recent.by_activity();
        self.boards = leaderboards;
    }

    pub fn is_pending(&self) -> bool {
        !self.players.is_empty() || self.boards > 0
    }

    /// Copies the leaderboards (one a step: a board copies in one piece,
    /// up to a few milliseconds), then the players, most active first (they
    /// are the likeliest to be written next and the largest), for up to
    /// `budget`, under an upgradable read lock, so reads go on meanwhile;
    /// then takes the write lock only to put the copies in place. Returns
    /// whether work is left.
    pub fn step(&mut self, core: &RwLock<Core>, budget: Duration) -> bool {
        let started = Instant::now();
        let state = core.upgradable_read();
        let mut boards = Vec::new();
        let mut players = Vec::new();
        if self.boards > 0 {
            self.boards -= 1;
            boards.extend(state.engine.copy_of_shared_board(self.boards));
        } else {
            while !self.players.is_empty() && started.elapsed() < budget {
                let from = self.players.len().saturating_sub(PLAYERS_PER_CHECK);
                for player in self.players.drain(from..).rev() {
                    players.extend(state.engine.copy_of_shared_player(player));
                }
            }
        }
        if !boards.is_empty() || !players.is_empty() {
            let mut state = RwLockUpgradableReadGuard::upgrade(state);
            for board in boards {
                state.engine.install_board(board);
            }
            for player in players {
                state.engine.install_player(player);
            }
        }
        self.is_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_players_are_the_last_events_players_most_active_last() {
        let mut recent = RecentPlayers::default();
        let slots: Vec<PlayerSlot> = (0..4).map(|pid| PlayerSlot { partition: 1, pid }).collect();
        recent.push(slots[0]);
        for i in 0..RECENT_EVENTS {
            // p3 on every other event, p1 and p2 on every fourth.
            recent.push(slots[if i % 2 == 0 { 3 } else { 1 + i / 2 % 2 }]);
        }
        // p0 was pushed out of the ring by RECENT_EVENTS later events.
        assert_eq!(recent.slots().len(), RECENT_EVENTS);
        assert!(!recent.slots().contains(&slots[0]));
        let order = recent.by_activity();
        assert_eq!(order.len(), 3);
        assert_eq!(order[2], slots[3]);
    }
}
