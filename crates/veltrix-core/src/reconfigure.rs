//! Switching a running engine to a new configuration at one log position
//! (SPEC §2, "Configuration versions").
//!
//! All engine state is keyed by configuration indices (currency, badge, rule,
//! hunt, stage, event type, field, leaderboard, view, window series). A
//! switch rewrites every such key to the new configuration *by name*:
//! [`switch_config`] first checks that the new configuration can take over
//! and computes every mapping without touching the engine, then applies them
//! in one pass that cannot fail. Every step iterates in index or log order,
//! so the result depends only on (old state, old plan, new plan): replaying
//! the log and calling the function at the same position reproduces it.
//!
//! What carries over, and what does not, is documented in docs/CONFIG.md
//! ("Changing the configuration of a running engine").

use crate::analytics::{ViewState, Views, dimension_name, measure_name};
use crate::dump::grants_in_log_order;
use crate::engine::{Engine, Ingest};
use crate::grant::Cause;
use crate::partition::{CountingClaims, Resource};
use crate::plan::Plan;
use crate::player::{HuntProgress, PlayerState, RuleState};
use crate::windows::{Series, Streak, Windows};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use veltrix_config::{Config, Leaderboard, StageKind, Trigger, View};

/// Why a configuration cannot replace the active one. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error(
        "the new configuration drops currency `{currency}`, which {players} player(s) hold a balance of; keep the currency (or let them spend it) before switching"
    )]
    CurrencyHeld { currency: String, players: u64 },
    #[error("the new configuration together with retained names has more than 65536 {what}")]
    TooManyNames { what: &'static str },
}

/// What a switch did, by name, for logs and the operator.
#[derive(Clone, Debug)]
pub struct SwitchReport {
    /// The plan now in `engine.plan`: the new plan itself, or a copy whose
    /// configuration tables also hold retained badge and currency names.
    /// Callers that keep their own `Arc<Plan>` must use this one from now on.
    pub plan: Arc<Plan>,
    pub from_version: String,
    pub to_version: String,
    /// Earned badges the new configuration no longer grants (kept by players).
    pub retained_badges: Vec<String>,
    /// Dropped currencies still named by grants or spends (nobody holds any).
    pub retained_currencies: Vec<String>,
    /// Rules whose per-player state was dropped (not in the new configuration).
    pub dropped_rules: Vec<String>,
    /// Hunts whose progress and claims were dropped.
    pub dropped_hunts: Vec<String>,
    /// Leaderboards rebuilt from the grant history (new, or definition changed).
    pub rebuilt_leaderboards: Vec<String>,
    /// Analytics views that start empty (new, or definition changed).
    pub reset_views: Vec<String>,
    /// Window series and streaks the new configuration needs that were not
    /// tracked before: they only see events from the switch on.
    pub new_windows: usize,
}

/// Index maps from the old configuration to the new one.
struct Maps {
    /// Old currency → index in the new (possibly extended) table.
    currencies: Vec<Option<u16>>,
    badges: Vec<Option<u16>>,
    rules: Vec<Option<u16>>,
    event_types: Vec<Option<u16>>,
    hunts: Vec<Option<u16>>,
    /// Per old hunt and stage: new stage index, when the hunt is kept.
    stages: Vec<Vec<Option<u16>>>,
    /// New series index → old series index.
    series: Vec<Option<usize>>,
    /// New streak index → old streak index.
    streaks: Vec<Option<usize>>,
}

/// Checks that `new_plan` can replace the active configuration now, without
/// changing anything: the same check `switch_config` makes first. Use it to
/// refuse a configuration before recording the switch in the log.
pub fn check_switch(engine: &Engine, new_plan: &Arc<Plan>) -> Result<(), SwitchError> {
    prepare(engine, new_plan.clone()).map(|_| ())
}

