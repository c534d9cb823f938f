//! How much of a snapshot changes between two snapshots: what an
//! incremental snapshot format (write only what changed, refer to earlier
//! files for the rest) would write. Prints, every 100k events of the shared
//! workload (100k players, Zipf activity, one partition), the snapshot's
//! size and, by part, how much of it changed since the previous one: the
//! players (all of them, those whose state changed, and the chunks of 1,024
//! holding a changed one), the grants (append-only) and the dedup keys
//! (append-only, 16 bytes an accepted event).
//!
//! cargo run --release -p veltrix-core --example snapshot_churn [-- EVENTS]

use std::sync::Arc;
use veltrix_core::{Engine, Ingest, Submission, ndjson_lines};

mod common;

const EVERY: usize = 100_000;

fn main() {
    let (plan, bytes) = common::example_workload();
    let mut ingest = Ingest::new();
    let mut engine = Engine::new(plan.clone(), 1);
    let mut previous: Option<Engine> = None;
    let mut accepted = 0usize;
    let mut accepted_then = 0usize;
    println!(
        "events | snapshot MB | players: all MB, changed (MB), chunks changed (MB) | grants: all MB, new MB | keys: all MB, new MB"
    );
    for (line, text) in ndjson_lines(&bytes) {
        if let Submission::Accepted { seq, event } = ingest.submit(&plan, text, line, 0) {
            engine.apply_event(seq, &event);
            accepted += 1;
        }
        if (line as usize).is_multiple_of(EVERY) {
            let copy = engine.snapshot_copy();
            let keys = (accepted, accepted - accepted_then);
            report(line as usize, keys, &ingest, &copy, previous.as_ref());
            previous = Some(copy);
            accepted_then = accepted;
        }
    }
}

/// `keys`: the dedup keys (one an accepted event) in all, and new since the
/// previous snapshot.
fn report(
    events: usize,
    (keys, new_keys): (usize, usize),
    ingest: &Ingest,
    copy: &Engine,
    previous: Option<&Engine>,
) {
    let players = &copy.partitions[0].players;
    let before = previous.map(|engine| &engine.partitions[0].players);
    let (mut all, mut changed, mut changed_bytes, mut chunks, mut chunk_bytes) = (0, 0, 0, 0, 0);
    for (i, chunk) in players.chunks().iter().enumerate() {
        let old = before.and_then(|players| players.chunks().get(i));
        let chunk_changed = !old.is_some_and(|old| Arc::ptr_eq(old, chunk));
        let mut bytes_in_chunk = 0;
        for (j, player) in chunk.iter().enumerate() {
            let size = postcard::to_allocvec(&**player).expect("encodes").len();
            all += size;
            bytes_in_chunk += size;
            if !old
                .and_then(|old| old.get(j))
                .is_some_and(|old| Arc::ptr_eq(old, player))
            {
                changed += 1;
                changed_bytes += size;
            }
        }
        if chunk_changed {
            chunks += 1;
            chunk_bytes += bytes_in_chunk;
        }
    }
    let grants = &copy.partitions[0].grants;
    let grant_bytes = postcard::to_allocvec(grants).expect("encodes").len();
    let new_grants = grants.len() - previous.map_or(0, |engine| engine.partitions[0].grants.len());
    let per_grant = grant_bytes as f64 / grants.len().max(1) as f64;
    let total = veltrix_core::snapshot::encode(ingest, copy).len();
    let mb = |bytes: f64| bytes / 1e6;
    println!(
        "{events:>9} | {:>6.1} | {:>5.1}, {changed} ({:.1}), {chunks} of {} ({:.1}) | {:>5.1}, {:.1} | {:>5.1}, {:.1}",
        mb(total as f64),
        mb(all as f64),
        mb(changed_bytes as f64),
        players.chunks().len(),
        mb(chunk_bytes as f64),
        mb(grant_bytes as f64),
        mb(new_grants as f64 * per_grant),
        mb(keys as f64 * 16.0),
        mb(new_keys as f64 * 16.0),
    );
}
