//! `veltrix bench`: a load generator for a Veltrix server. Events come from
//! the shared workload generator (`crates/veltrix-workload`: Zipf players,
//! hunt progress derived from the configuration, duplicates and invalid
//! events) or from an NDJSON file, and are all in memory before the clock
//! starts, so generation is never the bottleneck (the report gives the
//! generator's own rate). They are sent as NDJSON batches over HTTP/1.1
//! either closed-loop (N requests in flight, as fast as the server
//! acknowledges) or open-loop (batches scheduled at a fixed rate, and
//! latency measured from the scheduled time, so a slow server cannot hide
//! its queueing — no coordinated omission). The schedule comes from a
//! thread that sleeps with the system's high-resolution timer ([`ticker`]);
//! see [`latency_origin`] for the one allowance, the generator's own
//! wake-up slack. Without `--url` it starts a server in-process on a
//! temporary data directory.

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
// The one workload generator, shared with the engine's criterion benchmark
// and the reference stack (bench/reference).
use veltrix_workload as workload;

pub struct BenchArgs {
    pub url: Option<String>,
    pub config: Option<PathBuf>,
    pub events: u64,
    pub batch: usize,
    pub rate: Option<u64>,
    pub connections: usize,
    pub players: usize,
    pub duplicate_percent: f64,
    pub invalid_percent: f64,
    pub reads_per_second: u64,
    pub server_pid: Option<u32>,
    pub json: bool,
    pub seed: u64,
    pub hunt_percent: f64,
    pub zipf: f64,
    /// Replay this NDJSON file instead of generating events.
    pub events_file: Option<PathBuf>,
    /// Write the generated events to this file and exit without sending.
    pub write_events: Option<PathBuf>,
    /// Event ids are `<prefix><n>`; default: unique to this run (so runs
    /// against the same server do not collide).
    pub id_prefix: Option<String>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    retries_429: AtomicU64,
    failed_requests: AtomicU64,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    if args.batch == 0 || args.events == 0 || args.connections == 0 || args.players == 0 {
        bail!("--events, --batch, --connections and --players must be at least 1");
    }
    if let Some(path) = &args.write_events {
        let generated_at = Instant::now();
        let (bytes, counts) = generate(&args)?;
        let seconds = generated_at.elapsed().as_secs_f64();
        std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        let total = counts.valid + counts.duplicates + counts.invalid;
        let summary = json!({
            "file": path.display().to_string(),
            "events": total,
            "bytes": bytes.len(),
            "valid": counts.valid,
            "duplicates": counts.duplicates,
            "invalid": counts.invalid,
            "hunt_steps": counts.hunt_steps,
            "generation_seconds": seconds,
            "generation_events_per_second": total as f64 / seconds,
        });
        if args.json {
            println!("{summary}");
        } else {
            println!(
                "wrote {total} events ({} bytes) to {}: {} valid ({} hunt steps), {} duplicates, {} invalid; generated at {:.0} events/s",
                bytes.len(),
                path.display(),
                counts.valid,
                counts.hunt_steps,
                counts.duplicates,
                counts.invalid,
                total as f64 / seconds
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The load generator is the measuring instrument: its threads get the
    // short time slices of the server's request threads (the same runtime
    // setup), so that its own wake-ups add as little as they can to the
    // latencies it reports.
    let runtime = veltrix_server::request_runtime()?;
    runtime.block_on(run(args))
}

async fn run(args: BenchArgs) -> Result<ExitCode> {
    let generated_at = Instant::now();
    let (bytes, source) = match &args.events_file {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            format!("file {}", path.display()),
        ),
        None => (
            generate(&args)?.0,
            format!(
                "generated: seed {}, {} players Zipf({}), {} % duplicates, {} % invalid, {} % hunt steps",
                args.seed,
                args.players,
                args.zipf,
                args.duplicate_percent,
                args.invalid_percent,
                args.hunt_percent
            ),
        ),
    };
    let generation = generated_at.elapsed();
    let batches = split_batches(Bytes::from(bytes), args.batch);
    let total_events: u64 = batches.iter().map(|b| b.1).sum();
    if total_events == 0 {
        bail!("no events to send");
    }

    // A server in this process, unless one was named.
    let mut local = None;
    let url = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let (url, handle) = start_local_server(args.config.as_deref()).await?;
            local = Some(handle);
            url
        }
    };
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let cpu_before = args
        .server_pid
        .or(local.as_ref().map(|_| std::process::id()))
        .and_then(cpu_seconds);

