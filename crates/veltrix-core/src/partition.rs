//! A partition owns a set of players and applies their events in log order.
//!
//! Applying one event runs in three phases so that every expression sees the
//! player as they were before the event had any effect (SPEC §2):
//! 1. record the event into the player's rolling windows (windows include the
//!    triggering event);
//! 2. decide: rules in configuration order, then hunts — evaluation only reads
//!    the player, except rule-local bookkeeping (once/limit/cooldown/sequence
//!    candidates) that no expression can observe;
//! 3. apply the grants and hunt progress in the specified order.
//!
//! Global decisions (first finders, prize supply) go through [`Claims`], which
//! answers by log order across all partitions.

use crate::cow::CowVec;
use crate::engine::{FastMap, id_key};
use crate::event::{Event, FieldValue};
use crate::grant::{Cause, Grant, Spend, grant_id};
use crate::plan::Plan;
use crate::player::{Candidate, LedgerEntry, PlayerState};
use crate::windows::period_index;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use veltrix_config::veltrix_expr::{Context, Period, Value};
use veltrix_config::{HuntId, Reward, StageIndex, StageKind, Trigger};

/// A globally limited resource, decided by log order.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Resource {
    FirstFinder(HuntId, StageIndex),
    Prize(HuntId),
}

/// Answers "how many claims on this resource have a smaller log position,
/// plus one": the claimant's 1-based rank. Implementations must return the
/// same answer however the log is split over partitions.
pub trait Claims {
    fn claim(&mut self, resource: Resource, seq: u64) -> u32;
}

/// Claims for a single thread that sees the log in order.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CountingClaims {
    counts: HashMap<Resource, u32>,
}

impl CountingClaims {
    /// Every claim count, in a stable order (for snapshots).
    pub fn counts(&self) -> Vec<(Resource, u32)> {
        let mut all: Vec<(Resource, u32)> = self.counts.iter().map(|(r, c)| (*r, *c)).collect();
        all.sort();
        all
    }

    pub fn from_counts(counts: impl IntoIterator<Item = (Resource, u32)>) -> Self {
        CountingClaims {
            counts: counts.into_iter().collect(),
        }
    }

    pub fn count(&self, resource: Resource) -> u32 {
        self.counts.get(&resource).copied().unwrap_or(0)
    }
}

impl Claims for CountingClaims {
    fn claim(&mut self, resource: Resource, _seq: u64) -> u32 {
        let count = self.counts.entry(resource).or_insert(0);
        *count += 1;
        *count
    }
}

/// What an applied record changed, for the live stream and leaderboards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Index into the partition's `grants`.
    Granted(usize),
    StageSolved {
        player: u32,
        hunt: HuntId,
        stage: StageIndex,
    },
    HuntCompleted {
        player: u32,
        hunt: HuntId,
    },
}

/// Outcome of a spend request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpendOutcome {
    /// Index into the partition's `spends`.
    Applied(usize),
    /// The key was used before: the earlier spend, unchanged.
    AlreadyApplied(usize),
    Insufficient {
        balance: i64,
    },
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    /// Each player behind its own `Arc`, so a snapshot copy shares every
    /// player and the first write after it copies only that player.
    pub players: CowVec<Arc<PlayerState>>,
    /// Player ids by the [`id_key`] of the name. Rebuilt from `players` on
    /// restore (see `rebuild_index`). Keyed by the 128-bit hash rather than
    /// the name: a lookup then compares keys held in the table itself
    /// instead of following each candidate's pointer to its name (a cache
    /// miss per event that was a tenth of the engine thread's time in the
    /// server's profile). Two names share a key with probability about
    /// n²/2¹²⁹, as for the dedup set; debug builds check every hit.
    #[serde(skip)]
    index: FastMap<u128, u32>,
    pub grants: CowVec<Grant>,
    pub spends: CowVec<Spend>,
    /// Answer digests of generated puzzle instances, by (player, hunt, stage):
    /// a cache, recomputed on demand after a restore.
    #[serde(skip)]
    puzzle_digests: FastMap<(u32, HuntId, StageIndex), Option<[u8; 32]>>,
}

struct PendingGrant<'p> {
    cause: Cause,
    events: Vec<Arc<str>>,
    reward: RewardRef<'p>,
}

