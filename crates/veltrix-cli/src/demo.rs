//! `veltrix demo`: the whole product on the embedded example, for a newcomer
//! to watch. A real server listens on loopback with its own data directory;
//! simulated players play the Golden Compass hunt through the server's own
//! router (the same code path as HTTP requests); a dashboard shows counts,
//! the leaderboard and the hunt funnel as they change.

use anyhow::{Context, Result, anyhow};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use veltrix_config::{Source, compile};
use veltrix_core::Plan;
use veltrix_server::{Server, ServerOptions};

/// The example configuration, compiled into the binary so the demo runs
/// from any directory.
const EMBEDDED_CONFIG: &str = include_str!("../../../examples/golden-compass/veltrix.toml");
const HUNT: &str = "golden_compass";
/// Event time at which the simulation starts: inside the hunt's window.
const START_MS: i64 = 1_796_115_600_000; // 2026-12-01T09:00:00Z
/// Event time that passes per tick (ticks are 100 ms of wall time).
const EVENT_MS_PER_TICK: i64 = 4 * 60_000;

pub struct DemoArgs {
    pub listen: String,
    pub players: usize,
    pub seconds: u64,
    pub rate: usize,
    pub data_dir: Option<PathBuf>,
    /// Stop when the simulation ends instead of serving until ctrl-c.
    pub exit: bool,
}

pub fn demo(args: DemoArgs) -> Result<ExitCode> {
    if args.players == 0 || args.rate == 0 {
        anyhow::bail!("--players and --rate must be at least 1");
    }
    let plan = crate::cmd::plan_for(embedded_config()?);
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("veltrix-demo-{}", std::process::id()))
    });
    let addr = veltrix_server::check_loopback(&args.listen)?;
    let runtime = veltrix_server::request_runtime()?;
    runtime.block_on(async move {
        let server =
            Server::open(plan.clone(), ServerOptions::new(&data_dir)).with_context(|| {
                format!("cannot open the demo data directory {}", data_dir.display())
            })?;
        let router = server.router();
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (use --listen 127.0.0.1:0 for any free port)")
        })?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(veltrix_server::run(listener, server, async {
            let _ = stopped.await;
        }));
        println!(
            "Veltrix demo: server on {url}, data in {}",
            data_dir.display()
        );
        print_urls(&url);
        println!(
            "\nSimulating {} players for {} s at {} events/s …\n",
            args.players, args.seconds, args.rate
        );
        let summary = simulate(&router, &plan, &args, &url).await?;
        println!("\n{summary}");
        if args.exit {
            println!(
                "\nThe server has stopped; run without --exit to explore it with the URLs above."
            );
        } else {
            print_urls(&url);
            println!("\nThe server keeps running; press Ctrl-C to stop it.");
            veltrix_server::shutdown_signal().await;
        }
        let _ = stop.send(());
        serving.await.context("the server task failed")??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_urls(url: &str) {
    println!("Look around:");
    for path in [
        "/v1/leaderboards/global?limit=10",
        "/v1/hunts/golden_compass",
        "/v1/players/player-1",
        "/v1/players/player-1/ledger",
        "/v1/players/player-1/hunts/golden_compass",
        "/v1/state",
        "/metrics",
    ] {
        println!("  curl {url}{path}");
    }
}

/// The example configuration compiled into the binary.
pub fn embedded_config() -> Result<Arc<veltrix_config::Config>> {
    let config = compile(&[Source::new("embedded:golden-compass.toml", EMBEDDED_CONFIG)])
        .map_err(|d| anyhow!("the embedded configuration is invalid: {}", d[0].one_line()))?;
    Ok(Arc::new(config))
}

/// What one simulated player will try next (the server stays the judge).
struct Player {
    name: String,
    stage: usize,
    items: [bool; 3],
    cipher_answer: Option<String>,
    sent: u64,
}

/// A small deterministic generator (xorshift64*): the demo is the same on
/// every run, and needs no dependency for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Default)]
struct Totals {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    busy: u64,
}

