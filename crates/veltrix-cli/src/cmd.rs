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
    let plan = plan_for(config);
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
    let plan = plan_for(config);
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
    println!("{}", hex_of(&veltrix_config::answer_digest(answer)));
    Ok(ExitCode::SUCCESS)
}

/// Prints a new key (shown once) and the configuration entry with its hash.
pub fn new_api_key(name: &str, scopes: &[String]) -> Result<ExitCode> {
    for scope in scopes {
        if !["ingest", "read", "admin"].contains(&scope.as_str()) {
            bail!("unknown scope \"{scope}\": expected ingest, read or admin");
        }
    }
    let (key, sha256) = veltrix_server::new_api_key()
        .map_err(|e| anyhow::anyhow!("cannot draw a random key: {e}"))?;
    let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    println!("key (give it to the client; it is not stored anywhere): {key}");
    println!();
    println!("[[server.api_keys]]");
    println!("name = \"{name}\"");
    println!("sha256 = \"{sha256}\"");
    println!("scopes = [{}]", scopes.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// Environment variable holding the server secret for generated puzzles.
pub const PUZZLE_SECRET_ENV: &str = "VELTRIX_PUZZLE_SECRET";

/// The engine plan with the puzzle secret from the environment. Generated
/// puzzles, and so the state, depend on the secret: runs that must agree
/// (a replay, a test against the server) must use the same one.
pub fn plan_for(config: Arc<veltrix_config::Config>) -> Arc<Plan> {
    let has_puzzles = config
        .hunts
        .iter()
        .flat_map(|h| &h.stages)
        .any(|s| matches!(s.kind, veltrix_config::StageKind::Puzzle(_)));
    match std::env::var(PUZZLE_SECRET_ENV) {
        Ok(secret) if !secret.is_empty() => {
            Arc::new(Plan::with_secret(config, Arc::from(secret.as_bytes())))
        }
        _ => {
            if has_puzzles {
                eprintln!(
                    "warning: {PUZZLE_SECRET_ENV} is not set; generated puzzles use the public development secret, so players could derive each other's instances"
                );
            }
            Arc::new(Plan::new(config))
        }
    }
}

pub fn puzzle_preview(
    config_path: &Path,
    hunt: &str,
    stage: &str,
    player: &str,
    reveal: bool,
    json: bool,
) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let Some(hunt_id) = config.hunt(hunt) else {
        let help = veltrix_config::did_you_mean(hunt, config.hunts.iter().map(|h| h.name.as_str()))
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        bail!("unknown hunt \"{hunt}\"{help}");
    };
    let stages = &config.hunts[hunt_id as usize].stages;
    let Some(stage_index) = stages.iter().position(|s| s.id == stage) else {
        let help = veltrix_config::did_you_mean(stage, stages.iter().map(|s| s.id.as_str()))
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        bail!("hunt \"{hunt}\" has no stage \"{stage}\"{help}");
    };
    if player.is_empty() || player.len() > veltrix_core::event::MAX_ID_BYTES {
        bail!(
            "--player must be 1 to {} bytes",
            veltrix_core::event::MAX_ID_BYTES
        );
    }
    let plan = plan_for(config);
    let Some(result) =
        veltrix_core::puzzles::puzzle_instance(&plan, hunt_id, stage_index as u16, player)
    else {
        bail!("stage \"{stage}\" of hunt \"{hunt}\" is not a puzzle stage");
    };
    let instance =
        result.map_err(|e| anyhow::anyhow!("cannot generate this player's instance: {e}"))?;
    if json {
        let mut value = serde_json::json!({"kind": instance.kind.as_str(), "difficulty": instance.difficulty, "text": instance.text});
        if reveal {
            value["answer"] = serde_json::json!(instance.answer);
        }
        println!("{value}");
    } else {
        println!(
            "{hunt} / {stage} for {player}: {} ({})\n",
            instance.kind.as_str(),
            instance.difficulty
        );
        println!("{}", instance.text);
        if reveal {
            println!("\nanswer: {}", instance.answer);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