enum RewardRef<'p> {
    Config(&'p Reward),
    Points(i64),
}

/// A stage solved by the current event, with the collect item it took (if any).
struct Solve {
    hunt: HuntId,
    stage: StageIndex,
    solved: bool,
    item: Option<usize>,
    /// No stage: the player has solved every stage but the hunt is not
    /// completed yet — only possible after a configuration switch removed
    /// the stages they had left. The event completes the hunt.
    complete_only: bool,
}

impl Solve {
    /// The event solves stage `stage` of hunt `hunt` outright.
    fn stage(hunt: HuntId, stage: StageIndex) -> Solve {
        Solve {
            hunt,
            stage,
            solved: true,
            item: None,
            complete_only: false,
        }
    }
}

impl Partition {
    /// Drops cached puzzle answer digests (after a configuration switch:
    /// hunt and stage indices, specs and the secret may have changed).
    pub(crate) fn clear_caches(&mut self) {
        self.puzzle_digests.clear();
    }

    /// Rebuilds the name index after the players were restored.
    pub fn rebuild_index(&mut self) {
        self.index = self
            .players
            .iter()
            .enumerate()
            .map(|(i, p)| (id_key(&p.name), i as u32))
            .collect();
        debug_assert_eq!(self.index.len(), self.players.len(), "names are unique");
    }

    pub fn player_id(&self, name: &str) -> Option<u32> {
        let id = self.index.get(&id_key(name)).copied();
        debug_assert!(id.is_none_or(|id| &*self.players[id as usize].name == name));
        id
    }

    pub fn player(&self, name: &str) -> Option<&PlayerState> {
        self.player_id(name).map(|i| &*self.players[i as usize])
    }

    /// The partition without its caches and indexes: what a snapshot
    /// encodes. Cheap (see [`CowVec`]); the copy cannot apply records.
    pub fn snapshot_copy(&self) -> Partition {
        Partition {
            players: self.players.clone(),
            grants: self.grants.clone(),
            spends: self.spends.clone(),
            ..Partition::default()
        }
    }

    fn player_id_or_insert(&mut self, name: &Arc<str>, key: u128) -> u32 {
        debug_assert_eq!(key, id_key(name), "the name's key");
        if let Some(&id) = self.index.get(&key) {
            debug_assert_eq!(self.players[id as usize].name, *name);
            return id;
        }
        let id = self.players.len() as u32;
        self.players.push(Arc::new(PlayerState::new(name.clone())));
        self.index.insert(key, id);
        id
    }

    /// Applies `event`; returns its player's id in this partition.
    pub fn apply_event(
        &mut self,
        plan: &Plan,
        event: &Event,
        seq: u64,
        claims: &mut dyn Claims,
        effects: &mut Vec<Effect>,
    ) -> u32 {
        let key = id_key(&event.player);
        self.apply_event_keyed(plan, event, key, seq, claims, effects)
    }

