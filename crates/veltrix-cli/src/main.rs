//! The `veltrix` binary: parses arguments, runs one subcommand, maps the
//! outcome to an exit code.
//!
//! Exit codes: 0 success; 1 the input was examined and found wanting
//! (invalid configuration, failing test case); 2 the command could not run
//! (unreadable file, bad arguments).

mod bench;
mod cases;
mod cmd;
mod demo;
mod load;
mod render;
mod replay;
mod serve;
mod threads;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: the engine allocates and frees
/// small objects (events, grants, ids) at a high rate, and glibc's malloc
/// took 15 % of the server's CPU samples under `veltrix bench`
/// (docs/PERFORMANCE.md has the A/B figures).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "veltrix",
    version,
    about = "Veltrix: a real-time treasure-hunt engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration (file or directory of *.toml); exit 1 with diagnostics when invalid.
    Check {
        config: PathBuf,
        /// Print diagnostics as JSON instead of annotated source.
        #[arg(long)]
        json: bool,
    },
    /// Process an NDJSON file of events offline with the server's engine and write the state dump.
    Run {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// Where to write the state dump (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Acceptance time for events without `ts` (RFC 3339 or ms); default: now.
        #[arg(long)]
        now: Option<String>,
        /// Number of partitions (results do not depend on it).
        #[arg(long, default_value_t = 1)]
        partitions: usize,
    },
    /// Run configuration test cases; prints a line per case and a summary; exit 1 on failure.
    Test {
        config: PathBuf,
        /// Case files (TOML). Default: every *.toml under a `tests` folder beside the configuration.
        cases: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the configuration format (for editors).
    Schema,
    /// Print the answer_sha256 of an answer (normalized: trimmed, lowercased, spaces collapsed).
    HashAnswer { answer: String },
    /// Generate a random API key and the [[server.api_keys]] entry that stores only its hash.
    NewApiKey {
        /// Name of the key in the configuration.
        #[arg(long, default_value = "my-key")]
        name: String,
        /// Scopes: ingest, read, admin (admin implies all).
        #[arg(long, value_delimiter = ',', default_value = "ingest,read")]
        scopes: Vec<String>,
    },
    /// A self-contained demonstration: a server on the embedded example, simulated players, a live view.
    Demo {
        /// Where the demo server listens (loopback only).
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: String,
        #[arg(long, default_value_t = 300)]
        players: usize,
        /// How long the players play, in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Events per second the players send.
        #[arg(long, default_value_t = 2000)]
        rate: usize,
        /// Data directory (default: a new one under the system temp dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Exit when the simulation ends instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Load generator: send NDJSON batches to a server (or one started in-process) and report throughput and latency.
    Bench {
        /// Server to load, e.g. http://127.0.0.1:7400 (default: start one in-process on a temp dir).
        #[arg(long)]
        url: Option<String>,
        /// Configuration for the in-process server (default: the embedded example).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Open loop: offered events per second (default: closed loop at the maximum rate).
        #[arg(long)]
        rate: Option<u64>,
        /// Closed loop: requests in flight.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 100_000)]
        players: usize,
        /// Percent of events resending a recent valid event byte for byte.
        #[arg(long, default_value_t = 1.0)]
        duplicates: f64,
        /// Percent of invalid events.
        #[arg(long, default_value_t = 1.0)]
        invalid: f64,
        /// Percent of events that move the sampled player one step through a hunt.
        #[arg(long, default_value_t = 20.0)]
        hunt_percent: f64,
        /// Zipf exponent of player activity.
        #[arg(long, default_value_t = 1.1)]
        zipf: f64,
        /// Seed of the workload (same seed, same configuration: same bytes).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Event ids are PREFIX<n> (default: a prefix unique to this run).
        #[arg(long)]
        id_prefix: Option<String>,
        /// Send the events of this NDJSON file instead of generating them.
        #[arg(long, conflicts_with = "write_events")]
        events_file: Option<PathBuf>,
        /// Write the generated events to this NDJSON file and exit without sending.
        #[arg(long)]
        write_events: Option<PathBuf>,
        /// Leaderboard reads per second during the run (their latency is reported).
        #[arg(long, default_value_t = 0)]
        reads: u64,
        /// Report CPU time and peak RSS of this server process, and per
        /// thread name its CPU time, time waiting for a CPU and sleeps
        /// (Linux).
        #[arg(long)]
        server_pid: Option<u32>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run the HTTP server (loopback only unless API keys are configured); stops on ctrl-c or SIGTERM.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Listen address (default: `server.listen` of the configuration, else 127.0.0.1:7400).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory for the log (default: `server.data_dir`, else ./veltrix-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Largest request body in bytes; larger requests get 413.
        #[arg(long, default_value_t = veltrix_server::DEFAULT_BODY_LIMIT)]
        max_body: usize,
        /// Commands the engine queue holds before requests get 429.
        #[arg(long, default_value_t = veltrix_server::DEFAULT_QUEUE_CAPACITY)]
        queue_capacity: usize,
        /// Write logs as JSON lines.
        #[arg(long)]
        log_json: bool,
        /// Take a snapshot every N log records (0 = only at shutdown); bounds restart time.
        #[arg(long, default_value_t = veltrix_server::DEFAULT_SNAPSHOT_EVERY)]
        snapshot_every: u64,
        /// Start a snapshot no sooner than N times the previous one's duration after it started, so snapshots take at most 1/N of a core (1 = every --snapshot-every records).
        #[arg(long, default_value_t = veltrix_server::DEFAULT_SNAPSHOT_PACING)]
        snapshot_pacing: u32,
        /// How many snapshots to keep (older ones, and the log they cover, are removed).
        #[arg(long, default_value_t = veltrix_server::DEFAULT_SNAPSHOT_KEEP)]
        snapshot_keep: usize,
    },
    /// Rebuild the state from a server's log alone (stop the server first) and write the state dump.
    Replay {
        #[arg(long)]
        config: PathBuf,
        /// Data directory (default: `server.data_dir`, else ./veltrix-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where to write the state dump (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare the latest snapshot plus the log after it with a replay of the whole log; exit 1 on any difference.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// Data directory (default: `server.data_dir`, else ./veltrix-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Generated puzzles.
    #[command(subcommand)]
    Puzzle(PuzzleCommand),
}

#[derive(Subcommand)]
enum PuzzleCommand {
    /// Print the puzzle instance a player gets for a stage (uses VELTRIX_PUZZLE_SECRET).
    Preview {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        hunt: String,
        #[arg(long)]
        stage: String,
        #[arg(long)]
        player: String,
        /// Also print the answer (for operators testing a hunt).
        #[arg(long)]
        reveal: bool,
        /// Print one JSON object {"kind", "difficulty", "text", "answer"?}.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config, json } => cmd::check(&config, json),
        Command::Run {
            config,
            events,
            out,
            now,
            partitions,
        } => cmd::run(&config, &events, out.as_deref(), now.as_deref(), partitions),
        Command::Test { config, cases } => cmd::test(&config, &cases),
        Command::Schema => cmd::schema(),
        Command::HashAnswer { answer } => cmd::hash_answer(&answer),
        Command::NewApiKey { name, scopes } => cmd::new_api_key(&name, &scopes),
        Command::Bench {
            url,
            config,
            events,
            batch,
            rate,
            connections,
            players,
            duplicates,
            invalid,
            reads,
            server_pid,
            json,
            hunt_percent,
            zipf,
            seed,
            id_prefix,
            events_file,
            write_events,
        } => bench::bench(bench::BenchArgs {
            url,
            config,
            events,
            batch,
            rate,
            connections,
            players,
            duplicate_percent: duplicates,
            invalid_percent: invalid,
            reads_per_second: reads,
            server_pid,
            json,
            seed,
            hunt_percent,
            zipf,
            events_file,
            write_events,
            id_prefix,
        }),
        Command::Demo {
            listen,
            players,
            seconds,
            rate,
            data_dir,
            exit,
        } => demo::demo(demo::DemoArgs {
            listen,
            players,
            seconds,
            rate,
            data_dir,
            exit,
        }),
        Command::Serve {
            config,
            listen,
            data_dir,
            max_body,
            queue_capacity,
            log_json,
            snapshot_every,
            snapshot_pacing,
            snapshot_keep,
        } => serve::serve(
            &config,
            serve::ServeArgs {
                listen,
                data_dir,
                max_body,
                queue_capacity,
                log_json,
                snapshot_every,
                snapshot_pacing,
                snapshot_keep,
            },
        ),
        Command::Replay {
            config,
            data_dir,
            out,
        } => replay::replay(&config, data_dir, out.as_deref()),
        Command::Verify { config, data_dir } => replay::verify(&config, data_dir),
        Command::Puzzle(PuzzleCommand::Preview {
            config,
            hunt,
            stage,
            player,
            reveal,
            json,
        }) => cmd::puzzle_preview(&config, &hunt, &stage, &player, reveal, json),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
