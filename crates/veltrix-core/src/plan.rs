//! Per-configuration tables computed once, so the per-event path does no name
//! lookups and no string formatting.

use crate::windows::Tracking;
use std::sync::Arc;
use veltrix_config::veltrix_puzzles::{PreparedSpec, prepare};
use veltrix_config::{Config, HuntId, StageKind};

#[derive(Debug)]
pub struct Plan {
    pub config: Arc<Config>,
    pub tracking: Tracking,
    /// For each event type, the rules it triggers, in configuration order.
    pub rules_by_type: Vec<Vec<u16>>,
    /// For each event type, the hunts with a stage it may advance.
    pub hunts_by_type: Vec<Vec<HuntId>>,
    /// Event types that are earlier steps of some sequence rule: rule ids.
    pub sequence_steps_by_type: Vec<Vec<u16>>,
    pub rule_sources: Vec<Arc<str>>,
    pub stage_sources: Vec<Vec<Arc<str>>>,
    pub first_finder_sources: Vec<Vec<Arc<str>>>,
    pub completion_sources: Vec<Arc<str>>,
    pub prize_sources: Vec<Arc<str>>,
    /// Server secret for generated puzzles. Part of the state's inputs: a
    /// replay must use the same secret.
    pub puzzle_secret: Arc<[u8]>,
    /// Per hunt and stage: the prepared generator of a puzzle stage.
    pub puzzles: Vec<Vec<Option<PreparedSpec>>>,
    /// Badge names earned under an earlier configuration that the active one
    /// no longer grants, appended to `config.badges` after the configured
    /// badges (so expression badge indices stay valid). Empty unless a
    /// configuration switch retained some (see `reconfigure`).
    pub retained_badges: Vec<String>,
    /// Currency names that only the history still mentions (grants, spends),
    /// appended to `config.currencies` after the configured ones. Nobody
    /// holds a balance of them.
    pub retained_currencies: Vec<String>,
}

/// The secret used when the operator sets none (fine for trying things out;
/// a live hunt needs its own, or players could derive each other's puzzles).
pub const DEVELOPMENT_PUZZLE_SECRET: &[u8] = b"veltrix-development-puzzle-secret";

impl Plan {
    /// `base` with badge and currency names appended to its configuration's
    /// tables (names it already has are skipped). The configuration keeps its
    /// version: the retained names are state carried over a switch, not part
    /// of the sources.
    pub fn with_retained(base: &Plan, badges: &[String], currencies: &[String]) -> Plan {
        let mut config = (*base.config).clone();
        let mut retained_badges = base.retained_badges.clone();
        for badge in badges {
            if !config.badges.contains(badge) {
                config.badges.push(badge.clone());
                retained_badges.push(badge.clone());
            }
        }
        let mut retained_currencies = base.retained_currencies.clone();
        for currency in currencies {
            if !config.currencies.contains(currency) {
                config.currencies.push(currency.clone());
                retained_currencies.push(currency.clone());
            }
        }
        let mut plan = Plan::with_secret(Arc::new(config), base.puzzle_secret.clone());
        plan.retained_badges = retained_badges;
        plan.retained_currencies = retained_currencies;
        plan
    }

    pub fn new(config: Arc<Config>) -> Plan {
        Plan::with_secret(config, Arc::from(DEVELOPMENT_PUZZLE_SECRET))
    }

    pub fn with_secret(config: Arc<Config>, puzzle_secret: Arc<[u8]>) -> Plan {
        let types = config.event_types.len();
        let mut rules_by_type = vec![Vec::new(); types];
        let mut sequence_steps_by_type = vec![Vec::new(); types];
        for (index, rule) in config.rules.iter().enumerate() {
            rules_by_type[rule.trigger.event_type() as usize].push(index as u16);
            if let veltrix_config::Trigger::Sequence { steps, .. } = &rule.trigger {
                for &step in &steps[..steps.len() - 1] {
                    let list: &mut Vec<u16> = &mut sequence_steps_by_type[step as usize];
                    if !list.contains(&(index as u16)) {
                        list.push(index as u16);
                    }
                }
            }
        }
        let mut hunts_by_type = vec![Vec::new(); types];
        for (h, hunt) in config.hunts.iter().enumerate() {
            for stage in &hunt.stages {
                let on = match &stage.kind {
                    StageKind::Solve { on, .. } | StageKind::Collect { on, .. } => *on,
                    StageKind::Answer { .. } | StageKind::Puzzle(_) => config.answer_type,
                };
                let list: &mut Vec<HuntId> = &mut hunts_by_type[on as usize];
                if !list.contains(&(h as HuntId)) {
                    list.push(h as HuntId);
                }
            }
        }
        let source = |s: String| -> Arc<str> { Arc::from(s) };
        Plan {
            tracking: Tracking::for_config(&config),
            rules_by_type,
            hunts_by_type,
            sequence_steps_by_type,
            rule_sources: config
                .rules
                .iter()
                .map(|r| source(format!("rule:{}", r.name)))
                .collect(),
            stage_sources: config
                .hunts
                .iter()
                .map(|h| {
                    h.stages
                        .iter()
                        .map(|s| source(format!("hunt:{}:{}", h.name, s.id)))
                        .collect()
                })
                .collect(),
            first_finder_sources: config
                .hunts
                .iter()
                .map(|h| {
                    h.stages
                        .iter()
                        .map(|s| source(format!("hunt:{}:{}:first_finder", h.name, s.id)))
                        .collect()
                })
                .collect(),
            completion_sources: config
                .hunts
                .iter()
                .map(|h| source(format!("hunt:{}:completion", h.name)))
                .collect(),
            prize_sources: config
                .hunts
                .iter()
                .map(|h| source(format!("hunt:{}:prize", h.name)))
                .collect(),
            puzzle_secret,
            retained_badges: Vec::new(),
            retained_currencies: Vec::new(),
            puzzles: config
                .hunts
                .iter()
                .map(|h| {
                    h.stages
                        .iter()
                        .map(|s| match &s.kind {
                            // Invariant: the config compiler only accepts specs
                            // that validate, and validated specs prepare.
                            StageKind::Puzzle(spec) => prepare(spec).ok(),
                            _ => None,
                        })
                        .collect()
                })
                .collect(),
            config,
        }
    }
}
