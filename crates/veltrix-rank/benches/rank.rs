//! Leaderboard benchmarks at 1,000,000 players.
//!
//! Run with `cargo bench -p veltrix-rank`; sample sizes and times are kept
//! small so the whole run takes about a minute. Numbers are in the README.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veltrix_rank::{Board, OrderStatisticSet};

const PLAYERS: u32 = 1_000_000;

/// Scores spread over a range narrower than the player count, so that ties
/// on score (broken by seq) are common, as on a real board.
fn build_board(rng: &mut StdRng) -> Board {
    Board::from_entries(
        (0..PLAYERS).map(|player| (player, rng.random_range(0..200_000i64), u64::from(player))),
    )
}

/// A skewed player pick: a cube of a uniform draw puts about half of all
/// picks on the 12% lowest ids, the "whales" of a live event.
fn skewed_player(rng: &mut StdRng) -> u32 {
    let uniform: f64 = rng.random();
    ((uniform * uniform * uniform) * f64::from(PLAYERS)) as u32 % PLAYERS
}

fn board_benches(criterion: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut board = build_board(&mut rng);
    let mut seq = u64::from(PLAYERS);

    criterion.bench_function("board/update/1M", |bencher| {
        bencher.iter(|| {
            let player = rng.random_range(0..PLAYERS);
            let delta = rng.random_range(1..=100i64);
            seq += 1;
            black_box(board.add(player, delta, seq))
        })
    });
    criterion.bench_function("board/update_skewed/1M", |bencher| {
        bencher.iter(|| {
            let player = skewed_player(&mut rng);
            let delta = rng.random_range(1..=100i64);
            seq += 1;
            black_box(board.add(player, delta, seq))
        })
    });
    criterion.bench_function("board/rank/1M", |bencher| {
        bencher.iter(|| black_box(board.rank(rng.random_range(0..PLAYERS))))
    });
    criterion.bench_function("board/page100/1M", |bencher| {
        bencher.iter(|| black_box(board.page(rng.random_range(0..PLAYERS as usize - 100), 100)))
    });
    criterion.bench_function("board/page100_top/1M", |bencher| {
        bencher.iter(|| black_box(board.page(0, 100)))
    });
    criterion.bench_function("board/around10/1M", |bencher| {
        bencher.iter(|| black_box(board.around(rng.random_range(0..PLAYERS), 10)))
    });
    let entries: Vec<(u32, i64, u64)> = board.entries().collect();
    let mut group = criterion.benchmark_group("board/rebuild");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("from_entries/1M", |bencher| {
        bencher.iter(|| black_box(Board::from_entries(entries.iter().copied())))
    });
    group.finish();
}

/// The same move (remove a key, insert a new one, rank it) at three fan-outs.
fn fanout_bench<const B: usize>(criterion: &mut Criterion, name: &str) {
    let mut rng = StdRng::seed_from_u64(11);
    let mut keys: Vec<(Reverse<i64>, u64, u32)> = (0..PLAYERS)
        .map(|player| {
            (
                Reverse(rng.random_range(0..200_000i64)),
                u64::from(player),
                player,
            )
        })
        .collect();
    let mut set: OrderStatisticSet<_, B> = keys.iter().copied().collect();
    let mut seq = u64::from(PLAYERS);
    criterion.bench_function(name, |bencher| {
        bencher.iter(|| {
            let player = rng.random_range(0..PLAYERS);
            let old = keys[player as usize];
            seq += 1;
            let new = (Reverse(old.0.0 + rng.random_range(1..=100i64)), seq, player);
            set.remove(&old);
            set.insert(new);
            keys[player as usize] = new;
            black_box(set.rank(&new))
        })
    });
}

fn set_benches(criterion: &mut Criterion) {
    fanout_bench::<16>(criterion, "set/move_and_rank/1M/fanout16");
    fanout_bench::<32>(criterion, "set/move_and_rank/1M/fanout32");
    fanout_bench::<64>(criterion, "set/move_and_rank/1M/fanout64");

    // Insert/remove of u64 keys: this crate against std's BTreeSet, which
    // keeps no counts and so cannot answer rank without a scan.
    let mut rng = StdRng::seed_from_u64(13);
    let mut ours: OrderStatisticSet<u64> = (0..u64::from(PLAYERS)).map(|key| key * 2).collect();
    let mut std_set: BTreeSet<u64> = (0..u64::from(PLAYERS)).map(|key| key * 2).collect();
    let span = u64::from(PLAYERS) * 2;
    criterion.bench_function("set/insert_remove/1M", |bencher| {
        bencher.iter(|| {
            let key = rng.random_range(0..span);
            if !ours.remove(&key) {
                ours.insert(key);
            }
        })
    });
    criterion.bench_function("btreeset/insert_remove/1M", |bencher| {
        bencher.iter(|| {
            let key = rng.random_range(0..span);
            if !std_set.remove(&key) {
                std_set.insert(key);
            }
        })
    });
    criterion.bench_function("set/rank/1M", |bencher| {
        bencher.iter(|| black_box(ours.rank(&rng.random_range(0..span))))
    });
    let mut group = criterion.benchmark_group("btreeset");
    group.sample_size(10);
    group.bench_function("rank_by_scan/1M", |bencher| {
        bencher.iter(|| black_box(std_set.range(..rng.random_range(0..span)).count()))
    });
    group.finish();
}

/// Player table choice: a Vec indexed by dense id against a std HashMap.
fn table_benches(criterion: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(17);
    let vec_table: Vec<Option<(i64, u64)>> = (0..PLAYERS)
        .map(|player| Some((0, u64::from(player))))
        .collect();
    let map_table: HashMap<u32, (i64, u64)> = (0..PLAYERS)
        .map(|player| (player, (0, u64::from(player))))
        .collect();
    criterion.bench_function("table/vec_lookup/1M", |bencher| {
        bencher.iter(|| {
            black_box(
                vec_table
                    .get(rng.random_range(0..PLAYERS) as usize)
                    .copied()
                    .flatten(),
            )
        })
    });
    criterion.bench_function("table/hashmap_lookup/1M", |bencher| {
        bencher.iter(|| black_box(map_table.get(&rng.random_range(0..PLAYERS)).copied()))
    });
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples and no plots: on a busy 2-core machine the
    // analysis, not the measurement, was most of the run time.
    config = Criterion::default()
        .nresamples(5_000)
        .without_plots()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    targets = board_benches, set_benches, table_benches
}
criterion_main!(benches);
