//! What a snapshot copy costs the engine afterwards: the first write to
//! each player and leaderboard the copy shares copies it (copy-on-write).
//! Prints, every 100k events of the shared workload (100k players, Zipf
//! activity), how long 1,000 events take to apply
//!
//! - with no copy outstanding,
//! - right after a copy (the copies land in this batch),
//! - right after a copy whose recently active players and leaderboards were
//!   un-shared first (what the server does while idle; see
//!   `veltrix-server/src/warming.rs`), and how long that un-sharing took,
//! - right after a copy that let go of the same players itself first (what
//!   the server's snapshot thread does on the other core; `Engine::let_go`),
//!   and how long letting go took,
//! - with no copy but right after 64 MiB of unrelated memory traffic (what
//!   a snapshot encoder streaming on the other core does to the caches).
//!
//! cargo run --release -p veltrix-core --example cow_cost [-- EVENTS]

use std::collections::HashMap;
use std::time::{Duration, Instant};
use veltrix_core::engine::PlayerSlot;
use veltrix_core::{Engine, Event, Ingest, Plan, Submission, ndjson_lines};

mod common;

const BATCH: usize = 1000;
/// As the server's `warming::RECENT_EVENTS`.
const RECENT_EVENTS: usize = 4096;
const EVERY: usize = 100_000;

fn main() {
    let (plan, bytes) = common::example_workload();
    let parsed = parse(&plan, &bytes);
    let mut engine = Engine::new(plan.clone(), 1);
    let warm_up = parsed.len() / 2;
    apply(&mut engine, &parsed[..warm_up]);
    println!(
        "events applied | 1,000 events: no copy | after a copy | after a warmed copy (warming took) | after a copy that let go (letting go took) | after 64 MiB streamed"
    );
    let mut at = warm_up;
    while at + EVERY <= parsed.len() {
        let plain = apply(&mut engine, &parsed[at..at + BATCH]);
        let copy = engine.snapshot_copy();
        let cold = apply(&mut engine, &parsed[at + BATCH..at + 2 * BATCH]);
        drop(copy);
        // The next batch again, on a fresh copy, warmed first.
        apply(&mut engine, &parsed[at + 2 * BATCH..at + 3 * BATCH]);
        let copy = engine.snapshot_copy();
        let started = Instant::now();
        for index in 0..plan.config.leaderboards.len() {
            if let Some(board) = engine.copy_of_shared_board(index) {
                engine.install_board(board);
            }
        }
        for (_, event) in &parsed[at + 3 * BATCH - RECENT_EVENTS..at + 3 * BATCH] {
            let slot = engine.locate_player(&event.player);
            if let Some(player) = slot.and_then(|slot| engine.copy_of_shared_player(slot)) {
                engine.install_player(player);
            }
        }
        let warming = started.elapsed();
        let warmed = apply(&mut engine, &parsed[at + 3 * BATCH..at + 4 * BATCH]);
        drop(copy);
        // Again on a fresh copy, which lets go of the same players itself
        // (what the server's snapshot thread does first).
        let slots = most_active_first(
            &engine,
            &parsed[at + 4 * BATCH - RECENT_EVENTS..at + 4 * BATCH],
        );
        let mut copy = engine.snapshot_copy();
        let started = Instant::now();
        copy.let_go(&slots);
        let letting_go = started.elapsed();
        let let_go = apply(&mut engine, &parsed[at + 4 * BATCH..at + 5 * BATCH]);
        drop(copy);
        // No copy, but 64 MiB of other memory traffic first (as a snapshot
        // encoder on the other core makes): the state's working set is out
        // of the caches.
        stream_through_memory(64 << 20);
        let evicted = apply(&mut engine, &parsed[at + 5 * BATCH..at + 6 * BATCH]);
        println!(
            "{:>14} | {:>9} | {:>12} | {:>12} ({}) | {:>12} ({}) | {:>12}",
            at,
            ms(plain),
            ms(cold),
            ms(warmed),
            ms(warming),
            ms(let_go),
            ms(letting_go),
            ms(evicted)
        );
        apply(&mut engine, &parsed[at + 6 * BATCH..at + EVERY]);
        at += EVERY;
    }
}

/// The slots of the players of `recent`, the most active first.
fn most_active_first(engine: &Engine, recent: &[(u64, Event)]) -> Vec<PlayerSlot> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, event) in recent {
        *counts.entry(&*event.player).or_default() += 1;
    }
    let mut players: Vec<(&str, usize)> = counts.into_iter().collect();
    players.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    players
        .into_iter()
        .filter_map(|(player, _)| engine.locate_player(player))
        .collect()
}

fn stream_through_memory(bytes: usize) {
    let buffer = vec![1u8; bytes];
    let sum: u64 = buffer.iter().map(|&b| u64::from(b)).sum();
    std::hint::black_box(sum);
}

fn parse(plan: &Plan, ndjson: &[u8]) -> Vec<(u64, Event)> {
    let mut ingest = Ingest::new();
    ndjson_lines(ndjson)
        .filter_map(|(line, text)| match ingest.submit(plan, text, line, 0) {
            Submission::Accepted { seq, event } => Some((seq, event)),
            _ => None,
        })
        .collect()
}

fn apply(engine: &mut Engine, events: &[(u64, Event)]) -> Duration {
    let started = Instant::now();
    for (seq, event) in events {
        engine.apply_event(*seq, event);
    }
    started.elapsed()
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}
