//! Component comparisons: leaderboard structure, durable log, JSON parsing.

use crate::{lines, now_us};
use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, stream::StorageType};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use veltrix_workload::{Rng, zipf_cdf};

/// The same operations on a veltrix-rank board and on a Redis sorted set:
/// `players` players with random scores, then `ops` score increments of
/// Zipf-skewed players (ZINCRBY), then `ops` rank queries (ZREVRANK).
pub async fn rank(redis_url: &str, players: u32, ops: u32, pipeline: usize) -> Result<Value> {
    let mut rng = Rng::new(11);
    let initial: Vec<i64> = (0..players).map(|_| rng.below(10_000) as i64).collect();
    let zipf = zipf_cdf(players as usize, 1.1);
    let updates: Vec<(u32, i64)> = (0..ops)
        .map(|_| {
            let u = rng.unit();
            let p = zipf.partition_point(|&c| c < u).min(players as usize - 1) as u32;
            (p, 1 + rng.below(100) as i64)
        })
        .collect();
    let queries: Vec<u32> = (0..ops).map(|_| rng.below(players as u64) as u32).collect();

    // veltrix-rank (one thread, as the engine uses it).
    let mut board = veltrix_rank::Board::new();
    for (p, s) in initial.iter().enumerate() {
        board.add(p as u32, *s, p as u64 + 1);
    }
    let mut seq = players as u64 + 1;
    let t = Instant::now();
    for (p, d) in &updates {
        seq += 1;
        std::hint::black_box(board.add(*p, *d, seq));
    }
    let veltrix_update = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for p in &queries {
        std::hint::black_box(board.rank(*p));
    }
    let veltrix_rank = t.elapsed().as_secs_f64();

    // Redis over loopback, pipelined.
    let mut redis = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let key = "bench:rank";
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut redis)
        .await?;
    let names: Vec<String> = (0..players).map(|p| format!("p{p}")).collect();
    for chunk in (0..players as usize).collect::<Vec<_>>().chunks(pipeline) {
        let mut pipe = redis::pipe();
        for &p in chunk {
            pipe.zadd(key, &names[p], initial[p]).ignore();
        }
        pipe.query_async::<()>(&mut redis).await?;
    }
    let t = Instant::now();
    for chunk in updates.chunks(pipeline) {
        let mut pipe = redis::pipe();
        for (p, d) in chunk {
            pipe.zincr(key, &names[*p as usize], *d).ignore();
        }
        pipe.query_async::<()>(&mut redis).await?;
    }
    let redis_update = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in queries.chunks(pipeline) {
        let mut pipe = redis::pipe();
        for p in chunk {
            pipe.zrevrank(key, &names[*p as usize]);
        }
        let ranks: Vec<Option<u64>> = pipe.query_async(&mut redis).await?;
        std::hint::black_box(ranks);
    }
    let redis_rank = t.elapsed().as_secs_f64();
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut redis)
        .await?;
    let rate = |s: f64| ops as f64 / s;
    Ok(json!({
        "players": players,
        "ops": ops,
        "redis_pipeline": pipeline,
        "veltrix_rank": {"update_per_second": rate(veltrix_update), "rank_per_second": rate(veltrix_rank)},
        "redis": {"zincrby_per_second": rate(redis_update), "zrevrank_per_second": rate(redis_rank)},
        "ratio_update": redis_update / veltrix_update,
        "ratio_rank": redis_rank / veltrix_rank,
    }))
}

