//! One function per subcommand.

use crate::load::{count_errors, load_config, read_sources};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::{Plan, run_ndjson};

pub fn check(path: &Path, json: bool) -> Result<ExitCode> {
    let sources = read_sources(path)?;
    match veltrix_config::compile(&sources) {
        Ok(config) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "version": config.version, "diagnostics": []})
                );
            } else {
                println!(
                    "ok: {} is valid (version {}): {} event types, {} currencies, {} rules, {} hunts, {} leaderboards, {} views",
                    path.display(),
                    config.version,
                    config.event_types.len() - 1,
                    config.currencies.len(),
                    config.rules.len(),
                    config.hunts.len(),
                    config.leaderboards.len(),
                    config.views.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "diagnostics": diagnostics})
                );
            } else {
                eprint!("{}", crate::render::render(&sources, &diagnostics));
                eprintln!(
                    "error: {} is invalid: {} errors",
                    path.display(),
                    count_errors(&diagnostics)
                );
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub fn parse_time(text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let ts: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("invalid time \"{text}\": expected RFC 3339 or integer ms"))?;
    Ok(ts.as_millisecond())
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub fn run(
    config: &Path,
    events: &Path,
    out: Option<&Path>,
    now: Option<&str>,
    partitions: usize,
) -> Result<ExitCode> {
    if partitions == 0 || partitions > 1024 {
        bail!("--partitions must be from 1 to 1024");
    }
    let config = load_config(config)?;
    let bytes = std::fs::read(events)
        .with_context(|| format!("cannot read events {}", events.display()))?;
    let accept_time = match now {
        Some(text) => parse_time(text)?,
        None => now_ms(),
    };
    let plan = Arc::new(Plan::new(config));
    let (ingest, engine) = run_ndjson(plan, &bytes, accept_time, partitions);
    let state = dump(&DumpSource::from_engine(&ingest, &engine));
    let text = state.to_json_pretty();
    match out {
        Some(path) => {
            std::fs::write(path, format!("{text}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            let _ = writeln!(stdout, "{text}");
        }
    }
    eprintln!(
        "accepted {}, duplicates {}, rejected {}; {} players, {} grants{}",
        ingest.counts.accepted,
        ingest.counts.duplicates,
        ingest.counts.rejected,
        state.players.len(),
        state.grants.len(),
        out.map(|p| format!("; wrote {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn test(config_path: &Path, cases: &[PathBuf]) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let files = if cases.is_empty() {
        default_cases(config_path)?
    } else {
        cases.to_vec()
    };
    let plan = Arc::new(Plan::new(config));
    let mut passed = 0;
    let mut failed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let suite = crate::cases::parse_suite(&text, file)
            .with_context(|| format!("invalid case file {}", file.display()))?;
        for case in &suite {
            let failures = crate::cases::run_case(&plan, case);
            if failures.is_empty() {
                passed += 1;
                println!("PASS {}: {}", file.display(), case.name);
            } else {
                failed += 1;
                println!("FAIL {}: {}", file.display(), case.name);
                for failure in failures {
                    println!("     {failure}");
                }
            }
        }
    }
    println!("cases: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn default_cases(config: &Path) -> Result<Vec<PathBuf>> {
    let base = if config.is_dir() {
        config.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let dir = base.join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no case files given and cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "no case files given and {} holds no *.toml files",
            dir.display()
        );
    }
    Ok(files)
}

pub fn schema() -> Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&veltrix_config::json_schema())?
    );
    Ok(ExitCode::SUCCESS)
}

pub fn hash_answer(answer: &str) -> Result<ExitCode> {
    println!("{}", hex_of(&veltrix_config::answer_sha256_of(answer)));
    Ok(ExitCode::SUCCESS)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
