//! Publisher and consumer of the reference stack.

use crate::{lines, load_plan, now_us, percentiles_ms};
use anyhow::{Context as _, Result, bail};
use async_nats::jetstream::{
    self, consumer::AckPolicy, message::PublishMessage, stream::StorageType,
};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use veltrix_core::boards::bucket_of;
use veltrix_core::partition::Effect;
use veltrix_core::{Engine, parse_event};

/// A JetStream context on `nats` with at most `in_flight` publishes
/// awaiting their acknowledgement (further publishes wait).
pub async fn jetstream_context(nats: &str, in_flight: usize) -> Result<jetstream::Context> {
    let client = async_nats::connect(nats)
        .await
        .context("connecting to NATS")?;
    Ok(jetstream::ContextBuilder::new()
        .max_ack_inflight(in_flight)
        .backpressure_on_inflight(true)
        .timeout(Duration::from_secs(30))
        .build(client))
}

pub const STREAM: &str = "EVENTS";
pub const SUBJECT: &str = "events.in";
pub const CONSUMER: &str = "rules";
/// Header carrying the publisher's send time (µs since the epoch), so the
/// consumer can measure end-to-end latency. Headers are not payload: the
/// payload is the event's bytes, exactly as in the events file.
pub const SENT_HEADER: &str = "Bench-Sent-Us";

pub async fn setup(nats: &str, redis: &str, postgres: &str) -> Result<()> {
    let client = async_nats::connect(nats)
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client);
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(jetstream::stream::Config {
        name: STREAM.to_string(),
        subjects: vec![SUBJECT.to_string()],
        storage: StorageType::File,
        num_replicas: 1,
        // Dedup by Nats-Msg-Id over the whole run.
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .context("creating the stream")?;
    let stream = js.get_stream(STREAM).await?;
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(CONSUMER.to_string()),
            ack_policy: AckPolicy::All,
            max_ack_pending: 1_000_000,
            ..Default::default()
        })
        .await
        .context("creating the consumer")?;

    let mut redis = redis::Client::open(redis)?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut redis).await?;

    let (pg, connection) = tokio_postgres::connect(postgres, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    pg.batch_execute(
        "DROP TABLE IF EXISTS grants;
         CREATE TABLE grants (
             grant_id   text PRIMARY KEY,
             player     text NOT NULL,
             source     text NOT NULL,
             points     bigint NOT NULL,
             currencies text NOT NULL,
             badge      text,
             events     text NOT NULL,
             ts         bigint NOT NULL
         );",
    )
    .await?;
    Ok(())
}

/// Validates and publishes every event of the file; returns the report.
pub async fn publish(
    events: &Path,
    config: &Path,
    nats: &str,
    in_flight: usize,
    rate: Option<f64>,
) -> Result<Value> {
    let plan = load_plan(config)?;
    let bytes = std::fs::read(events).with_context(|| format!("reading {}", events.display()))?;
    let js = crate::stack::jetstream_context(nats, in_flight).await?;
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(jetstream::context::PublishAckFuture, Instant)>(in_flight);
    let collector = tokio::spawn(async move {
        let mut acks = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
        let (mut stored, mut duplicates, mut failed) = (0u64, 0u64, 0u64);
        while let Some((ack, sent)) = rx.recv().await {
            match ack.await {
                Ok(ack) if ack.duplicate => duplicates += 1,
                Ok(_) => stored += 1,
                Err(_) => failed += 1,
            }
            acks.saturating_record((sent.elapsed().as_micros() as u64).max(1));
        }
        (acks, stored, duplicates, failed)
    });
    let started = Instant::now();
    let started_us = now_us();
    let (mut sent, mut rejected) = (0u64, 0u64);
    for (i, line) in lines(&bytes).enumerate() {
        // Open loop: each event has its scheduled time, and latencies count
        // from it, so a slow pipeline cannot hide its queueing.
        let (scheduled, stamp) = match rate {
            Some(rate) => {
                let offset = Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until((started + offset).into()).await;
                (started + offset, started_us + offset.as_micros() as u64)
            }
            None => (Instant::now(), now_us()),
        };
        // The gateway in front of the broker validates the event; only
        // valid events are published (an invalid one must not use up its
        // id in the broker's dedup window).
        let event = match parse_event(&plan.config, line, 0) {
            Ok(event) => event,
            Err(_) => {
                rejected += 1;
                continue;
            }
        };
        let message = PublishMessage::build()
            .payload(bytes::Bytes::copy_from_slice(line))
            .header(SENT_HEADER, stamp.to_string().as_str())
            .message_id(&*event.id);
        let ack = js
            .send_publish(SUBJECT, message)
            .await
            .context("publishing")?;
        tx.send((ack, scheduled)).await.ok();
        sent += 1;
    }
    drop(tx);
    let (acks, stored, duplicates, failed) = collector.await?;
    let seconds = started.elapsed().as_secs_f64();
    let total = sent + rejected;
    Ok(json!({
        "events": total,
        "published": sent,
        "stored": stored,
        "duplicates": duplicates,
        "rejected": rejected,
        "failed": failed,
        "seconds": seconds,
        "started_us": started_us,
        "events_per_second": total as f64 / seconds,
        "publish_ack_latency_ms": percentiles_ms(&acks),
        "in_flight": in_flight,
        "rate": rate,
    }))
}

