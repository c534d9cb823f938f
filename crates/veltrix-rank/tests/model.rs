//! The set and the board against reference models, after every operation.
//!
//! Small fan-outs (4 and 6) make a few hundred operations split and merge
//! nodes on every level, including root growth and collapse.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veltrix_rank::{Board, OrderStatisticSet, Row};

#[derive(Clone, Debug)]
enum SetOp {
    Insert(u16),
    Remove(u16),
    Query(u16),
}

fn set_op(key_range: u16) -> impl Strategy<Value = SetOp> {
    prop_oneof![
        3 => (0..key_range).prop_map(SetOp::Insert),
        2 => (0..key_range).prop_map(SetOp::Remove),
        1 => (0..key_range).prop_map(SetOp::Query),
    ]
}

fn check_set<const B: usize>(set: &OrderStatisticSet<u16, B>, model: &BTreeSet<u16>, probe: u16) {
    set.check_invariants().unwrap();
    assert_eq!(set.len(), model.len());
    assert_eq!(set.is_empty(), model.is_empty());
    let expected = model.range(..probe).count();
    assert_eq!(set.contains(&probe), model.contains(&probe));
    assert_eq!(set.rank(&probe), model.contains(&probe).then_some(expected));
    assert_eq!(set.select(expected), model.iter().nth(expected).copied());
    assert!(
        set.iter_from(expected)
            .eq(model.iter().skip(expected).copied())
    );
    assert_eq!(set.select(model.len()), None);
}

fn run_set_ops<const B: usize>(ops: &[SetOp]) {
    let mut set = OrderStatisticSet::<u16, B>::default();
    let mut model = BTreeSet::new();
    for op in ops {
        let probe = match *op {
            SetOp::Insert(key) => {
                assert_eq!(set.insert(key), model.insert(key));
                key
            }
            SetOp::Remove(key) => {
                assert_eq!(set.remove(&key), model.remove(&key));
                key
            }
            SetOp::Query(key) => key,
        };
        check_set(&set, &model, probe);
    }
    assert!(set.iter().eq(model.iter().copied()));
    for (index, key) in model.iter().enumerate() {
        assert_eq!(set.rank(key), Some(index));
        assert_eq!(set.select(index), Some(*key));
    }
    // A rebuild from the keys is equal and valid too.
    let rebuilt: OrderStatisticSet<u16, B> = set.iter().collect();
    rebuilt.check_invariants().unwrap();
    assert!(rebuilt == set);
}

#[derive(Clone, Debug)]
enum BoardOp {
    SetScore { player: u32, score: i64, seq: u64 },
    Add { player: u32, delta: i64, seq: u64 },
    Around { player: u32, n: usize },
    Page { offset: usize, limit: usize },
}

fn player() -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => 0u32..40,
        1 => 100_000u32..100_004,
        1 => (u32::MAX - 3)..=u32::MAX,
    ]
}

fn board_op() -> impl Strategy<Value = BoardOp> {
    // Narrow score and seq ranges so ties on score and on (score, seq) are common.
    prop_oneof![
        4 => (player(), -8i64..8, 0u64..30).prop_map(|(player, score, seq)| BoardOp::SetScore { player, score, seq }),
        4 => (player(), -3i64..4, 0u64..30).prop_map(|(player, delta, seq)| BoardOp::Add { player, delta, seq }),
        1 => (player(), prop_oneof![0usize..4, Just(usize::MAX)]).prop_map(|(player, n)| BoardOp::Around { player, n }),
        1 => (0usize..60, prop_oneof![0usize..12, Just(usize::MAX)]).prop_map(|(offset, limit)| BoardOp::Page { offset, limit }),
    ]
}

/// The reference board: a map, sorted in full on every query.
#[derive(Default)]
struct ModelBoard {
    standings: BTreeMap<u32, (i64, u64)>,
}

impl ModelBoard {
    fn rows(&self) -> Vec<Row> {
        let mut sorted: Vec<(u32, i64, u64)> = self
            .standings
            .iter()
            .map(|(&player, &(score, seq))| (player, score, seq))
            .collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
        sorted
            .into_iter()
            .enumerate()
            .map(|(index, (player, score, _))| Row {
                rank: index as u64 + 1,
                player,
                score,
            })
            .collect()
    }

    fn page(&self, offset: usize, limit: usize) -> Vec<Row> {
        self.rows().into_iter().skip(offset).take(limit).collect()
    }

    fn around(&self, player: u32, n: usize) -> Vec<Row> {
        let rows = self.rows();
        let Some(position) = rows.iter().position(|row| row.player == player) else {
            return Vec::new();
        };
        let first = position.saturating_sub(n);
        let last = position.saturating_add(n).min(rows.len() - 1);
        rows[first..=last].to_vec()
    }
}

fn check_board(board: &Board, model: &ModelBoard) {
    board.check_invariants().unwrap();
    let rows = model.rows();
    assert_eq!(board.len(), rows.len());
    assert_eq!(board.iter().collect::<Vec<_>>(), rows);
    for row in &rows {
        assert_eq!(board.rank(row.player), Some(row.rank));
        assert_eq!(board.score(row.player), Some(row.score));
    }
    let mut entries: Vec<(u32, i64, u64)> = board.entries().collect();
    entries.sort_unstable();
    let expected: Vec<(u32, i64, u64)> = model
        .standings
        .iter()
        .map(|(&player, &(score, seq))| (player, score, seq))
        .collect();
    assert_eq!(entries, expected);
}