/// Validation and every index map; no change to the engine.
fn prepare(engine: &Engine, new_plan: Arc<Plan>) -> Result<(Arc<Plan>, Maps), SwitchError> {
    let old_plan = engine.plan.clone();
    let old = &*old_plan.config;
    let players = || engine.partitions.iter().flat_map(|p| p.players.iter());
    let grants = || engine.partitions.iter().flat_map(|p| p.grants.iter());

    // Currencies: refuse to drop one that anybody holds.
    let mut holders = vec![0u64; old.currencies.len()];
    let mut named = vec![false; old.currencies.len()];
    for player in players() {
        for (c, &balance) in player.balances.iter().enumerate() {
            if balance != 0 {
                holders[c] += 1;
            }
        }
        for (c, lots) in player.coins.iter().enumerate() {
            named[c] |= !lots.is_empty();
        }
    }
    for grant in grants() {
        for &(c, _) in &grant.currencies {
            named[c as usize] = true;
        }
    }
    for spend in engine.partitions.iter().flat_map(|p| p.spends.iter()) {
        named[spend.currency as usize] = true;
    }
    let new_config = &*new_plan.config;
    let mut retained_currencies = Vec::new();
    for (c, name) in old.currencies.iter().enumerate() {
        if new_config.currency(name).is_some() {
            continue;
        }
        if holders[c] > 0 {
            return Err(SwitchError::CurrencyHeld {
                currency: name.clone(),
                players: holders[c],
            });
        }
        if named[c] {
            retained_currencies.push(name.clone());
        }
    }

    // Badges: every badge a player holds (grants only name held badges).
    let mut held = vec![false; old.badges.len()];
    for player in players() {
        for &b in &player.badges {
            held[b as usize] = true;
        }
    }
    for grant in grants() {
        if let Some(b) = grant.badge {
            held[b as usize] = true;
        }
    }
    let retained_badges: Vec<String> = old
        .badges
        .iter()
        .enumerate()
        .filter(|(b, name)| held[*b] && !new_config.badges.contains(name))
        .map(|(_, name)| name.clone())
        .collect();
    if new_config.badges.len() + retained_badges.len() > 1 << 16 {
        return Err(SwitchError::TooManyNames { what: "badges" });
    }
    if new_config.currencies.len() + retained_currencies.len() > 1 << 16 {
        return Err(SwitchError::TooManyNames { what: "currencies" });
    }
    let plan = if retained_badges.is_empty() && retained_currencies.is_empty() {
        new_plan.clone()
    } else {
        Arc::new(Plan::with_retained(
            &new_plan,
            &retained_badges,
            &retained_currencies,
        ))
    };
    let maps = Maps::new(&old_plan, &plan);
    Ok((plan, maps))
}