async fn simulate(
    router: &axum::Router,
    plan: &Plan,
    args: &DemoArgs,
    url: &str,
) -> Result<String> {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut players: Vec<Player> = (1..=args.players)
        .map(|i| Player {
            name: format!("player-{i}"),
            stage: 0,
            items: [false; 3],
            cipher_answer: None,
            sent: 0,
        })
        .collect();
    let hunt = plan
        .config
        .hunt(HUNT)
        .context("the embedded config has the golden_compass hunt")?;
    let interactive = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut next_id = 0u64;
    let mut last_batch: Vec<String> = Vec::new();
    let per_tick = args.rate.div_ceil(10).max(1);
    let ticks = args.seconds * 10;
    for tick in 0..ticks {
        let tick_start = Instant::now();
        let now_ms = START_MS + tick as i64 * EVENT_MS_PER_TICK;
        let mut lines = Vec::with_capacity(per_tick);
        for n in 0..per_tick {
            // Zipf-like activity: low-numbered players play more.
            let who = (rng.below(args.players) * rng.below(args.players)) / args.players;
            let ts = now_ms + (n as i64 * EVENT_MS_PER_TICK) / per_tick as i64;
            next_id += 1;
            let event = next_event(&mut players[who], &mut rng, plan, hunt, next_id, ts);
            lines.push(event.to_string());
        }
        // Now and then a client retries a batch, or sends a broken event.
        if rng.chance(5) && !last_batch.is_empty() {
            lines.extend(last_batch.iter().take(20).cloned());
        }
        if rng.chance(10) {
            lines.push(json!({"id": format!("bad-{tick}"), "player": "player-1", "type": "purchase", "data": {"amount": "ten"}}).to_string());
        }
        let body = lines.join("\n");
        last_batch = lines;
        match post_events(router, body).await? {
            Some(reply) => {
                totals.accepted += reply["accepted"].as_u64().unwrap_or(0);
                totals.duplicates += reply["duplicates"].as_u64().unwrap_or(0);
                totals.rejected += reply["rejected"].as_array().map_or(0, |r| r.len() as u64);
            }
            None => totals.busy += 1,
        }
        if tick % 10 == 9 || tick + 1 == ticks {
            let screen = dashboard(router, &totals, started.elapsed(), now_ms, url).await?;
            if interactive {
                print!("\x1b[2J\x1b[H{screen}");
            } else {
                println!("{screen}");
            }
            std::io::stdout().flush().ok();
        }
        if let Some(rest) = Duration::from_millis(100).checked_sub(tick_start.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    Ok(format!(
        "Done: {} events accepted, {} duplicates ignored, {} rejected with reasons (see /v1/deadletters), {} batches refused while busy.",
        totals.accepted, totals.duplicates, totals.rejected, totals.busy
    ))
}

fn next_event(p: &mut Player, rng: &mut Rng, plan: &Plan, hunt: u16, id: u64, ts: i64) -> Value {
    p.sent += 1;
    let id = format!("demo-{id}");
    let event = |kind: &str, data: Value| json!({"id": id, "player": p.name, "type": kind, "ts": ts, "data": data});
    if rng.chance(35) || p.stage > 3 {
        return match rng.below(3) {
            0 => event("login", json!({})),
            1 => {
                let currency = ["coins", "gems", "usd"][rng.below(3)];
                event(
                    "purchase",
                    json!({"amount": 5 + rng.below(90), "currency": currency}),
                )
            }
            _ => event(
                "quest_done",
                json!({"quest": "dragon", "score": rng.below(1000), "hardcore": rng.chance(50)}),
            ),
        };
    }
    match p.stage {
        0 => {
            let place = ["harbor", "park", "pier", "lighthouse"][rng.below(4)];
            if place == "harbor" {
                p.stage = 1;
            }
            event("location_visited", json!({"place": place}))
        }
        1 => {
            let correct = rng.chance(40);
            if correct {
                p.stage = 2;
            }
            let answer = if correct {
                "Keyboard"
            } else {
                ["piano", "a map", "typewriter"][rng.below(3)]
            };
            event(
                "answer",
                json!({"hunt": HUNT, "stage": "riddle", "answer": answer}),
            )
        }
        2 => {
            let which = rng.below(4);
            let item = ["map", "key", "lantern", "feather"][which];
            if which < 3 {
                p.items[which] = true;
                if p.items.iter().all(|&f| f) {
                    p.stage = 3;
                }
            }
            event("item_found", json!({"item": item}))
        }
        _ => {
            // A player decodes their own cipher, sometimes after a wrong try.
            let answer = p
                .cipher_answer
                .get_or_insert_with(|| {
                    veltrix_core::puzzles::puzzle_instance(plan, hunt, 3, &p.name)
                        .and_then(|r| r.ok())
                        .map_or_else(String::new, |i| i.answer)
                })
                .clone();
            let correct = rng.chance(60);
            if correct {
                p.stage = 4;
            }
            event(
                "answer",
                json!({"hunt": HUNT, "stage": "cipher", "answer": if correct { answer.as_str() } else { "compas" }}),
            )
        }
    }
}

/// Posts an NDJSON batch; None when the server says it is busy (429).
async fn post_events(router: &axum::Router, body: String) -> Result<Option<Value>> {
    let request = Request::post("/v1/events")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))?;
    let response = router.clone().oneshot(request).await?;
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        return Ok(None);
    }
    let status = response.status();
    let value = read_json(response).await?;
    if !status.is_success() {
        anyhow::bail!("the server refused a batch ({status}): {value}");
    }
    Ok(Some(value))
}

async fn get(router: &axum::Router, path: &str) -> Result<Value> {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty())?)
        .await?;
    read_json(response).await
}

async fn read_json(response: axum::response::Response) -> Result<Value> {
    let bytes = response.into_body().collect().await?.to_bytes();
    serde_json::from_slice(&bytes).context("the server answered with something that is not JSON")
}

async fn dashboard(
    router: &axum::Router,
    totals: &Totals,
    elapsed: Duration,
    now_ms: i64,
    url: &str,
) -> Result<String> {
    let board = get(router, "/v1/leaderboards/global?limit=5").await?;
    let funnel = get(router, &format!("/v1/hunts/{HUNT}")).await?;
    let event_time = jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let rate = totals.accepted as f64 / elapsed.as_secs_f64().max(0.001);
    let mut out = format!(
        "Veltrix demo — {url}   wall {:>5.1}s   event time {event_time}\n\n  events: {} accepted ({rate:.0}/s), {} duplicates, {} rejected\n\n",
        elapsed.as_secs_f64(),
        totals.accepted,
        totals.duplicates,
        totals.rejected
    );
    out.push_str("  Leaderboard (global)\n");
    for row in board["rows"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "    #{:<3} {:<12} {:>7}\n",
            row["rank"],
            row["player"].as_str().unwrap_or("?"),
            row["score"]
        ));
    }
    out.push_str(&format!("    ({} players ranked)\n\n", board["total"]));
    out.push_str(&format!(
        "  The Golden Compass: {} started",
        funnel["started"]
    ));
    for stage in funnel["stages"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            " → {} {}",
            stage["id"].as_str().unwrap_or("?"),
            stage["solved"]
        ));
    }
    out.push_str(&format!(
        " → completed {}, prizes left {}\n",
        funnel["completed"], funnel["prizes_left"]
    ));
    Ok(out)
}