    /// As [`Partition::apply_event`], with the [`id_key`] of the event's
    /// player computed by the caller.
    pub fn apply_event_keyed(
        &mut self,
        plan: &Plan,
        event: &Event,
        player_key: u128,
        seq: u64,
        claims: &mut dyn Claims,
        effects: &mut Vec<Effect>,
    ) -> u32 {
        let config = &*plan.config;
        let pid = self.player_id_or_insert(&event.player, player_key);
        let player = player_mut(&mut self.players, pid);
        player.windows.record(
            &plan.tracking,
            event.event_type,
            event.ts,
            |slot| event.data[slot as usize].as_f64(),
            config.engine.lateness_ms,
        );
        let rule_grants = decide_rules(plan, player, event, seq);
        let solves = decide_hunts(plan, player, pid, event, &mut self.puzzle_digests);
        for grant in rule_grants {
            self.grant(plan, pid, grant, event, seq, effects);
        }
        self.apply_solves(plan, pid, &solves, event, seq, claims, effects);
        pid
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_solves(
        &mut self,
        plan: &Plan,
        pid: u32,
        solves: &[Solve],
        event: &Event,
        seq: u64,
        claims: &mut dyn Claims,
        effects: &mut Vec<Effect>,
    ) {
        let config = &*plan.config;
        let mut index = 0;
        while index < solves.len() {
            let hunt_id = solves[index].hunt;
            let hunt = &config.hunts[hunt_id as usize];
            let mut solved_any = false;
            while index < solves.len() && solves[index].hunt == hunt_id {
                let solve = &solves[index];
                index += 1;
                if solve.complete_only {
                    solved_any = true;
                    continue;
                }
                let stage = &hunt.stages[solve.stage as usize];
                let progress = player_mut(&mut self.players, pid).hunt_mut(hunt_id);
                if let (Some(item), StageKind::Collect { items, .. }) = (solve.item, &stage.kind) {
                    if progress.collected.len() < hunt.stages.len() {
                        progress.collected.resize(hunt.stages.len(), Vec::new());
                    }
                    let found = &mut progress.collected[solve.stage as usize];
                    found.resize(items.len(), false);
                    found[item] = true;
                }
                if !solve.solved {
                    continue;
                }
                debug_assert!(!progress.is_solved(solve.stage), "stage solved twice");
                progress.solved.push(solve.stage);
                solved_any = true;
                effects.push(Effect::StageSolved {
                    player: pid,
                    hunt: hunt_id,
                    stage: solve.stage,
                });
                if let Some(reward) = &stage.reward {
                    let grant = PendingGrant {
                        cause: Cause::Stage(hunt_id, solve.stage),
                        events: vec![event.id.clone()],
                        reward: RewardRef::Config(reward),
                    };
                    self.grant(plan, pid, grant, event, seq, effects);
                }
                if !stage.first_finders.is_empty() {
                    let rank = claims.claim(Resource::FirstFinder(hunt_id, solve.stage), seq);
                    if let Some(&bonus) = stage.first_finders.get(rank as usize - 1)
                        && bonus > 0
                    {
                        let grant = PendingGrant {
                            cause: Cause::FirstFinder(hunt_id, solve.stage),
                            events: vec![event.id.clone()],
                            reward: RewardRef::Points(bonus),
                        };
                        self.grant(plan, pid, grant, event, seq, effects);
                    }
                }
            }
            let progress = player_mut(&mut self.players, pid).hunt_mut(hunt_id);
            if solved_any && progress.solved.len() == hunt.stages.len() && !progress.completed {
                progress.completed = true;
                effects.push(Effect::HuntCompleted {
                    player: pid,
                    hunt: hunt_id,
                });
                if let Some(reward) = &hunt.completion {
                    let grant = PendingGrant {
                        cause: Cause::Completion(hunt_id),
                        events: vec![event.id.clone()],
                        reward: RewardRef::Config(reward),
                    };
                    self.grant(plan, pid, grant, event, seq, effects);
                }
                if let Some(prize) = &hunt.prize {
                    let rank = claims.claim(Resource::Prize(hunt_id), seq);
                    if rank <= prize.supply {
                        let grant = PendingGrant {
                            cause: Cause::Prize(hunt_id),
                            events: vec![event.id.clone()],
                            reward: RewardRef::Config(&prize.reward),
                        };
                        self.grant(plan, pid, grant, event, seq, effects);
                    }
                }
            }
        }
    }

    fn grant(
        &mut self,
        plan: &Plan,
        pid: u32,
        pending: PendingGrant<'_>,
        event: &Event,
        seq: u64,
        effects: &mut Vec<Effect>,
    ) {
        let source = match pending.cause {
            Cause::Rule(r) => &plan.rule_sources[r as usize],
            Cause::Stage(h, s) => &plan.stage_sources[h as usize][s as usize],
            Cause::FirstFinder(h, s) => &plan.first_finder_sources[h as usize][s as usize],
            Cause::Completion(h) => &plan.completion_sources[h as usize],
            Cause::Prize(h) => &plan.prize_sources[h as usize],
            // Invariant: new grants always come from the active configuration.
            Cause::Retired => unreachable!("a new grant has a configured cause"),
        };
        let (points, currencies, badge) = match pending.reward {
            RewardRef::Config(r) => (r.points, r.currencies.clone(), r.badge),
            RewardRef::Points(p) => (p, Vec::new(), None),
        };
        let player = player_mut(&mut self.players, pid);
        let id = grant_id(source, &player.name, &pending.events);
        player.points += points;
        for &(currency, amount) in &currencies {
            player.credit(currency, amount, id);
        }
        if let Some(badge) = badge
            && !player.has_badge(badge)
        {
            player.badges.push(badge);
        }
        let index = self.grants.len();
        player.ledger.push(LedgerEntry::Grant(index));
        self.grants.push(Grant {
            id,
            seq,
            ts: event.ts,
            player: player.name.clone(),
            cause: pending.cause,
            source: source.clone(),
            events: pending.events,
            points,
            currencies,
            badge,
        });
        effects.push(Effect::Granted(index));
    }

    /// Applies a spend: at most once per (player, key), never below zero. A
    /// refused or repeated spend changes nothing (no player is created).
    pub fn apply_spend(
        &mut self,
        player_name: &str,
        currency: u16,
        amount: i64,
        key: &str,
        seq: u64,
    ) -> SpendOutcome {
        let Some(pid) = self.player_id(player_name) else {
            return SpendOutcome::Insufficient { balance: 0 };
        };
        let player = player_mut(&mut self.players, pid);
        if let Some(&(_, ledger_index)) = player.spend_keys.iter().find(|(k, _)| &**k == key)
            && let LedgerEntry::Spend(i) = player.ledger[ledger_index]
        {
            return SpendOutcome::AlreadyApplied(i);
        }
        let Some(units) = player.debit(currency, amount) else {
            return SpendOutcome::Insufficient {
                balance: player.balance(currency),
            };
        };
        let index = self.spends.len();
        player.spend_keys.push((key.into(), player.ledger.len()));
        player.ledger.push(LedgerEntry::Spend(index));
        self.spends.push(Spend {
            key: key.into(),
            seq,
            player: player.name.clone(),
            currency,
            amount,
            units,
        });
        SpendOutcome::Applied(index)
    }
}

/// A player to write to, copied first if a snapshot copy shares it.
fn player_mut(players: &mut CowVec<Arc<PlayerState>>, pid: u32) -> &mut PlayerState {
    Arc::make_mut(&mut players[pid as usize])
}

// ---- phase 2: decisions ------------------------------------------------------

fn decide_rules<'p>(
    plan: &'p Plan,
    player: &mut PlayerState,
    event: &Event,
    seq: u64,
) -> Vec<PendingGrant<'p>> {
    let config = &*plan.config;
    let mut grants = Vec::new();
    let mut consumed_by: Vec<u16> = Vec::new();
    for &r in &plan.rules_by_type[event.event_type as usize] {
        let rule = &config.rules[r as usize];
        let matched = match &rule.trigger {
            Trigger::On(_) => Some(Vec::new()),
            Trigger::Sequence { steps, within_ms } => player
                .rule(r)
                .and_then(|state| find_sequence(&state.candidates, steps, *within_ms, event.ts)),
        };
        let Some(matched) = matched else { continue };
        if let Some(when) = &rule.when
            && !when.eval_condition(&EvalCtx {
                plan,
                event,
                player,
            })
        {
            continue;
        }
        let t = event.ts;
        if let Some(state) = player.rule(r) {
            if rule.once && state.granted {
                continue;
            }
            if let Some(limit) = rule.limit {
                let lo = state
                    .grant_times
                    .partition_point(|&g| g <= t.saturating_sub(limit.per_ms));
                let hi = state.grant_times.partition_point(|&g| g <= t);
                if hi.saturating_sub(lo) >= limit.count as usize {
                    continue;
                }
            }
            if let (Some(cooldown), Some(last)) = (rule.cooldown_ms, state.last_grant_ts)
                && t - last < cooldown
            {
                continue;
            }
        }
        let keep_ms = rule
            .limit
            .map_or(0, |l| l.per_ms)
            .saturating_add(config.engine.lateness_ms);
        let state = player.rule_mut(r);
        state.granted = true;
        state.last_grant_ts = Some(t);
        let at = state.grant_times.partition_point(|&g| g <= t);
        state.grant_times.insert(at, t);
        let newest = state.grant_times.back().copied().unwrap_or(t);
        while state
            .grant_times
            .front()
            .is_some_and(|&g| g < newest.saturating_sub(keep_ms))
        {
            state.grant_times.pop_front();
        }
        let mut events: Vec<Arc<str>> = Vec::with_capacity(matched.len() + 1);
        if !matched.is_empty() {
            consumed_by.push(r);
            for &i in &matched {
                events.push(state.candidates[i].id.clone());
            }
            // Remove from the back so earlier indices stay valid.
            for &i in matched.iter().rev() {
                state.candidates.remove(i);
            }
        }
        events.push(event.id.clone());
        grants.push(PendingGrant {
            cause: Cause::Rule(r),
            events,
            reward: RewardRef::Config(&rule.reward),
        });
    }
    for &r in &plan.sequence_steps_by_type[event.event_type as usize] {
        if consumed_by.contains(&r) {
            continue;
        }
        let Trigger::Sequence { within_ms, .. } = config.rules[r as usize].trigger else {
            continue;
        };
        let keep_ms = within_ms.saturating_add(config.engine.lateness_ms);
        let cap = config.engine.sequence_candidates;
        let state = player.rule_mut(r);
        state.candidates.push_back(Candidate {
            seq,
            ts: event.ts,
            event_type: event.event_type,
            id: event.id.clone(),
        });
        state.candidates_newest_ts = state.candidates_newest_ts.max(event.ts);
        // Candidates are in log order, so pruning from the front is amortized
        // O(1); a late candidate in the middle goes when it reaches the front.
        let horizon = state.candidates_newest_ts.saturating_sub(keep_ms);
        while state
            .candidates
            .front()
            .is_some_and(|c| c.ts < horizon || state.candidates.len() > cap)
        {
            state.candidates.pop_front();
        }
    }
    grants
}