/// Switches `engine` to `new_plan`. Call it at the log position where the
/// switch is recorded, after every earlier record and before every later
/// one; replay calls it at the same position. On error nothing changed.
///
/// `ingest` (dedup set, counts, rejected list, next seq) is not changed:
/// event ids stay unique across versions.
pub fn switch_config(
    ingest: &mut Ingest,
    engine: &mut Engine,
    new_plan: Arc<Plan>,
) -> Result<SwitchReport, SwitchError> {
    let _ = ingest;
    let (plan, maps) = prepare(engine, new_plan)?;
    let old_plan = engine.plan.clone();
    let old = &*old_plan.config;
    let new = &*plan.config;

    // ---- apply (cannot fail) --------------------------------------------------
    let mut report = SwitchReport {
        plan: plan.clone(),
        from_version: old.version.clone(),
        to_version: new.version.clone(),
        retained_badges: plan.retained_badges.clone(),
        retained_currencies: plan.retained_currencies.clone(),
        dropped_rules: names_dropped(old.rules.iter().map(|r| &r.name), &maps.rules),
        dropped_hunts: names_dropped(old.hunts.iter().map(|h| &h.name), &maps.hunts),
        rebuilt_leaderboards: Vec::new(),
        reset_views: Vec::new(),
        new_windows: maps.series.iter().filter(|s| s.is_none()).count()
            + maps.streaks.iter().filter(|s| s.is_none()).count(),
    };
    for partition in &mut engine.partitions {
        partition.clear_caches();
        for player in partition.players.iter_mut() {
            remap_player(Arc::make_mut(player), &maps, old, new);
        }
        for grant in partition.grants.iter_mut() {
            grant.cause = remap_cause(grant.cause, &maps);
            for (c, _) in &mut grant.currencies {
                *c = maps.currencies[*c as usize].expect("named currencies are kept");
            }
            if let Some(b) = &mut grant.badge {
                *b = maps.badges[*b as usize].expect("held badges are kept");
            }
        }
        for spend in partition.spends.iter_mut() {
            spend.currency =
                maps.currencies[spend.currency as usize].expect("named currencies are kept");
        }
    }

    engine.claims = CountingClaims::from_counts(engine.claims.counts().into_iter().filter_map(
        |(resource, count)| {
            let resource = match resource {
                Resource::FirstFinder(h, s) => {
                    let h2 = maps.hunts[h as usize]?;
                    Resource::FirstFinder(h2, maps.stages[h as usize][s as usize]?)
                }
                Resource::Prize(h) => Resource::Prize(maps.hunts[h as usize]?),
            };
            Some((resource, count))
        },
    ));

    // Leaderboards: keep a board whose definition is unchanged by name,
    // rebuild every other one from the grant history in log order.
    assert!(
        engine.boards.is_flushed(),
        "a switch with leaderboard updates held back"
    );
    let mut old_boards = std::mem::take(&mut engine.boards.boards);
    let mut boards = Vec::with_capacity(new.leaderboards.len());
    let mut rebuild = Vec::new();
    for (index, board) in new.leaderboards.iter().enumerate() {
        let same = old
            .leaderboards
            .iter()
            .position(|o| same_leaderboard(old, o, new, board));
        match same {
            Some(o) => boards.push(std::mem::take(&mut old_boards[o])),
            None => {
                boards.push(BTreeMap::new());
                rebuild.push(index);
                report.rebuilt_leaderboards.push(board.name.clone());
            }
        }
    }
    engine.boards.boards = boards;
    // Hunt boards count grants by source (`hunt:<name>:…`), which also
    // covers grants of stages and hunts no longer configured.
    let prefixes: Vec<Option<String>> = rebuild
        .iter()
        .map(|&index| {
            new.leaderboards[index]
                .hunt
                .map(|h| format!("hunt:{}:", new.hunts[h as usize].name))
        })
        .collect();
    if !rebuild.is_empty() {
        for grant in grants_in_log_order(&engine.partitions) {
            for (&index, prefix) in rebuild.iter().zip(&prefixes) {
                if prefix
                    .as_ref()
                    .is_none_or(|p| grant.source.starts_with(p.as_str()))
                {
                    let period = new.leaderboards[index].period;
                    engine.boards.record_one(index, period, grant);
                }
            }
        }
    }

    // Analytics views: keep a view whose definition is identical by name.
    let mut old_views = std::mem::take(&mut engine.views.views);
    let mut views = Vec::with_capacity(new.views.len());
    for view in &new.views {
        let same = old.views.iter().position(|o| same_view(old, o, new, view));
        match same {
            Some(o) => views.push(std::mem::take(&mut old_views[o])),
            None => {
                views.push(ViewState::default());
                report.reset_views.push(view.name.clone());
            }
        }
    }
    engine.views = Views { views };
    engine.plan = plan;
    Ok(report)
}

fn names_dropped<'a>(names: impl Iterator<Item = &'a String>, map: &[Option<u16>]) -> Vec<String> {
    names
        .zip(map)
        .filter(|(_, m)| m.is_none())
        .map(|(n, _)| n.clone())
        .collect()
}

fn position<T>(items: &[T], matches: impl Fn(&T) -> bool) -> Option<u16> {
    items.iter().position(matches).map(|i| i as u16)
}