/// Records acknowledged after fsync: veltrix-log (group commit) against
/// JetStream publishes to a file stream with `sync_interval: always`, both
/// with `in_flight` single-record appends outstanding; plus veltrix-log with
/// 1,000-record appends (as the server appends one request's batch).
pub async fn log(
    nats: &str,
    dir: &Path,
    records: usize,
    bytes: usize,
    in_flight: usize,
) -> Result<Value> {
    let payload: Vec<u8> = (0..bytes).map(|i| b'a' + (i % 26) as u8).collect();

    // veltrix-log, single records, `in_flight` outstanding.
    let single_dir = dir.join("single");
    let _ = std::fs::remove_dir_all(&single_dir);
    std::fs::create_dir_all(&single_dir)?;
    let options = veltrix_log::LogOptions {
        queue_capacity: in_flight + 16,
        ..Default::default()
    };
    let (log, _) = veltrix_log::Log::open(&single_dir, options.clone())?;
    let log = Arc::new(log);
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let t = Instant::now();
    for _ in 0..records {
        let permit = permits.clone().acquire_owned().await?;
        log.append(
            vec![payload.clone()],
            Box::new(move |r| {
                r.expect("append");
                drop(permit);
            }),
        )?;
    }
    let _all = permits.acquire_many(in_flight as u32).await?;
    let single = t.elapsed().as_secs_f64();
    let single_stats = log.stats();
    drop(_all);
    if let Ok(log) = Arc::try_unwrap(log) {
        log.close()?;
    }

    // veltrix-log, batches of 1,000, 4 outstanding.
    let batch_dir = dir.join("batch");
    let _ = std::fs::remove_dir_all(&batch_dir);
    std::fs::create_dir_all(&batch_dir)?;
    let (log, _) = veltrix_log::Log::open(&batch_dir, veltrix_log::LogOptions::default())?;
    let permits = Arc::new(tokio::sync::Semaphore::new(4));
    let t = Instant::now();
    for _ in 0..records.div_ceil(1000) {
        let permit = permits.clone().acquire_owned().await?;
        log.append(
            vec![payload.clone(); 1000],
            Box::new(move |r| {
                r.expect("append");
                drop(permit);
            }),
        )?;
    }
    let _all = permits.acquire_many(4).await?;
    let batch = t.elapsed().as_secs_f64();
    drop(_all);
    log.close()?;
    let _ = std::fs::remove_dir_all(&single_dir);
    let _ = std::fs::remove_dir_all(&batch_dir);

    // JetStream, `in_flight` outstanding publishes.
    let js = crate::stack::jetstream_context(nats, in_flight).await?;
    let _ = js.delete_stream("LOGBENCH").await;
    js.create_stream(jetstream::stream::Config {
        name: "LOGBENCH".to_string(),
        subjects: vec!["logbench".to_string()],
        storage: StorageType::File,
        ..Default::default()
    })
    .await?;
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<jetstream::context::PublishAckFuture>(in_flight);
    let waiter = tokio::spawn(async move {
        let mut failed = 0u64;
        while let Some(ack) = rx.recv().await {
            if ack.await.is_err() {
                failed += 1;
            }
        }
        failed
    });
    let body = bytes::Bytes::from(payload);
    let t = Instant::now();
    for _ in 0..records {
        let ack = js.publish("logbench", body.clone()).await?;
        tx.send(ack).await.ok();
    }
    drop(tx);
    let failed = waiter.await?;
    let jetstream_seconds = t.elapsed().as_secs_f64();
    let _ = js.delete_stream("LOGBENCH").await;

    let rate = |s: f64| records as f64 / s;
    Ok(json!({
        "records": records,
        "record_bytes": bytes,
        "in_flight": in_flight,
        "veltrix_log_single": {"records_per_second": rate(single), "fsyncs": single_stats.syncs, "mb_per_second": rate(single) * bytes as f64 / 1e6},
        "veltrix_log_batch_1000": {"records_per_second": rate(batch), "mb_per_second": rate(batch) * bytes as f64 / 1e6},
        "jetstream": {"records_per_second": rate(jetstream_seconds), "failed": failed, "mb_per_second": rate(jetstream_seconds) * bytes as f64 / 1e6},
        "ratio_single": jetstream_seconds / single,
        "measured_at_us": now_us(),
    }))
}

/// The JSON parse rate of the events' bytes alone: serde_json into
/// `IgnoredAny` (syntax only, no allocation of values), best of 3 passes.
pub fn parse(events: &Path) -> Result<Value> {
    let bytes = std::fs::read(events)?;
    let all: Vec<&[u8]> = lines(&bytes).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for line in &all {
            let _ = std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(line));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(json!({
        "events": all.len(),
        "bytes": bytes.len(),
        "events_per_second": all.len() as f64 / best,
        "mb_per_second": bytes.len() as f64 / best / 1e6,
    }))
}
