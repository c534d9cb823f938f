//! `veltrix serve`: load the configuration, build the plan, run the server
//! until ctrl-c or SIGTERM.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use veltrix_server::{DEFAULT_DATA_DIR, DEFAULT_LISTEN, ServeSettings, ServerOptions};

/// Command-line overrides of the configuration's `[server]` section.
pub struct ServeArgs {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_body: usize,
    pub queue_capacity: usize,
    pub log_json: bool,
    pub snapshot_every: u64,
    pub snapshot_pacing: u32,
    pub snapshot_keep: usize,
}

pub fn serve(config_path: &Path, args: ServeArgs) -> Result<ExitCode> {
    veltrix_server::init_logging(args.log_json);
    // The sources go to the server too: restarting with an edited file
    // applies it as a configuration switch at the end of the log.
    let sources = crate::load::read_sources(config_path)?;
    let config = crate::load::compile_sources(config_path, &sources)?;
    let settings = &config.server;
    let listen = args
        .listen
        .or_else(|| settings.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    // A relative data_dir is relative to the current directory, like every
    // other path the CLI takes.
    let data_dir = args.data_dir.unwrap_or_else(|| {
        PathBuf::from(
            settings
                .data_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
        )
    });
    let mut options = ServerOptions::new(data_dir);
    options.config_sources = Some(sources.into_iter().map(|s| (s.name, s.text)).collect());
    options.partitions = settings.partitions.unwrap_or(1) as usize;
    options.body_limit = args.max_body;
    options.queue_capacity = args.queue_capacity;
    options.snapshot_every = (args.snapshot_every > 0).then_some(args.snapshot_every);
    if args.snapshot_pacing == 0 {
        anyhow::bail!("--snapshot-pacing must be at least 1 (1 turns pacing off)");
    }
    options.snapshot_pacing = args.snapshot_pacing;
    if args.snapshot_keep == 0 {
        anyhow::bail!("--snapshot-keep must be at least 1");
    }
    options.snapshot_keep = args.snapshot_keep;
    let plan = crate::cmd::plan_for(config);
    veltrix_server::serve(plan, ServeSettings { listen, options })
        .context("the server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}
