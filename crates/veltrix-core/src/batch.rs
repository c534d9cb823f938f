//! Applying a batch of accepted events with the partitions side by side.
//!
//! The server applies each request's events as one batch. One thread
//! applying them one by one is what limits the server's throughput (its
//! engine thread never sleeps under load while the other core has time to
//! spare), so [`Engine::apply_batch`] hands each partition its own players'
//! events, applies partition 0's on the calling thread and the others' on
//! scoped threads, then does the global part in log order on the calling
//! thread: leaderboards (from the grants), analytics views, `max_ts`.
//!
//! Partitions share nothing but claims (first finders, prize supply). A
//! claim at log position `s` must count exactly the claims below `s`, so,
//! as in `parallel`, it waits until every other partition has applied all
//! its events below `s` (each publishes the position it is working on, its
//! horizon); the claimant with the smallest position never waits on one that
//! waits on it. Claims in the batch are added to the engine's counts after
//! it, in log order.
//!
//! Invariant: the state afterwards, and each event's slot and effects, are
//! exactly what [`Engine::apply_event_located`] one event at a time gives
//! (property-tested in `tests/properties.rs`).

use crate::engine::{Engine, PlayerSlot};
use crate::event::Event;
use crate::partition::{Claims, CountingClaims, Effect, Partition, Resource};
use crate::plan::Plan;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Batches smaller than this are applied one event at a time: starting a
/// thread costs tens of microseconds, about as much as applying 20 events.
pub const PARALLEL_MIN_EVENTS: usize = 256;

/// What one partition applied: for each of its events, the event's index
/// in the batch, the player's id and where its effects end in `effects`.
#[derive(Default)]
struct Share {
    applied: Vec<(usize, u32, usize)>,
    effects: Vec<Effect>,
}

/// The claims made in a batch, and each partition's horizon.
struct Arbiter<'a> {
    before: &'a CountingClaims,
    horizons: Vec<AtomicU64>,
    made: Mutex<Vec<(Resource, u64)>>,
}

impl Arbiter<'_> {
    fn made(&self) -> std::sync::MutexGuard<'_, Vec<(Resource, u64)>> {
        // Poisoned: another partition panicked; the scope re-raises that
        // panic, so going on with the data is fine.
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct PartitionClaims<'a, 'b> {
    arbiter: &'a Arbiter<'b>,
    me: usize,
}

impl Claims for PartitionClaims<'_, '_> {
    fn claim(&mut self, resource: Resource, seq: u64) -> u32 {
        self.arbiter.made().push((resource, seq));
        for (other, horizon) in self.arbiter.horizons.iter().enumerate() {
            if other != self.me {
                while horizon.load(Ordering::Acquire) <= seq {
                    std::thread::yield_now();
                }
            }
        }
        let earlier = self
            .arbiter
            .made()
            .iter()
            .filter(|&&(r, s)| r == resource && s < seq)
            .count() as u32;
        self.arbiter.before.count(resource) + earlier + 1
    }
}

/// Sets a horizon to "done" however the partition's work ends, so that a
/// panic in one partition cannot leave another waiting for it forever.
struct Finished<'a>(&'a AtomicU64);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.store(u64::MAX, Ordering::Release);
    }
}

/// Applies partition `me`'s events of the batch (`mine`, indexes in log
/// order), publishing its horizon after each.
fn apply_share(
    partition: &mut Partition,
    plan: &Plan,
    events: &[(u64, Event)],
    mine: &[usize],
    arbiter: &Arbiter<'_>,
    me: usize,
) -> Share {
    let _finished = Finished(&arbiter.horizons[me]);
    let mut claims = PartitionClaims { arbiter, me };
    let mut share = Share::default();
    for (k, &index) in mine.iter().enumerate() {
        let (seq, event) = &events[index];
        let pid = partition.apply_event(plan, event, *seq, &mut claims, &mut share.effects);
        share.applied.push((index, pid, share.effects.len()));
        let next = mine.get(k + 1).map_or(u64::MAX, |&i| events[i].0);
        arbiter.horizons[me].store(next, Ordering::Release);
    }
    share
}

