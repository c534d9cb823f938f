//! The state dump of SPEC §3: one JSON object with event counts, players,
//! leaderboards, grants in log order and rejected events. Players are sorted
//! by name; maps inside follow configuration order; so the same state always
//! gives the same bytes.

use crate::boards::{Boards, NamedRow, bucket_of};
use crate::cow::CowVec;
use crate::engine::{Counts, Engine, Ingest, Rejection};
use crate::grant::Grant;
use crate::partition::Partition;
use crate::player::PlayerState;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use veltrix_config::Config;

#[derive(Debug, Serialize)]
pub struct StateDump {
    pub events: Counts,
    pub players: BTreeMap<String, Value>,
    pub leaderboards: Map<String, Value>,
    pub grants: Vec<Value>,
    pub rejected: Vec<Rejection>,
}

impl StateDump {
    pub fn to_json_pretty(&self) -> String {
        // Invariant: the dump holds only strings, numbers, maps and lists.
        serde_json::to_string_pretty(self).expect("state dump serializes")
    }
}

/// The parts of engine state a dump is made from.
pub struct DumpSource<'a> {
    pub config: &'a Config,
    pub counts: Counts,
    pub rejected: &'a CowVec<Rejection>,
    pub partitions: &'a [Partition],
    pub boards: &'a Boards,
    pub max_ts: Option<i64>,
}

impl<'a> DumpSource<'a> {
    pub fn from_engine(ingest: &'a Ingest, engine: &'a Engine) -> DumpSource<'a> {
        DumpSource {
            config: &engine.plan.config,
            counts: ingest.counts,
            rejected: &ingest.rejected,
            partitions: &engine.partitions,
            boards: &engine.boards,
            max_ts: engine.max_ts,
        }
    }
}

pub fn dump(source: &DumpSource<'_>) -> StateDump {
    let config = source.config;
    let players = source
        .partitions
        .iter()
        .flat_map(|p| p.players.iter())
        .map(|player| (player.name.to_string(), player_json(config, player)))
        .collect();
    let mut leaderboards = Map::new();
    for (index, board) in config.leaderboards.iter().enumerate() {
        let bucket = bucket_of(board.period, source.max_ts.unwrap_or(0));
        let rows: Vec<NamedRow> = source
            .boards
            .board(index, bucket)
            .map(|b| b.iter().map(|row| source.boards.named(row)).collect())
            .unwrap_or_default();
        leaderboards.insert(board.name.clone(), json!(rows));
    }
    StateDump {
        events: source.counts,
        players,
        leaderboards,
        grants: grants_in_log_order(source.partitions)
            .into_iter()
            .map(|g| grant_json(config, g))
            .collect(),
        rejected: source.rejected.iter().cloned().collect(),
    }
}

/// Grants of all partitions by log position. One event belongs to one player
/// and so to one partition, so a stable sort keeps each event's grants in
/// the order they were made.
pub fn grants_in_log_order(partitions: &[Partition]) -> Vec<&Grant> {
    let mut grants: Vec<&Grant> = partitions.iter().flat_map(|p| p.grants.iter()).collect();
    grants.sort_by_key(|g| g.seq);
    grants
}

pub fn player_json(config: &Config, player: &PlayerState) -> Value {
    let mut balances = Map::new();
    for (currency, amount) in player.balances.iter().enumerate().filter(|(_, a)| **a != 0) {
        balances.insert(name_at(&config.currencies, currency), json!(amount));
    }
    let badges: Vec<String> = player
        .badges
        .iter()
        .map(|&b| name_at(&config.badges, b as usize))
        .collect();
    let mut hunts = Map::new();
    for (h, progress) in player.hunts.iter().enumerate() {
        if !progress.is_started() {
            continue;
        }
        let hunt = &config.hunts[h];
        let solved: Vec<&str> = progress
            .solved
            .iter()
            .map(|&s| hunt.stages[s as usize].id.as_str())
            .collect();
        hunts.insert(
            hunt.name.clone(),
            json!({"solved": solved, "completed": progress.completed}),
        );
    }
    json!({"points": player.points, "balances": balances, "badges": badges, "hunts": hunts})
}

pub fn grant_json(config: &Config, grant: &Grant) -> Value {
    let mut currencies = Map::new();
    for &(currency, amount) in &grant.currencies {
        currencies.insert(
            name_at(&config.currencies, currency as usize),
            json!(amount),
        );
    }
    json!({
        "id": grant.id,
        "player": grant.player,
        "source": &*grant.source,
        "events": grant.events,
        "points": grant.points,
        "currencies": currencies,
        "badge": grant.badge.map(|b| name_at(&config.badges, b as usize)),
    })
}

/// A badge or currency name by index. Indices always come from the engine's
/// own plan; a configuration without the names a switch retained (see
/// `Plan::retained_badges`) renders `#<index>` instead of panicking.
fn name_at(names: &[String], index: usize) -> String {
    names
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("#{index}"))
}