fn run_board_ops(ops: &[BoardOp]) {
    let mut board = Board::new();
    let mut model = ModelBoard::default();
    for op in ops {
        match *op {
            BoardOp::SetScore { player, score, seq } => {
                board.set_score(player, score, seq);
                model.standings.insert(player, (score, seq));
            }
            BoardOp::Add { player, delta, seq } => {
                let expected = match model.standings.get(&player).copied() {
                    Some((score, _)) if delta == 0 => score,
                    Some((score, _)) => {
                        let score = score.saturating_add(delta);
                        model.standings.insert(player, (score, seq));
                        score
                    }
                    None => {
                        model.standings.insert(player, (delta, seq));
                        delta
                    }
                };
                assert_eq!(board.add(player, delta, seq), expected);
            }
            BoardOp::Around { player, n } => {
                assert_eq!(board.around(player, n), model.around(player, n));
                assert_eq!(
                    board.rank(player).is_some(),
                    model.standings.contains_key(&player)
                );
            }
            BoardOp::Page { offset, limit } => {
                assert_eq!(board.page(offset, limit), model.page(offset, limit));
            }
        }
        check_board(&board, &model);
    }
    let rebuilt = Board::from_entries(board.entries());
    rebuilt.check_invariants().unwrap();
    assert_eq!(rebuilt, board);
    assert_eq!(rebuilt.iter().collect::<Vec<_>>(), model.rows());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn set_matches_btreeset_fanout_4(ops in prop::collection::vec(set_op(300), 1..600)) {
        run_set_ops::<4>(&ops);
    }

    #[test]
    fn set_matches_btreeset_fanout_6_dense_keys(ops in prop::collection::vec(set_op(60), 1..400)) {
        run_set_ops::<6>(&ops);
    }

    #[test]
    fn set_from_keys_matches_sorted_dedup(keys in prop::collection::vec(any::<u16>(), 0..700)) {
        let set = OrderStatisticSet::<u16, 4>::from_keys(keys.iter().copied());
        set.check_invariants().unwrap();
        let model: BTreeSet<u16> = keys.into_iter().collect();
        prop_assert!(set.iter().eq(model.iter().copied()));
    }

    #[test]
    fn board_matches_sorted_model(ops in prop::collection::vec(board_op(), 1..300)) {
        run_board_ops(&ops);
    }

    #[test]
    fn board_from_entries_any_order(entries in prop::collection::vec((player(), -5i64..5, 0u64..10), 0..200)) {
        let board = Board::from_entries(entries.iter().copied());
        board.check_invariants().unwrap();
        let mut model = ModelBoard::default();
        for &(player, score, seq) in &entries {
            model.standings.insert(player, (score, seq));
        }
        prop_assert_eq!(board.iter().collect::<Vec<_>>(), model.rows());
    }
}

/// Long seeded runs: many thousands of operations at several fan-outs, with
/// a full check every few hundred steps. The seed is printed on failure via
/// the assertion message.
fn long_random_run<const B: usize>(seed: u64, steps: usize, key_range: u32) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = OrderStatisticSet::<u32, B>::default();
    let mut model = BTreeSet::new();
    for step in 0..steps {
        let key = rng.random_range(0..key_range);
        // Drift between growing and shrinking phases so the tree's height
        // goes up and down several times.
        let insert_bias = if (step / 5_000) % 2 == 0 { 0.65 } else { 0.35 };
        if rng.random_bool(insert_bias) {
            assert_eq!(
                set.insert(key),
                model.insert(key),
                "seed {seed} step {step}"
            );
        } else {
            assert_eq!(
                set.remove(&key),
                model.remove(&key),
                "seed {seed} step {step}"
            );
        }
        if step % 500 == 0 {
            set.check_invariants()
                .unwrap_or_else(|error| panic!("seed {seed} step {step}: {error}"));
            assert!(
                set.iter().eq(model.iter().copied()),
                "seed {seed} step {step}"
            );
            let index = rng.random_range(0..=model.len());
            assert_eq!(
                set.select(index),
                model.iter().nth(index).copied(),
                "seed {seed}"
            );
        }
    }
    set.check_invariants().unwrap();
    for (index, key) in model.iter().enumerate() {
        assert_eq!(set.rank(key), Some(index), "seed {seed}");
    }
}

#[test]
fn long_random_runs_at_several_fanouts() {
    long_random_run::<4>(1, 40_000, 4_000);
    long_random_run::<8>(2, 40_000, 4_000);
    long_random_run::<32>(3, 40_000, 20_000);
    long_random_run::<64>(4, 40_000, 20_000);
}

#[test]
fn board_long_random_run_with_monotonic_seq() {
    let seed = 5;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut board = Board::new();
    let mut model = ModelBoard::default();
    for seq in 0..20_000u64 {
        let player = rng.random_range(0..2_000u32);
        let delta = rng.random_range(0..5i64);
        let score = board.add(player, delta, seq);
        let entry = model.standings.entry(player).or_insert((0, seq));
        if delta != 0 {
            *entry = (entry.0 + delta, seq);
        }
        assert_eq!(score, entry.0, "seed {seed} seq {seq}");
        if seq % 2_000 == 0 {
            check_board(&board, &model);
        }
    }
    check_board(&board, &model);
}