/// The latest candidates (log order) that fill the steps before the last, in
/// order; None when some step cannot be filled or the first is too old.
fn find_sequence(
    candidates: &VecDeque<Candidate>,
    steps: &[u16],
    within_ms: i64,
    t: i64,
) -> Option<Vec<usize>> {
    let mut chosen = Vec::with_capacity(steps.len() - 1);
    let mut upper = candidates.len();
    for &step in steps[..steps.len() - 1].iter().rev() {
        let at = candidates
            .range(..upper)
            .rposition(|c| c.event_type == step)?;
        chosen.push(at);
        upper = at;
    }
    chosen.reverse();
    let first = &candidates[chosen[0]];
    (t - first.ts <= within_ms).then_some(chosen)
}

fn decide_hunts(
    plan: &Plan,
    player: &PlayerState,
    pid: u32,
    event: &Event,
    puzzle_digests: &mut FastMap<(u32, HuntId, StageIndex), Option<[u8; 32]>>,
) -> Vec<Solve> {
    let config = &*plan.config;
    let mut solves = Vec::new();
    let mut answer_digest: Option<[u8; 32]> = None;
    for &h in &plan.hunts_by_type[event.event_type as usize] {
        let hunt = &config.hunts[h as usize];
        if !hunt.runs_at(event.ts) {
            continue;
        }
        let progress = player.hunt(h);
        if progress.is_some_and(|p| p.completed) {
            continue;
        }
        let solved_count = progress.map_or(0, |p| p.solved.len());
        if solved_count > 0 && solved_count == hunt.stages.len() {
            // Every stage solved but not completed: a configuration switch
            // removed the stages that were left. This event completes it.
            solves.push(Solve {
                hunt: h,
                stage: 0,
                solved: false,
                item: None,
                complete_only: true,
            });
            continue;
        }
        // The active stage of an ordered hunt: the first unsolved one (the
        // solved stages are a prefix, unless a configuration switch
        // reordered them).
        let active = match progress {
            Some(p) if hunt.ordered => p.first_unsolved(),
            _ => 0,
        };
        for (k, stage) in hunt.stages.iter().enumerate() {
            let k = k as StageIndex;
            if hunt.ordered && k != active {
                continue;
            }
            if progress.is_some_and(|p| p.is_solved(k)) {
                continue;
            }
            match &stage.kind {
                StageKind::Solve { on, when } => {
                    let hit = *on == event.event_type
                        && when.as_ref().is_none_or(|w| {
                            w.eval_condition(&EvalCtx {
                                plan,
                                event,
                                player,
                            })
                        });
                    if hit {
                        solves.push(Solve::stage(h, k));
                    }
                }
                StageKind::Answer { sha256 } => {
                    if answers_stage(config, event, &hunt.name, &stage.id) {
                        let digest = *answer_digest.get_or_insert_with(|| {
                            veltrix_config::answer_digest(event.data[2].as_str().unwrap_or(""))
                        });
                        if digest == *sha256 {
                            solves.push(Solve::stage(h, k));
                        }
                    }
                }
                StageKind::Collect { on, field, items } => {
                    if *on != event.event_type {
                        continue;
                    }
                    let Some(value) = event.data[*field as usize].as_str() else {
                        continue;
                    };
                    let Some(item) = items.iter().position(|i| i == value) else {
                        continue;
                    };
                    let found = progress
                        .and_then(|p| p.collected.get(k as usize))
                        .map_or(&[][..], |v| v.as_slice());
                    let have = found.iter().filter(|&&f| f).count();
                    if found.get(item).copied().unwrap_or(false) {
                        if have >= items.len() {
                            // Every item found but the stage unsolved: a
                            // configuration switch removed the items that
                            // were missing. Naming a found item solves it.
                            solves.push(Solve::stage(h, k));
                        }
                        continue;
                    }
                    solves.push(Solve {
                        hunt: h,
                        stage: k,
                        solved: have + 1 == items.len(),
                        item: Some(item),
                        complete_only: false,
                    });
                }
                StageKind::Puzzle(_) => {
                    if answers_stage(config, event, &hunt.name, &stage.id)
                        && crate::puzzles::answer_matches(
                            crate::puzzles::expected_digest(
                                plan,
                                puzzle_digests,
                                pid,
                                h,
                                k,
                                &event.player,
                            ),
                            event,
                        )
                    {
                        solves.push(Solve::stage(h, k));
                    }
                }
            }
        }
    }
    solves
}