impl Maps {
    fn new(old_plan: &Plan, new_plan: &Plan) -> Maps {
        let old = &*old_plan.config;
        let new = &*new_plan.config;
        let event_types: Vec<Option<u16>> = old
            .event_types
            .iter()
            .map(|t| position(&new.event_types, |n| n.name == t.name))
            .collect();
        let hunts: Vec<Option<u16>> = old
            .hunts
            .iter()
            .map(|h| position(&new.hunts, |n| n.name == h.name))
            .collect();
        let stages = old
            .hunts
            .iter()
            .zip(&hunts)
            .map(|(h, mapped)| {
                h.stages
                    .iter()
                    .map(|s| {
                        let nh = &new.hunts[(*mapped)? as usize];
                        position(&nh.stages, |n| n.id == s.id)
                    })
                    .collect()
            })
            .collect();
        let series_name = |config: &Config, t: u16, f: Option<u16>| {
            let ty = &config.event_types[t as usize];
            (
                ty.name.clone(),
                f.map(|f| ty.fields[f as usize].name.clone()),
            )
        };
        let series = new_plan
            .tracking
            .series
            .iter()
            .map(|spec| {
                let wanted = series_name(new, spec.event_type, spec.field);
                old_plan
                    .tracking
                    .series
                    .iter()
                    .position(|o| series_name(old, o.event_type, o.field) == wanted)
            })
            .collect();
        let streaks = new_plan
            .tracking
            .streaks
            .iter()
            .map(|&(t, period)| {
                let name = &new.event_types[t as usize].name;
                old_plan.tracking.streaks.iter().position(|&(ot, op)| {
                    op == period && old.event_types[ot as usize].name == *name
                })
            })
            .collect();
        Maps {
            currencies: old
                .currencies
                .iter()
                .map(|c| position(&new.currencies, |n| n == c))
                .collect(),
            badges: old
                .badges
                .iter()
                .map(|b| position(&new.badges, |n| n == b))
                .collect(),
            rules: old
                .rules
                .iter()
                .map(|r| position(&new.rules, |n| n.name == r.name))
                .collect(),
            event_types,
            hunts,
            stages,
            series,
            streaks,
        }
    }
}

fn remap_cause(cause: Cause, maps: &Maps) -> Cause {
    let stage = |h: u16, s: u16| {
        Some((
            maps.hunts[h as usize]?,
            maps.stages[h as usize][s as usize]?,
        ))
    };
    let mapped = match cause {
        Cause::Rule(r) => maps.rules[r as usize].map(Cause::Rule),
        Cause::Stage(h, s) => stage(h, s).map(|(h, s)| Cause::Stage(h, s)),
        Cause::FirstFinder(h, s) => stage(h, s).map(|(h, s)| Cause::FirstFinder(h, s)),
        Cause::Completion(h) => maps.hunts[h as usize].map(Cause::Completion),
        Cause::Prize(h) => maps.hunts[h as usize].map(Cause::Prize),
        Cause::Retired => None,
    };
    mapped.unwrap_or(Cause::Retired)
}

/// Moves `values` (indexed by old index) to new indices; the result is as
/// long as the greatest new index used plus one, so unchanged state keeps
/// its exact shape.
fn remap_dense<T: Default>(values: Vec<T>, map: &[Option<u16>]) -> Vec<T> {
    let len = values
        .iter()
        .enumerate()
        .filter_map(|(i, _)| map.get(i).copied().flatten())
        .map(|n| n as usize + 1)
        .max()
        .unwrap_or(0);
    let mut out: Vec<T> = (0..len).map(|_| T::default()).collect();
    for (i, value) in values.into_iter().enumerate() {
        if let Some(n) = map.get(i).copied().flatten() {
            out[n as usize] = value;
        }
    }
    out
}

fn remap_player(player: &mut PlayerState, maps: &Maps, old: &Config, new: &Config) {
    // Balances and coin lots: dropped currencies hold nothing (checked).
    player.balances = remap_dense(std::mem::take(&mut player.balances), &maps.currencies);
    player.coins = remap_dense(std::mem::take(&mut player.coins), &maps.currencies);
    // Badges: all held badges are in the new table.
    for b in &mut player.badges {
        *b = maps.badges[*b as usize].expect("held badges are kept");
    }
    // Rule state by rule name.
    let rules = std::mem::take(&mut player.rules);
    player.rules = rules
        .into_iter()
        .filter_map(|(r, state)| {
            let n = maps.rules[r as usize]?;
            Some((
                n,
                remap_rule_state(state, &new.rules[n as usize].trigger, maps, new),
            ))
        })
        .collect();
    // Hunt progress by hunt name and stage id.
    let hunts = std::mem::take(&mut player.hunts);
    let hunts: Vec<HuntProgress> = hunts
        .into_iter()
        .enumerate()
        .map(|(h, progress)| remap_progress(progress, h, maps, old, new))
        .collect();
    player.hunts = remap_dense(hunts, &maps.hunts);
    // Windows by (event type name, field name) and (type name, period).
    player.windows = remap_windows(std::mem::take(&mut player.windows), maps);
}

