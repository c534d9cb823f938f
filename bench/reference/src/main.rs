//! The reference stack: the pipeline users assemble today instead of
//! Veltrix, driven with the same events, to measure Veltrix against.
//!
//! - `publish`: validates each event (as an API gateway in front of the
//!   broker would) and publishes every valid one to NATS JetStream with
//!   `Nats-Msg-Id` = event id (broker dedup), waiting for the durable
//!   publish acknowledgement;
//! - `consume`: a durable pull consumer that evaluates the configuration's
//!   rules and hunts with the Veltrix engine crates, then applies the grants:
//!   `ZINCRBY` on Redis sorted sets for the leaderboards and an idempotent
//!   `INSERT … ON CONFLICT (grant_id) DO NOTHING` into PostgreSQL, then acks;
//! - `verify`: checks that the stack and a Veltrix server produced the same
//!   leaderboard top 100s and grant count;
//! - `rank`, `log`, `parse`: the component comparisons.
//!
//! See README.md beside this file for the setup and what is measured.

mod components;
mod stack;
mod verify;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "veltrix-reference",
    about = "The reference stack (JetStream + consumer + Redis + PostgreSQL)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the JetStream stream and the ledger table, empty the Redis database.
    Setup {
        #[arg(long)]
        nats: String,
        #[arg(long)]
        redis: String,
        #[arg(long)]
        postgres: String,
    },
    /// Publish the events of an NDJSON file to JetStream (acknowledged, deduplicated by id).
    Publish {
        #[arg(long)]
        events: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        nats: String,
        /// Publishes waiting for their acknowledgement at once.
        #[arg(long, default_value_t = 1024)]
        in_flight: usize,
        /// Open loop: publish at this many events per second (latency is then
        /// measured from each event's scheduled time). Default: as fast as acks allow.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Consume the stream: evaluate rules and hunts, apply grants to Redis and PostgreSQL, ack.
    Consume {
        #[arg(long)]
        events: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        nats: String,
        #[arg(long)]
        redis: String,
        #[arg(long)]
        postgres: String,
        /// Most messages handled per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare the stack's leaderboards and grant count with a Veltrix server's.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// The consumer's report (names the current period buckets).
        #[arg(long)]
        consumer_report: PathBuf,
        /// Directory with `<board>.json` (GET /v1/leaderboards/<board>?limit=100) and `metrics.txt`.
        #[arg(long)]
        veltrix_dir: PathBuf,
        #[arg(long)]
        redis: String,
        #[arg(long)]
        postgres: String,
    },
    /// veltrix-rank vs Redis ZINCRBY/ZREVRANK (pipelined) on the same operations.
    Rank {
        #[arg(long)]
        redis: String,
        #[arg(long, default_value_t = 1_000_000)]
        players: u32,
        #[arg(long, default_value_t = 1_000_000)]
        ops: u32,
        #[arg(long, default_value_t = 1000)]
        pipeline: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// veltrix-log vs JetStream publishes, both acknowledged after fsync.
    Log {
        #[arg(long)]
        nats: String,
        /// Directory for the veltrix-log segments (same disk as the JetStream store).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        #[arg(long, default_value_t = 120)]
        bytes: usize,
        #[arg(long, default_value_t = 1024)]
        in_flight: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// JSON parse rate of the event bytes alone (no validation, no engine).
    Parse {
        #[arg(long)]
        events: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        match cli.command {
            Command::Setup {
                nats,
                redis,
                postgres,
            } => stack::setup(&nats, &redis, &postgres).await.map(|()| None),
            Command::Publish {
                events,
                config,
                nats,
                in_flight,
                rate,
                out,
            } => stack::publish(&events, &config, &nats, in_flight, rate)
                .await
                .map(|r| Some((r, out))),
            Command::Consume {
                events,
                config,
                nats,
                redis,
                postgres,
                batch,
                out,
            } => stack::consume(&events, &config, &nats, &redis, &postgres, batch)
                .await
                .map(|r| Some((r, out))),
            Command::Verify {
                config,
                consumer_report,
                veltrix_dir,
                redis,
                postgres,
            } => verify::verify(&config, &consumer_report, &veltrix_dir, &redis, &postgres)
                .await
                .map(|r| Some((r, None))),
            Command::Rank {
                redis,
                players,
                ops,
                pipeline,
                out,
            } => components::rank(&redis, players, ops, pipeline)
                .await
                .map(|r| Some((r, out))),
            Command::Log {
                nats,
                dir,
                records,
                bytes,
                in_flight,
                out,
            } => components::log(&nats, &dir, records, bytes, in_flight)
                .await
                .map(|r| Some((r, out))),
            Command::Parse { events, out } => components::parse(&events).map(|r| Some((r, out))),
        }
    })?;
    if let Some((report, out)) = report {
        let text = serde_json::to_string_pretty(&report)?;
        match out {
            Some(path) => std::fs::write(path, text + "\n")?,
            None => println!("{text}"),
        }
    }
    Ok(())
}

/// The configuration and a plan with the puzzle secret of
/// `VELTRIX_PUZZLE_SECRET` (as `veltrix serve` uses), so generated puzzles
/// have the same answers on both sides.
pub fn load_plan(path: &std::path::Path) -> Result<std::sync::Arc<veltrix_core::Plan>> {
    use veltrix_config::Source;
    let mut sources = Vec::new();
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            sources.push(Source::new(name, std::fs::read_to_string(&file)?));
        }
    } else {
        sources.push(Source::new("veltrix.toml", std::fs::read_to_string(path)?));
    }
    let config = veltrix_config::compile(&sources)
        .map_err(|d| anyhow::anyhow!("invalid configuration: {} diagnostics", d.len()))?;
    let config = std::sync::Arc::new(config);
    let plan = match std::env::var("VELTRIX_PUZZLE_SECRET") {
        Ok(secret) if !secret.is_empty() => {
            veltrix_core::Plan::with_secret(config, std::sync::Arc::from(secret.as_bytes()))
        }
        _ => veltrix_core::Plan::new(config),
    };
    Ok(std::sync::Arc::new(plan))
}

/// Microseconds since the epoch (the publisher stamps messages with it and
/// the consumer, on the same machine, subtracts it).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn percentiles_ms(h: &hdrhistogram::Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p99.9": ms(0.999), "max": h.max() as f64 / 1000.0})
}

/// Non-blank lines of an NDJSON buffer.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
}

/// utime + stime of a process (`self` or a pid), from /proc.
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident set (VmHWM) of a process, in MiB.
pub fn process_peak_rss_mb(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