fn answers_stage(config: &veltrix_config::Config, event: &Event, hunt: &str, stage: &str) -> bool {
    event.event_type == config.answer_type
        && event.data[0].as_str() == Some(hunt)
        && event.data[1].as_str() == Some(stage)
}

// ---- expression context --------------------------------------------------------

struct EvalCtx<'a> {
    plan: &'a Plan,
    event: &'a Event,
    player: &'a PlayerState,
}

impl Context for EvalCtx<'_> {
    fn field(&self, slot: u16) -> Value<'_> {
        match self.event.data.get(slot as usize) {
            Some(FieldValue::Bool(b)) => Value::Bool(*b),
            Some(FieldValue::Int(i)) => Value::Int(*i),
            Some(FieldValue::Double(d)) => Value::Double(*d),
            Some(FieldValue::Str(s)) => Value::Str(s),
            Some(FieldValue::Missing) | None => Value::Missing,
        }
    }
    fn event_ts(&self) -> i64 {
        self.event.ts
    }
    fn event_type(&self) -> &str {
        &self.plan.config.event_types[self.event.event_type as usize].name
    }
    fn event_player(&self) -> &str {
        &self.event.player
    }
    fn event_id(&self) -> &str {
        &self.event.id
    }
    fn points(&self) -> i64 {
        self.player.points
    }
    fn balance(&self, currency: u16) -> i64 {
        self.player.balance(currency)
    }
    fn has_badge(&self, badge: u16) -> bool {
        self.player.has_badge(badge)
    }
    fn has_badge_named(&self, name: &str) -> bool {
        self.plan
            .config
            .badges
            .iter()
            .position(|b| b == name)
            .is_some_and(|b| self.player.has_badge(b as u16))
    }
    fn count(&self, event_type: u16, window_ms: i64) -> i64 {
        self.plan
            .tracking
            .series_index(event_type, None)
            .and_then(|i| self.player.windows.series.get(i))
            .map_or(0, |s| s.count(self.event.ts, window_ms))
    }
    fn sum(&self, event_type: u16, field: u16, window_ms: i64) -> f64 {
        self.plan
            .tracking
            .series_index(event_type, Some(field))
            .and_then(|i| self.player.windows.series.get(i))
            .map_or(0.0, |s| s.sum(self.event.ts, window_ms))
    }
    fn streak(&self, event_type: u16, period: Period) -> i64 {
        self.plan
            .tracking
            .streak_index(event_type, period)
            .and_then(|i| self.player.windows.streaks.get(i))
            .map_or(0, |s| s.length_at(period_index(self.event.ts, period)))
    }
    fn stage_done(&self, hunt: u16, stage: u16) -> bool {
        self.player.hunt(hunt).is_some_and(|p| p.is_solved(stage))
    }
}
