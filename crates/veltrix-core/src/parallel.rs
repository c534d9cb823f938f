//! Applying a log with one thread per partition.
//!
//! Each partition applies its own players' events in log order, with no
//! coordination, except for global claims (first finders, prize supply):
//! a claim at log position `s` must count exactly the claims at positions
//! below `s`, so it waits until every other partition has finished all its
//! events below `s`. Each partition publishes its *horizon*: the position of
//! the event it is working on (all its events below it are done). The
//! claimant with the smallest position never waits on a partition that waits
//! on it, so this cannot deadlock.

use crate::boards::Boards;
use crate::dump::grants_in_log_order;
use crate::engine::partition_of;
use crate::event::Event;
use crate::partition::{Claims, Effect, Partition, Resource};
use crate::plan::Plan;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The result of a parallel run: what a dump needs.
pub struct ParallelRun {
    pub partitions: Vec<Partition>,
    pub boards: Boards,
    pub views: crate::analytics::Views,
    pub max_ts: Option<i64>,
}

struct Arbiter {
    horizons: Vec<AtomicU64>,
    claims: Mutex<HashMap<Resource, Vec<u64>>>,
}

struct PartitionClaims<'a> {
    arbiter: &'a Arbiter,
    me: usize,
}

impl Claims for PartitionClaims<'_> {
    fn claim(&mut self, resource: Resource, seq: u64) -> u32 {
        {
            // A poisoned lock means another partition panicked; its panic is
            // re-raised by the scope, so continuing with the data is fine.
            let mut claims = self
                .arbiter
                .claims
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            claims.entry(resource).or_default().push(seq);
        }
        for (other, horizon) in self.arbiter.horizons.iter().enumerate() {
            if other == self.me {
                continue;
            }
            while horizon.load(Ordering::Acquire) <= seq {
                std::thread::yield_now();
            }
        }
        let claims = self
            .arbiter
            .claims
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let earlier = claims[&resource].iter().filter(|&&s| s < seq).count();
        earlier as u32 + 1
    }
}

/// Applies `(seq, event)` records (in log order) on `partitions` threads.
pub fn run_parallel(plan: &Plan, records: &[(u64, Event)], partitions: usize) -> ParallelRun {
    assert!(partitions > 0);
    assert!(
        records.windows(2).all(|w| w[0].0 < w[1].0),
        "records must be in log order"
    );
    let mut split: Vec<Vec<&(u64, Event)>> = vec![Vec::new(); partitions];
    for record in records {
        split[partition_of(&record.1.player, partitions)].push(record);
    }
    let arbiter = Arbiter {
        horizons: split
            .iter()
            .map(|events| AtomicU64::new(events.first().map_or(u64::MAX, |r| r.0)))
            .collect(),
        claims: Mutex::new(HashMap::new()),
    };
    let done: Vec<Partition> = std::thread::scope(|scope| {
        let handles: Vec<_> = split
            .iter()
            .enumerate()
            .map(|(me, events)| {
                let arbiter = &arbiter;
                scope.spawn(move || {
                    let mut partition = Partition::default();
                    let mut claims = PartitionClaims { arbiter, me };
                    let mut effects: Vec<Effect> = Vec::new();
                    for (i, (seq, event)) in events.iter().map(|r| (r.0, &r.1)).enumerate() {
                        effects.clear();
                        partition.apply_event(plan, event, seq, &mut claims, &mut effects);
                        let next = events.get(i + 1).map_or(u64::MAX, |r| r.0);
                        arbiter.horizons[me].store(next, Ordering::Release);
                    }
                    partition
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut boards = Boards::new(&plan.config);
    for grant in grants_in_log_order(&done) {
        boards.record(&plan.config, grant);
    }
    let mut views = crate::analytics::Views::new(&plan.config);
    for (_, event) in records {
        views.record(&plan.config, event);
    }
    ParallelRun {
        views,
        max_ts: records.iter().map(|r| r.1.ts).max(),
        partitions: done,
        boards,
    }
}
