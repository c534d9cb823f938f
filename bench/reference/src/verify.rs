//! The identical-results check: a comparison of wrong answers is worthless.

use crate::load_plan;
use anyhow::{Context as _, Result, bail};
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::path::Path;

pub async fn verify(
    config: &Path,
    consumer_report: &Path,
    veltrix_dir: &Path,
    redis: &str,
    postgres: &str,
) -> Result<Value> {
    let plan = load_plan(config)?;
    let report: Value = serde_json::from_slice(&std::fs::read(consumer_report)?)?;
    let mut redis = redis::Client::open(redis)?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let mut problems = Vec::new();
    let mut boards = serde_json::Map::new();
    for board in &plan.config.leaderboards {
        let name = &board.name;
        let key = report["board_keys"][name]
            .as_str()
            .with_context(|| format!("the consumer report names no key for {name}"))?;
        let path = veltrix_dir.join(format!("{name}.json"));
        let veltrix: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )?;
        let rows = veltrix["rows"].as_array().cloned().unwrap_or_default();
        let total = veltrix["total"].as_u64().unwrap_or(0);
        let cardinality: u64 = redis.zcard(key).await?;
        let top: Vec<(String, f64)> = redis
            .zrevrange_withscores(key, 0, rows.len().max(1) as isize - 1)
            .await?;
        if cardinality != total {
            problems.push(format!(
                "{name}: Veltrix ranks {total} players, Redis {key} holds {cardinality}"
            ));
        }
        let veltrix_scores: Vec<i64> = rows
            .iter()
            .map(|r| r["score"].as_i64().unwrap_or(i64::MIN))
            .collect();
        let redis_scores: Vec<i64> = top.iter().map(|(_, s)| *s as i64).collect();
        if veltrix_scores != redis_scores {
            problems.push(format!(
                "{name}: top {} scores differ: Veltrix {:?}… Redis {:?}…",
                rows.len(),
                &veltrix_scores[..veltrix_scores.len().min(5)],
                &redis_scores[..redis_scores.len().min(5)]
            ));
        }
        // Equal scores rank by who reached them first in Veltrix and by
        // member name in Redis, so compare each player's score, not the
        // order among ties.
        for row in &rows {
            let player = row["player"].as_str().unwrap_or("");
            let score: Option<f64> = redis.zscore(key, player).await?;
            if score.map(|s| s as i64) != row["score"].as_i64() {
                problems.push(format!(
                    "{name}: {player} has {} in Veltrix, {score:?} in Redis",
                    row["score"]
                ));
            }
        }
        boards.insert(
            name.clone(),
            json!({"redis_key": key, "players": total, "top_compared": rows.len(), "top_score": veltrix_scores.first()}),
        );
    }
    let metrics = std::fs::read_to_string(veltrix_dir.join("metrics.txt"))?;
    let veltrix_grants: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("veltrix_grants_total{") || l.starts_with("veltrix_grants_total ")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let (pg, connection) = tokio_postgres::connect(postgres, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let ledger: i64 = pg
        .query_one("SELECT count(*) FROM grants", &[])
        .await?
        .get(0);
    let consumer_grants = report["grants"].as_u64().unwrap_or(0);
    if veltrix_grants as i64 != ledger || ledger as u64 != consumer_grants {
        problems.push(format!(
            "grant counts differ: Veltrix {veltrix_grants}, PostgreSQL ledger {ledger}, consumer {consumer_grants}"
        ));
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("MISMATCH: {problem}");
        }
        bail!(
            "the two stacks disagree ({} problems): the comparison is void",
            problems.len()
        );
    }
    Ok(json!({"identical": true, "grants": ledger, "leaderboards": boards}))
}
