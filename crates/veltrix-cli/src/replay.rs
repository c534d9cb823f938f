//! `veltrix replay` and `veltrix verify`: rebuild state from a server's data
//! directory with the server's own start-up code (`veltrix_server::rebuild`).
//!
//! - `replay` rebuilds from the log alone and writes the state dump.
//! - `verify` rebuilds twice — the latest snapshot rolled forward with the
//!   log after it, and the whole log — and compares everything a reader can
//!   observe (dump, ledgers, views, ingest position). Exit 1 on any
//!   difference (or a corrupt snapshot file), 0 when they agree.
//!
//! Both need the data directory to themselves: a running server holds its
//! lock, and they say so.

use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use veltrix_server::rebuild::{comparable_state, differences, open_data_dir};
use veltrix_server::{DEFAULT_DATA_DIR, Source, rebuild};

/// The data directory: the flag, else `server.data_dir`, else the default
/// (as for `veltrix serve`).
fn data_dir_of(config: &veltrix_config::Config, flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| {
        PathBuf::from(
            config
                .server
                .data_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
        )
    })
}

pub fn replay(
    config_path: &Path,
    data_dir: Option<PathBuf>,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let config = crate::load::load_config(config_path)?;
    let data_dir = data_dir_of(&config, data_dir);
    let partitions = config.server.partitions.unwrap_or(1) as usize;
    let plan = crate::cmd::plan_for(config);
    let (log, store, recovery) = open_data_dir(&data_dir)?;
    report_torn_tail(&recovery);
    let rebuilt = rebuild(plan, partitions, &log, &store, Source::LogOnly)
        .context("cannot rebuild the state from the log")?;
    drop(log);
    let core = &rebuilt.core;
    let source = veltrix_core::dump::DumpSource::from_engine(&core.ingest, &core.engine);
    let state = veltrix_core::dump::dump(&source);
    let text = state.to_json_pretty();
    match out {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
    eprintln!(
        "replayed {} log records (last seq {}): accepted {}, duplicates {}, rejected {}; {} players, {} grants{}",
        rebuilt.records_replayed,
        recovery.last_seq,
        core.ingest.counts.accepted,
        core.ingest.counts.duplicates,
        core.ingest.counts.rejected,
        state.players.len(),
        state.grants.len(),
        out.map(|p| format!("; wrote {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(config_path: &Path, data_dir: Option<PathBuf>) -> Result<ExitCode> {
    let config = crate::load::load_config(config_path)?;
    let data_dir = data_dir_of(&config, data_dir);
    let partitions = config.server.partitions.unwrap_or(1) as usize;
    let plan = crate::cmd::plan_for(config);
    let (log, store, recovery) = open_data_dir(&data_dir)?;
    report_torn_tail(&recovery);
    let from_snapshot = rebuild(
        plan.clone(),
        partitions,
        &log,
        &store,
        Source::LatestSnapshot,
    )
    .context("cannot rebuild from the latest snapshot")?;
    for line in &from_snapshot.skipped_snapshots {
        println!("problem: {line}");
    }
    let Some(snapshot_seq) = from_snapshot.snapshot_seq else {
        let why = from_snapshot
            .ignored_snapshot
            .clone()
            .unwrap_or_else(|| "there is no snapshot".into());
        println!(
            "ok: nothing to compare ({why}); the whole log ({} records) replays cleanly",
            from_snapshot.records_replayed
        );
        return Ok(exit(from_snapshot.skipped_snapshots.is_empty()));
    };
    let from_log = rebuild(plan, partitions, &log, &store, Source::LogOnly)
        .context("cannot rebuild from the log alone to compare")?;
    drop(log);
    let left = comparable_state(&from_snapshot.core);
    let right = comparable_state(&from_log.core);
    let found = differences(&left, &right);
    for d in &found {
        println!(
            "{}",
            json!({"path": d.path, "snapshot_and_tail": d.left, "log": d.right})
        );
    }
    if found.is_empty() {
        println!(
            "ok: snapshot {snapshot_seq} + {} later records equals a replay of all {} records ({} players, {} grants)",
            from_snapshot.records_replayed,
            from_log.records_replayed,
            right["state"]["players"].as_object().map_or(0, |p| p.len()),
            right["state"]["grants"].as_array().map_or(0, |g| g.len()),
        );
    } else {
        println!(
            "differ: snapshot {snapshot_seq} + {} later records differs from a replay of the whole log in {} places",
            from_snapshot.records_replayed,
            found.len()
        );
    }
    Ok(exit(
        found.is_empty() && from_snapshot.skipped_snapshots.is_empty(),
    ))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn report_torn_tail(recovery: &veltrix_server::veltrix_log::Recovery) {
    if let Some(torn) = &recovery.torn_tail {
        eprintln!(
            "warning: cut a torn tail off {} at byte {} ({} bytes: {}); it was never acknowledged",
            torn.segment.display(),
            torn.offset,
            torn.bytes_cut,
            torn.reason
        );
    }
}
