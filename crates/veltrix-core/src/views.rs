//! Read models over engine state: a player's ledger with provenance and coin
//! ids, a player's progress in a hunt (active clue, generated puzzle text),
//! and a hunt's funnel. Plain data with `Serialize`, so the server only
//! renders them; plain answers never appear here.

use crate::dump::grant_json;
use crate::engine::Engine;
use crate::partition::Partition;
use crate::player::LedgerEntry;
use crate::puzzles::puzzle_instance;
use serde::Serialize;
use serde_json::Value;
use veltrix_config::{HuntId, StageKind};

/// One ledger line: a grant (with its provenance and the ids of the units it
/// created) or a spend (with the ids of the units it consumed).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LedgerLine {
    Grant {
        seq: u64,
        #[serde(flatten)]
        grant: Value,
        /// Per currency: the first and last unit id, `<grant id>/1` … `<grant id>/n`.
        units: serde_json::Map<String, Value>,
    },
    Spend {
        seq: u64,
        key: String,
        currency: String,
        amount: i64,
        /// Unit ids consumed, as inclusive ranges.
        units: Vec<UnitRange>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnitRange {
    pub from: String,
    pub to: String,
}

/// The player's grants and spends in log order; None for an unknown player.
pub fn ledger(engine: &Engine, player: &str) -> Option<Vec<LedgerLine>> {
    let partition = &engine.partitions[engine.partition_of(player)];
    let state = partition.player(player)?;
    let config = &engine.plan.config;
    Some(
        state
            .ledger
            .iter()
            .map(|entry| match *entry {
                LedgerEntry::Grant(i) => {
                    let grant = &partition.grants[i];
                    let units = grant
                        .currencies
                        .iter()
                        .map(|&(c, amount)| {
                            let id = grant.id;
                            (
                                config.currencies[c as usize].clone(),
                                serde_json::json!([format!("{id}/1"), format!("{id}/{amount}")]),
                            )
                        })
                        .collect();
                    LedgerLine::Grant {
                        seq: grant.seq,
                        grant: grant_json(config, grant),
                        units,
                    }
                }
                LedgerEntry::Spend(i) => {
                    let spend = &partition.spends[i];
                    LedgerLine::Spend {
                        seq: spend.seq,
                        key: spend.key.to_string(),
                        currency: config.currencies[spend.currency as usize].clone(),
                        amount: spend.amount,
                        units: spend
                            .units
                            .iter()
                            .map(|(id, from, to)| UnitRange {
                                from: format!("{id}/{from}"),
                                to: format!("{id}/{to}"),
                            })
                            .collect(),
                    }
                }
            })
            .collect(),
    )
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HuntProgressView {
    pub hunt: String,
    pub title: Option<String>,
    pub ordered: bool,
    pub solved: Vec<String>,
    pub completed: bool,
    /// Stages the player can solve now (the next one in an ordered hunt).
    pub active: Vec<ActiveStage>,
    pub stages_total: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActiveStage {
    pub id: String,
    pub clue: Option<String>,
    /// For collect stages: items found so far (names) and how many are needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected: Option<Collected>,
    /// For puzzle stages: the player's own instance (never its answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub puzzle: Option<PuzzleView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub found: Vec<String>,
    pub needed: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PuzzleView {
    pub kind: String,
    pub difficulty: String,
    pub text: String,
}

/// A player's progress in a hunt; a player with no events yet sees the hunt
/// from the start.
pub fn hunt_progress(engine: &Engine, player: &str, hunt: HuntId) -> Option<HuntProgressView> {
    let plan = &engine.plan;
    let config = &plan.config;
    let hunt_config = config.hunts.get(hunt as usize)?;
    let state = engine.player(player);
    let progress = state.and_then(|s| s.hunt(hunt));
    let solved: Vec<u16> = progress.map(|p| p.solved.clone()).unwrap_or_default();
    let completed = progress.is_some_and(|p| p.completed);
    let first_unsolved = progress.map_or(0, |p| p.first_unsolved());
    let mut active = Vec::new();
    if !completed {
        for (k, stage) in hunt_config.stages.iter().enumerate() {
            let k = k as u16;
            if solved.contains(&k) || (hunt_config.ordered && k != first_unsolved) {
                continue;
            }
            let collected = match &stage.kind {
                StageKind::Collect { items, .. } => {
                    let found_flags = progress.and_then(|p| p.collected.get(k as usize));
                    let found = items
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| {
                            found_flags.is_some_and(|f| f.get(*i).copied().unwrap_or(false))
                        })
                        .map(|(_, item)| item.clone())
                        .collect();
                    Some(Collected {
                        found,
                        needed: items.len(),
                    })
                }
                _ => None,
            };
            let puzzle = puzzle_instance(plan, hunt, k, player)
                .and_then(|r| r.ok())
                .map(|i| PuzzleView {
                    kind: i.kind.as_str().to_string(),
                    difficulty: i.difficulty.clone(),
                    text: i.text.clone(),
                });
            active.push(ActiveStage {
                id: stage.id.clone(),
                clue: stage.clue.clone(),
                collected,
                puzzle,
            });
        }
    }
    Some(HuntProgressView {
        hunt: hunt_config.name.clone(),
        title: hunt_config.title.clone(),
        ordered: hunt_config.ordered,
        solved: solved
            .iter()
            .map(|&s| hunt_config.stages[s as usize].id.clone())
            .collect(),
        completed,
        active,
        stages_total: hunt_config.stages.len(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Funnel {
    pub hunt: String,
    pub started: u64,
    /// Players who solved each stage, in configuration order.
    pub stages: Vec<StageCount>,
    pub completed: u64,
    /// Prizes still to be won; None when the hunt has no prize.
    pub prizes_left: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageCount {
    pub id: String,
    pub solved: u64,
}

/// The hunt's funnel. Scans every player: O(players).
pub fn funnel(engine: &Engine, hunt: HuntId) -> Option<Funnel> {
    let hunt_config = engine.plan.config.hunts.get(hunt as usize)?;
    let players = engine
        .partitions
        .iter()
        .flat_map(|p: &Partition| p.players.iter());
    let mut started = 0;
    let mut completed = 0;
    let mut per_stage = vec![0u64; hunt_config.stages.len()];
    for progress in players.filter_map(|p| p.hunt(hunt)) {
        if progress.is_started() {
            started += 1;
        }
        if progress.completed {
            completed += 1;
        }
        for &s in &progress.solved {
            per_stage[s as usize] += 1;
        }
    }
    let prizes_left = hunt_config.prize.as_ref().map(|prize| {
        let claimed = engine.claims.count(crate::partition::Resource::Prize(hunt)) as u64;
        (prize.supply as u64).saturating_sub(claimed)
    });
    Some(Funnel {
        hunt: hunt_config.name.clone(),
        started,
        stages: hunt_config
            .stages
            .iter()
            .zip(per_stage)
            .map(|(s, solved)| StageCount {
                id: s.id.clone(),
                solved,
            })
            .collect(),
        completed,
        prizes_left,
    })
}