fn remap_rule_state(
    mut state: RuleState,
    trigger: &Trigger,
    maps: &Maps,
    new: &Config,
) -> RuleState {
    let earlier: &[u16] = match trigger {
        Trigger::Sequence { steps, .. } => &steps[..steps.len() - 1],
        Trigger::On(_) => &[],
    };
    let candidates = std::mem::take(&mut state.candidates);
    state.candidates = candidates
        .into_iter()
        .filter_map(|mut c| {
            let t = maps.event_types[c.event_type as usize]?;
            earlier.contains(&t).then(|| {
                c.event_type = t;
                c
            })
        })
        .collect::<VecDeque<_>>();
    while state.candidates.len() > new.engine.sequence_candidates {
        state.candidates.pop_front();
    }
    state
}

fn remap_progress(
    progress: HuntProgress,
    h: usize,
    maps: &Maps,
    old: &Config,
    new: &Config,
) -> HuntProgress {
    let Some(nh) = maps.hunts[h] else {
        return HuntProgress::default();
    };
    let stage_map = &maps.stages[h];
    let old_hunt = &old.hunts[h];
    let new_hunt = &new.hunts[nh as usize];
    let solved = progress
        .solved
        .iter()
        .filter_map(|&s| stage_map[s as usize])
        .collect();
    let mut collected = Vec::new();
    if !progress.collected.is_empty() {
        collected = vec![Vec::new(); new_hunt.stages.len()];
        for (s, found) in progress.collected.iter().enumerate() {
            let Some(ns) = stage_map.get(s).copied().flatten() else {
                continue;
            };
            let (
                StageKind::Collect {
                    items: old_items, ..
                },
                StageKind::Collect {
                    items: new_items, ..
                },
            ) = (&old_hunt.stages[s].kind, &new_hunt.stages[ns as usize].kind)
            else {
                continue;
            };
            if found.is_empty() {
                continue;
            }
            let mut flags = vec![false; new_items.len()];
            for (i, &was_found) in found.iter().enumerate() {
                if let (true, Some(item)) = (was_found, old_items.get(i))
                    && let Some(n) = new_items.iter().position(|x| x == item)
                {
                    flags[n] = true;
                }
            }
            collected[ns as usize] = flags;
        }
    }
    HuntProgress {
        solved,
        collected,
        completed: progress.completed,
    }
}

fn remap_windows(mut windows: Windows, maps: &Maps) -> Windows {
    fn take<T: Default>(old: &mut [T], map: &[Option<usize>]) -> Vec<T> {
        if old.is_empty() {
            return Vec::new();
        }
        map.iter()
            .map(|o| {
                o.and_then(|o| old.get_mut(o).map(std::mem::take))
                    .unwrap_or_default()
            })
            .collect()
    }
    let series: Vec<Series> = take(&mut windows.series, &maps.series);
    let streaks: Vec<Streak> = take(&mut windows.streaks, &maps.streaks);
    Windows { series, streaks }
}

fn hunt_name(config: &Config, hunt: Option<u16>) -> Option<&str> {
    hunt.map(|h| config.hunts[h as usize].name.as_str())
}

fn same_leaderboard(old: &Config, o: &Leaderboard, new: &Config, n: &Leaderboard) -> bool {
    o.name == n.name && o.period == n.period && hunt_name(old, o.hunt) == hunt_name(new, n.hunt)
}

fn same_view(old: &Config, o: &View, new: &Config, n: &View) -> bool {
    o.name == n.name
        && old.event_types[o.on as usize].name == new.event_types[n.on as usize].name
        && o.bucket_ms == n.bucket_ms
        && o.group_by
            .iter()
            .map(dimension_name)
            .eq(n.group_by.iter().map(dimension_name))
        && o.measures
            .iter()
            .map(measure_name)
            .eq(n.measures.iter().map(measure_name))
}