/// Consumes until every unique valid event of the file has been applied.
pub async fn consume(
    events: &Path,
    config: &Path,
    nats: &str,
    redis: &str,
    postgres: &str,
    batch: usize,
) -> Result<Value> {
    let plan = load_plan(config)?;
    // How many messages the stream will hold: the file's unique valid
    // events (computed before anything is timed).
    let bytes = std::fs::read(events).with_context(|| format!("reading {}", events.display()))?;
    let mut ids = HashSet::new();
    for line in lines(&bytes) {
        if let Ok(event) = parse_event(&plan.config, line, 0) {
            ids.insert(event.id);
        }
    }
    let expected = ids.len() as u64;
    drop(ids);
    drop(bytes);

    let client = async_nats::connect(nats)
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(STREAM)
        .await
        .context("the stream (run setup first)")?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(CONSUMER)
        .await
        .map_err(|e| anyhow::anyhow!("consumer: {e}"))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await?
        .ready_chunks(batch);
    let mut redis = redis::Client::open(redis)?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let (mut pg, connection) = tokio_postgres::connect(postgres, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    let insert = pg
        .prepare(
            "INSERT INTO grants (grant_id, player, source, points, currencies, badge, events, ts)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[])
             ON CONFLICT (grant_id) DO NOTHING",
        )
        .await?;

    let config = plan.config.clone();
    let mut engine = Engine::new(plan.clone(), 1);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut applied, mut grants, mut inserted, mut zincrby, mut transactions) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first_sent_us = u64::MAX;
    let mut last_commit_us = 0u64;
    let mut bad = 0u64;
    while applied < expected {
        let chunk = match tokio::time::timeout(Duration::from_secs(120), messages.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => bail!("the consumer's message stream ended"),
            Err(_) => bail!("no message for 120 s after {applied} of {expected}"),
        };
        let mut pipe = redis::pipe();
        let mut pipe_len = 0u64;
        let mut rows: [Vec<String>; 7] = Default::default();
        let mut row_ts: Vec<i64> = Vec::new();
        let mut sent = Vec::with_capacity(chunk.len());
        let mut last = None;
        for message in chunk {
            let message = message.context("receiving")?;
            let seq = message
                .info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence;
            if let Some(us) = message
                .headers
                .as_ref()
                .and_then(|h| h.get(SENT_HEADER))
                .and_then(|v| v.as_str().parse::<u64>().ok())
            {
                sent.push(us);
                first_sent_us = first_sent_us.min(us);
            }
            match parse_event(&config, &message.payload, 0) {
                Ok(event) => {
                    let effects: Vec<usize> = engine
                        .apply_event(seq, &event)
                        .iter()
                        .filter_map(|e| match e {
                            Effect::Granted(index) => Some(*index),
                            _ => None,
                        })
                        .collect();
                    let p = engine.partition_of(&event.player);
                    for index in effects {
                        let grant = &engine.partitions[p].grants[index];
                        grants += 1;
                        if grant.points > 0 {
                            for board in &config.leaderboards {
                                if board.hunt.is_some() && board.hunt != grant.cause.hunt() {
                                    continue;
                                }
                                let key = format!(
                                    "lb:{}:{}",
                                    board.name,
                                    bucket_of(board.period, grant.ts)
                                );
                                pipe.zincr(key, &*grant.player, grant.points).ignore();
                                zincrby += 1;
                                pipe_len += 1;
                            }
                        }
                        rows[0].push(grant.id.to_string());
                        rows[1].push(grant.player.to_string());
                        rows[2].push(grant.source.to_string());
                        rows[3].push(grant.points.to_string());
                        rows[4].push(
                            grant
                                .currencies
                                .iter()
                                .map(|(c, n)| format!("{}:{n}", config.currencies[*c as usize]))
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                        rows[5].push(
                            grant
                                .badge
                                .map(|b| config.badges[b as usize].clone())
                                .unwrap_or_default(),
                        );
                        rows[6].push(
                            grant
                                .events
                                .iter()
                                .map(|e| &**e)
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                        row_ts.push(grant.ts);
                    }
                }
                Err(_) => bad += 1,
            }
            applied += 1;
            last = Some(message);
        }
        // Leaderboards first, then the ledger in one transaction, then the
        // ack (AckPolicy::All: acking the last message acks the chunk).
        if pipe_len > 0 {
            pipe.query_async::<()>(&mut redis)
                .await
                .context("Redis pipeline")?;
        }
        if !row_ts.is_empty() {
            let points: Vec<i64> = rows[3].iter().map(|p| p.parse().unwrap_or(0)).collect();
            let badges: Vec<Option<&str>> = rows[5]
                .iter()
                .map(|b| (!b.is_empty()).then_some(b.as_str()))
                .collect();
            let tx = pg.transaction().await?;
            inserted += tx
                .execute(
                    &insert,
                    &[
                        &rows[0], &rows[1], &rows[2], &points, &rows[4], &badges, &rows[6], &row_ts,
                    ],
                )
                .await
                .context("ledger insert")?;
            tx.commit().await?;
            transactions += 1;
        }
        if let Some(last) = last {
            last.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        }
        let now = now_us();
        last_commit_us = now;
        for us in sent {
            latency.saturating_record(now.saturating_sub(us).max(1));
        }
    }
    let seconds = (last_commit_us.saturating_sub(first_sent_us)) as f64 / 1e6;
    let current: Value = config
        .leaderboards
        .iter()
        .map(|b| {
            let bucket = bucket_of(b.period, engine.max_ts.unwrap_or(0));
            (b.name.clone(), json!(format!("lb:{}:{bucket}", b.name)))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    Ok(json!({
        "messages": applied,
        "unparseable": bad,
        "grants": grants,
        "ledger_rows_inserted": inserted,
        "zincrby": zincrby,
        "transactions": transactions,
        "first_sent_us": first_sent_us,
        "last_commit_us": last_commit_us,
        "pipeline_seconds": seconds,
        "end_to_end_latency_ms": percentiles_ms(&latency),
        "board_keys": current,
        "process_cpu_seconds": crate::process_cpu_seconds("self"),
        "process_peak_rss_mb": crate::process_peak_rss_mb("self"),
    }))
}