    // Per-thread figures only for a server in another process: in this
    // one, the load generator's threads would mix in.
    let server_threads = args.server_pid.filter(|_| local.is_none());
    let threads_before = server_threads.and_then(crate::threads::by_name);
    let counters = Arc::new(Counters::default());
    let acks = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        3_600_000_000,
        3,
    )?));
    let reads = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        3_600_000_000,
        3,
    )?));
    let progress = progress_bar(total_events, args.json);
    let own_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let stop_reads = Arc::new(AtomicUsize::new(0));
    let reader = (args.reads_per_second > 0).then(|| {
        tokio::spawn(read_load(
            client.clone(),
            url.clone(),
            args.reads_per_second,
            reads.clone(),
            stop_reads.clone(),
        ))
    });
    let batches = Arc::new(batches);
    match args.rate {
        None => {
            closed_loop(
                &client,
                &url,
                &batches,
                args.connections,
                &counters,
                &acks,
                &progress,
            )
            .await
        }
        Some(rate) => {
            open_loop(
                &client, &url, &batches, rate, args.batch, &counters, &acks, &progress,
            )
            .await
        }
    }
    let elapsed = started.elapsed();
    stop_reads.store(1, Ordering::Relaxed);
    if let Some(reader) = reader {
        let _ = reader.await;
    }
    progress.finish_and_clear();
    let own_cpu_after = cpu_seconds(std::process::id());
    let cpu_after = args
        .server_pid
        .or(local.as_ref().map(|_| std::process::id()))
        .and_then(cpu_seconds);
    let threads = match (
        threads_before,
        server_threads.and_then(crate::threads::by_name),
    ) {
        (Some(before), Some(after)) => crate::threads::between(&before, &after)
            .into_iter()
            .map(|(name, t)| {
                json!({
                    "name": name,
                    "threads": t.threads,
                    "cpu_seconds": t.running,
                    "waiting_for_cpu_seconds": t.waiting,
                    "voluntary_switches": t.voluntary,
                    "involuntary_switches": t.involuntary,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let peak_rss = args
        .server_pid
        .or(local.as_ref().map(|_| std::process::id()))
        .and_then(peak_rss_bytes);

    let acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let reads = reads.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let report = json!({
        "target": url,
        "workload": source,
        "mode": match args.rate { None => format!("closed loop, {} requests in flight", args.connections), Some(r) => format!("open loop at {r} events/s") },
        "events_sent": total_events,
        "batch": args.batch,
        "requests": batches.len(),
        "accepted": accepted,
        "duplicates": counters.duplicates.load(Ordering::Relaxed),
        "rejected": counters.rejected.load(Ordering::Relaxed),
        "retries_429": counters.retries_429.load(Ordering::Relaxed),
        "failed_requests": counters.failed_requests.load(Ordering::Relaxed),
        "seconds": elapsed.as_secs_f64(),
        "events_per_second": total_events as f64 / elapsed.as_secs_f64(),
        "ack_latency_ms": percentiles(&acks),
        "read_latency_ms": if reads.is_empty() { Value::Null } else { percentiles(&reads) },
        "generation_seconds": generation.as_secs_f64(),
        "generation_events_per_second": total_events as f64 / generation.as_secs_f64().max(1e-9),
        "server_cpu_seconds": match (cpu_before, cpu_after) { (Some(a), Some(b)) => json!(b - a), _ => Value::Null },
        "server_peak_rss_mb": peak_rss.map(|b| b as f64 / 1_048_576.0),
        "server_threads": threads,
        "cpu_and_rss_include_the_load_generator": local.is_some(),
        "load_generator_cpu_seconds": match (own_cpu_before, own_cpu_after) { (Some(a), Some(b)) if local.is_none() => json!(b - a), _ => Value::Null },
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    if let Some(handle) = local {
        handle.stop().await;
    }
    Ok(if counters.failed_requests.load(Ordering::Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ---- workload ---------------------------------------------------------------

/// The workload as one NDJSON buffer, from the configuration the server
/// runs (the embedded example unless `--config`).
fn generate(args: &BenchArgs) -> Result<(Vec<u8>, workload::Counts)> {
    let config = match args.config.as_deref() {
        Some(path) => crate::load::load_config(path)?,
        None => crate::demo::embedded_config()?,
    };
    let plan = crate::cmd::plan_for(config);
    let id_prefix = match &args.id_prefix {
        Some(prefix) => prefix.clone(),
        None => format!("b{}-", jiff::Timestamp::now().as_millisecond()),
    };
    let spec = workload::Spec {
        events: args.events,
        players: args.players,
        zipf_exponent: args.zipf,
        duplicate_percent: args.duplicate_percent,
        invalid_percent: args.invalid_percent,
        hunt_percent: args.hunt_percent,
        seed: args.seed,
        id_prefix,
        ..workload::Spec::default()
    };
    let workload = workload::Workload::new(plan, spec)?;
    Ok(workload.ndjson())
}

/// Splits NDJSON into request bodies of `batch` lines each (slices of one
/// buffer, no copies), with the number of events in each.
fn split_batches(bytes: Bytes, batch: usize) -> Vec<(Bytes, u64)> {
    let mut batches = Vec::new();
    let (mut start, mut lines, mut at) = (0, 0u64, 0);
    while at < bytes.len() {
        let end = bytes[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| at + i + 1);
        if bytes[at..end].iter().any(|b| !b.is_ascii_whitespace()) {
            lines += 1;
        }
        at = end;
        if lines == batch as u64 || at == bytes.len() {
            if lines > 0 {
                batches.push((bytes.slice(start..at), lines));
            }
            start = at;
            lines = 0;
        }
    }
    batches
}

// ---- load -------------------------------------------------------------------

async fn closed_loop(
    client: &HttpClient,
    url: &str,
    batches: &Arc<Vec<(Bytes, u64)>>,
    connections: usize,
    counters: &Arc<Counters>,
    acks: &Arc<Mutex<Histogram<u64>>>,
    progress: &indicatif::ProgressBar,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, batches, counters, acks, progress, next) = (
                client.clone(),
                url.to_string(),
                batches.clone(),
                counters.clone(),
                acks.clone(),
                progress.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, events)) = batches.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    send_batch(&client, &url, body.clone(), &counters).await;
                    record(&acks, sent.elapsed());
                    progress.inc(*events);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    client: &HttpClient,
    url: &str,
    batches: &Arc<Vec<(Bytes, u64)>>,
    rate: u64,
    batch: usize,
    counters: &Arc<Counters>,
    acks: &Arc<Mutex<Histogram<u64>>>,
    progress: &indicatif::ProgressBar,
) {
    let interval = Duration::from_secs_f64(batch as f64 / rate.max(1) as f64);
    let mut ticks = ticker(interval, Some(batches.len() as u64));
    // Bounded in-flight requests: past this the schedule slips, and the
    // slip shows in the latencies, measured from the scheduled time.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(1024));
    let mut tasks = Vec::with_capacity(batches.len());
    while let Some((i, scheduled)) = ticks.recv().await {
        let Some((body, events)) = batches.get(i as usize) else {
            break;
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (client, url, counters, acks, progress, body, events) = (
            client.clone(),
            url.to_string(),
            counters.clone(),
            acks.clone(),
            progress.clone(),
            body.clone(),
            *events,
        );
        let origin = latency_origin(scheduled);
        tasks.push(tokio::spawn(async move {
            send_batch(&client, &url, body, &counters).await;
            record(&acks, origin.elapsed());
            progress.inc(events);
            drop(permit);
        }));
    }
    ticks.finish().await;
    for task in tasks {
        let _ = task.await;
    }
}

/// Sends one batch until it is acknowledged (retrying after 429).
async fn send_batch(client: &HttpClient, url: &str, body: Bytes, counters: &Counters) {
    for _attempt in 0..1000 {
        let request = hyper::Request::post(format!("{url}/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(Full::new(body.clone()));
        let Ok(request) = request else { break };
        let response = match client.request(request).await {
            Ok(r) => r,
            Err(_) => {
                counters.failed_requests.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if response.status() == hyper::StatusCode::TOO_MANY_REQUESTS {
            counters.retries_429.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let ok = response.status().is_success();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(reply) if ok => {
                counters
                    .accepted
                    .fetch_add(reply["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                counters
                    .duplicates
                    .fetch_add(reply["duplicates"].as_u64().unwrap_or(0), Ordering::Relaxed);
                let rejected = reply["rejected"].as_array().map_or(0, |r| r.len() as u64);
                counters.rejected.fetch_add(rejected, Ordering::Relaxed);
            }
            _ => {
                counters.failed_requests.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    counters.failed_requests.fetch_add(1, Ordering::Relaxed);
}

async fn read_load(
    client: HttpClient,
    url: String,
    per_second: u64,
    reads: Arc<Mutex<Histogram<u64>>>,
    stop: Arc<AtomicUsize>,
) {
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut ticks = ticker(interval, None);
    let mut tasks = Vec::new();
    while stop.load(Ordering::Relaxed) == 0 {
        let Some((_, scheduled)) = ticks.recv().await else {
            break;
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (client, uri, reads) = (
            client.clone(),
            format!("{url}/v1/leaderboards/global?limit=10"),
            reads.clone(),
        );
        let origin = latency_origin(scheduled);
        tasks.push(tokio::spawn(async move {
            let Ok(request) = hyper::Request::get(uri).body(Full::new(Bytes::new())) else {
                return;
            };
            if let Ok(response) = client.request(request).await {
                let _ = response.into_body().collect().await;
                record(&reads, origin.elapsed());
            }
            drop(permit);
        }));
    }
    ticks.finish().await;
    for task in tasks {
        let _ = task.await;
    }
}

/// Ticks `(k, start + k × interval)` for `k` in `0..count` (without a
/// count: until the receiver is dropped), each sent once its instant has
/// passed. A thread of its own sleeps with the system's high-resolution
/// timer: tokio's timer fires on whole milliseconds, late by up to 2 ms, and
/// every latency measured from a schedule would carry that error.
fn ticker(interval: Duration, count: Option<u64>) -> Ticks {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let interval_ns = interval.as_nanos();
    let spawned = std::thread::Builder::new()
        .name("bench-ticker".into())
        .spawn(move || {
            veltrix_server::priority::request_short_slice(veltrix_server::REQUEST_SLICE);
            for k in 0..count.unwrap_or(u64::MAX) {
                let offset = interval_ns.saturating_mul(u128::from(k));
                let Some(at) = u64::try_from(offset)
                    .ok()
                    .and_then(|ns| start.checked_add(Duration::from_nanos(ns)))
                else {
                    break;
                };
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if tx.send((k, tokio::time::Instant::from_std(at))).is_err() {
                    break;
                }
            }
        });
    // Without the thread the sender is gone and the receiver ends at once:
    // the run sends nothing and says so (no events acknowledged).
    let thread = spawned
        .map_err(|e| eprintln!("cannot start the load generator's ticker thread: {e}"))
        .ok();
    Ticks { rx, thread }
}

/// The receiving end of [`ticker`]; the thread is detached unless joined.
struct Ticks {
    rx: tokio::sync::mpsc::UnboundedReceiver<(u64, tokio::time::Instant)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticks {
    async fn recv(&mut self) -> Option<(u64, tokio::time::Instant)> {
        self.rx.recv().await
    }

    /// Stops the ticker (it ends at its next tick) and waits for its thread.
    async fn finish(self) {
        let Ticks { rx, thread } = self;
        drop(rx);
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A request is sent a little after its scheduled instant even when
/// nothing is wrong: the ticker thread and then a worker must be woken.
/// Lateness within [`SEND_SLACK`] is the load generator's, and latency
/// counts from the moment of sending. A request sent later than that (the
/// in-flight limit was reached, or the client was starved of CPU) counts
/// from its scheduled time, so a server that falls behind still shows its
/// queueing.
fn latency_origin(scheduled: tokio::time::Instant) -> tokio::time::Instant {
    origin_at(scheduled, tokio::time::Instant::now())
}

fn origin_at(scheduled: tokio::time::Instant, now: tokio::time::Instant) -> tokio::time::Instant {
    if now.saturating_duration_since(scheduled) <= SEND_SLACK {
        now
    } else {
        scheduled
    }
}

const SEND_SLACK: Duration = Duration::from_millis(1);

fn record(histogram: &Mutex<Histogram<u64>>, took: Duration) {
    let micros = took.as_micros().min(u64::MAX as u128) as u64;
    let mut h = histogram.lock().unwrap_or_else(|e| e.into_inner());
    h.saturating_record(micros.max(1));
}

fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p99.9": ms(0.999), "max": h.max() as f64 / 1000.0})
}

fn progress_bar(total: u64, hidden: bool) -> indicatif::ProgressBar {
    if hidden || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn print_report(r: &Value) {
    println!("target          {}", r["target"].as_str().unwrap_or(""));
    println!("mode            {}", r["mode"].as_str().unwrap_or(""));
    println!("workload        {}", r["workload"].as_str().unwrap_or(""));
    println!(
        "events sent     {} in {} requests of {}",
        r["events_sent"], r["requests"], r["batch"]
    );
    println!(
        "acknowledged    {:.0} events/s over {:.2} s",
        r["events_per_second"].as_f64().unwrap_or(0.0),
        r["seconds"].as_f64().unwrap_or(0.0)
    );
    println!(
        "outcome         {} accepted, {} duplicates, {} rejected, {} retries after 429, {} failed requests",
        r["accepted"], r["duplicates"], r["rejected"], r["retries_429"], r["failed_requests"]
    );
    let l = &r["ack_latency_ms"];
    println!(
        "ack latency ms  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        l["p50"], l["p90"], l["p99"], l["p99.9"], l["max"]
    );
    if !r["read_latency_ms"].is_null() {
        let l = &r["read_latency_ms"];
        println!(
            "read latency ms p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l["p50"], l["p90"], l["p99"], l["p99.9"], l["max"]
        );
    }
    println!(
        "generation      {:.2} s before the clock started ({:.0} events/s, {:.0}x the measured rate)",
        r["generation_seconds"].as_f64().unwrap_or(0.0),
        r["generation_events_per_second"].as_f64().unwrap_or(0.0),
        r["generation_events_per_second"].as_f64().unwrap_or(0.0)
            / r["events_per_second"].as_f64().unwrap_or(1.0).max(1.0)
    );
    if !r["server_cpu_seconds"].is_null() {
        let note = if r["cpu_and_rss_include_the_load_generator"] == true {
            " (in-process: includes the load generator)"
        } else {
            ""
        };
        println!(
            "server          {:.2} CPU s, peak RSS {:.0} MiB{note}",
            r["server_cpu_seconds"].as_f64().unwrap_or(0.0),
            r["server_peak_rss_mb"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(threads) = r["server_threads"].as_array().filter(|t| !t.is_empty()) {
        // wait: runnable but not running; sleeps: voluntary context switches.
        println!(
            "server threads  {:<16} {:>3} {:>7} {:>7} {:>8}",
            "name", "n", "CPU s", "wait s", "sleeps"
        );
        for t in threads {
            println!(
                "                {:<16} {:>3} {:>7.2} {:>7.2} {:>8}",
                t["name"].as_str().unwrap_or(""),
                t["threads"].as_u64().unwrap_or(0),
                t["cpu_seconds"].as_f64().unwrap_or(0.0),
                t["waiting_for_cpu_seconds"].as_f64().unwrap_or(0.0),
                t["voluntary_switches"].as_u64().unwrap_or(0)
            );
        }
    }
    if let Some(cpu) = r["load_generator_cpu_seconds"].as_f64() {
        println!("load generator  {cpu:.2} CPU s (this process: HTTP client and reporting)");
    }
}

// ---- process figures (Linux /proc) --------------------------------------------

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ---- in-process server ------------------------------------------------------------

struct LocalServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn start_local_server(config: Option<&std::path::Path>) -> Result<(String, LocalServer)> {
    let config = match config {
        Some(path) => crate::load::load_config(path)?,
        None => crate::demo::embedded_config()?,
    };
    let plan = crate::cmd::plan_for(config);
    let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
    let server =
        veltrix_server::Server::open(plan, veltrix_server::ServerOptions::new(dir.path()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(veltrix_server::run(listener, server, async {
        let _ = stopped.await;
    }));
    Ok((
        url,
        LocalServer {
            stop,
            task,
            _dir: dir,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_the_schedule_once_a_send_is_later_than_the_slack_allows() {
        let scheduled = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(origin_at(scheduled, scheduled + ms(5)), scheduled);
        let late = scheduled + Duration::from_micros(1500);
        assert_eq!(origin_at(scheduled, late), scheduled);
        let sent = scheduled + Duration::from_micros(300);
        assert_eq!(origin_at(scheduled, sent), sent);
        assert_eq!(origin_at(scheduled + ms(2), scheduled), scheduled);
    }

    #[tokio::test]
    async fn the_ticker_sends_each_tick_in_order_and_never_early() {
        let interval = Duration::from_micros(700);
        let mut ticks = ticker(interval, Some(40));
        let mut seen = Vec::new();
        while let Some((k, at)) = ticks.recv().await {
            assert!(tokio::time::Instant::now() >= at, "tick {k} arrived early");
            seen.push((k, at));
        }
        assert_eq!(seen.len(), 40, "exactly the ticks asked for");
        for (n, pair) in seen.windows(2).enumerate() {
            assert_eq!(pair[0].0, n as u64);
            assert_eq!(pair[1].1 - pair[0].1, interval, "evenly spaced schedule");
        }
    }

    #[tokio::test]
    async fn an_endless_ticker_stops_when_its_receiver_is_dropped() {
        let mut ticks = ticker(Duration::from_micros(100), None);
        assert_eq!(ticks.recv().await.map(|t| t.0), Some(0));
        assert!(ticks.thread.is_some(), "the ticker thread started");
        let finished = tokio::time::timeout(Duration::from_secs(5), ticks.finish()).await;
        assert!(
            finished.is_ok(),
            "the ticker thread must end once nobody listens"
        );
    }

    fn args(events: u64) -> BenchArgs {
        BenchArgs {
            url: None,
            config: None,
            events,
            batch: 1000,
            rate: None,
            connections: 1,
            players: 500,
            duplicate_percent: 2.0,
            invalid_percent: 1.0,
            reads_per_second: 0,
            server_pid: None,
            json: true,
            seed: 3,
            hunt_percent: 20.0,
            zipf: 1.1,
            events_file: None,
            write_events: None,
            id_prefix: Some("t".into()),
        }
    }

    #[test]
    fn batches_hold_whole_lines_and_count_them() {
        let bytes = Bytes::from_static(b"a\nb\n\nc\nd\ne");
        let batches = split_batches(bytes, 2);
        let parts: Vec<(&[u8], u64)> = batches.iter().map(|(b, n)| (&b[..], *n)).collect();
        assert_eq!(
            parts,
            [(&b"a\nb\n"[..], 2), (&b"\nc\nd\n"[..], 2), (&b"e"[..], 1)]
        );
    }

    #[test]
    fn written_events_are_the_seeded_workload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut write = args(3000);
        write.write_events = Some(path.clone());
        bench(write).unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written, generate(&args(3000)).unwrap().0);
        assert_eq!(written.iter().filter(|b| **b == b'\n').count(), 3000);
        assert!(written.starts_with(b"{\"id\":\"t0\""));
    }
}