impl Engine {
    /// Applies accepted events at their log positions (`events` in log
    /// order), then calls `each` with every event's slot and effects, in
    /// log order. Partitions apply side by side (see the module) when the
    /// engine has more than one and the batch is large enough; the result
    /// is the same either way.
    pub fn apply_batch(
        &mut self,
        events: &[(u64, Event)],
        each: impl FnMut(&Engine, PlayerSlot, &[Effect]),
    ) {
        if self.partitions.len() > 1 && events.len() >= PARALLEL_MIN_EVENTS {
            self.apply_batch_in_parallel(events, each);
        } else {
            self.apply_batch_one_by_one(events, each);
        }
    }

    /// [`Engine::apply_batch`] one event at a time.
    pub fn apply_batch_one_by_one(
        &mut self,
        events: &[(u64, Event)],
        mut each: impl FnMut(&Engine, PlayerSlot, &[Effect]),
    ) {
        for (seq, event) in events {
            let slot = self.apply_event_located(*seq, event);
            let effects = std::mem::take(&mut self.effects);
            each(self, slot, &effects);
            self.effects = effects;
        }
    }

    /// [`Engine::apply_batch`] with every partition on its own thread,
    /// whatever the batch's size.
    pub fn apply_batch_in_parallel(
        &mut self,
        events: &[(u64, Event)],
        mut each: impl FnMut(&Engine, PlayerSlot, &[Effect]),
    ) {
        let Some(&(last_seq, _)) = events.last() else {
            return;
        };
        assert!(
            events[0].0 > self.last_seq && events.windows(2).all(|w| w[0].0 < w[1].0),
            "records must be applied in log order"
        );
        let count = self.partitions.len();
        let owners: Vec<usize> = events
            .iter()
            .map(|(_, event)| self.partition_of(&event.player))
            .collect();
        let mut mine: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (index, &owner) in owners.iter().enumerate() {
            mine[owner].push(index);
        }
        let arbiter = Arbiter {
            before: &self.claims,
            horizons: mine
                .iter()
                .map(|indexes| AtomicU64::new(indexes.first().map_or(u64::MAX, |&i| events[i].0)))
                .collect(),
            made: Mutex::new(Vec::new()),
        };
        let plan = &*self.plan;
        let shares: Vec<Share> = std::thread::scope(|scope| {
            let mut partitions = self.partitions.iter_mut();
            let first = partitions.next().expect("at least one partition");
            let others: Vec<_> = partitions
                .zip(&mine[1..])
                .enumerate()
                .map(|(k, (partition, indexes))| {
                    let arbiter = &arbiter;
                    scope.spawn(move || {
                        apply_share(partition, plan, events, indexes, arbiter, k + 1)
                    })
                })
                .collect();
            let mut shares = vec![apply_share(first, plan, events, &mine[0], &arbiter, 0)];
            shares.extend(others.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }));
            shares
        });
        let mut made = arbiter.made.into_inner().unwrap_or_else(|e| e.into_inner());
        made.sort_by_key(|&(_, seq)| seq);
        for (resource, seq) in made {
            self.claims.claim(resource, seq);
        }
        // The global part, in log order.
        let mut next = vec![0usize; count];
        let mut located = Vec::with_capacity(events.len());
        for (index, (_, event)) in events.iter().enumerate() {
            let owner = owners[index];
            let share = &shares[owner];
            let (at, pid, end) = share.applied[next[owner]];
            debug_assert_eq!(at, index, "a partition applied its events in log order");
            let start = next[owner]
                .checked_sub(1)
                .map_or(0, |previous| share.applied[previous].2);
            next[owner] += 1;
            self.max_ts = Some(self.max_ts.map_or(event.ts, |m| m.max(event.ts)));
            self.views.record(&self.plan.config, event);
            for effect in &share.effects[start..end] {
                if let Effect::Granted(grant) = effect {
                    self.boards
                        .record(&self.plan.config, &self.partitions[owner].grants[*grant]);
                }
            }
            located.push((
                PlayerSlot {
                    partition: owner,
                    pid,
                },
                start..end,
            ));
        }
        self.last_seq = last_seq;
        self.effects.clear();
        for (index, (slot, effects)) in located.into_iter().enumerate() {
            each(self, slot, &shares[owners[index]].effects[effects]);
        }
    }
}
