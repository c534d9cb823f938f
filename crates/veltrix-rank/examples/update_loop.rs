//! A plain timing loop for the two hot board operations at 1,000,000 players.
//!
//! On a shared machine criterion's mean moves with other load; the minimum
//! over a few rounds of 500,000 operations is a steadier figure for A/B
//! comparisons of the tree's layout. Run with
//! `cargo run --release -p veltrix-rank --example update_loop`.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veltrix_rank::Board;

const PLAYERS: u32 = 1_000_000;
const OPERATIONS: usize = 500_000;
const ROUNDS: usize = 7;

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut board = Board::from_entries(
        (0..PLAYERS).map(|player| (player, rng.random_range(0..200_000i64), u64::from(player))),
    );
    let moves: Vec<(u32, i64)> = (0..OPERATIONS)
        .map(|_| (rng.random_range(0..PLAYERS), rng.random_range(1..=100i64)))
        .collect();
    let mut seq = u64::from(PLAYERS);
    let mut best_update_ns = f64::MAX;
    let mut best_rank_ns = f64::MAX;
    // Folded into the output so that no call can be optimised away.
    let mut checksum = 0u64;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for &(player, delta) in &moves {
            seq += 1;
            checksum = checksum.wrapping_add(board.add(player, delta, seq) as u64);
        }
        best_update_ns = best_update_ns.min(start.elapsed().as_nanos() as f64 / OPERATIONS as f64);
        let start = Instant::now();
        for &(player, _) in &moves {
            checksum = checksum.wrapping_add(board.rank(player).unwrap_or(0));
        }
        best_rank_ns = best_rank_ns.min(start.elapsed().as_nanos() as f64 / OPERATIONS as f64);
    }
    println!(
        "update {best_update_ns:.0} ns, rank {best_rank_ns:.0} ns (best of {ROUNDS} rounds; checksum {checksum})"
    );
}
