//! Core throughput on a realistic workload: the example configuration (10
//! rules, 2 hunts, 3 leaderboards, a view), 100,000 players with
//! Zipf-distributed activity, a mix of every event type and players
//! progressing through the hunts (the shared `veltrix-workload` generator).
//!
//! Each measurement first warms an engine with 500k events (not timed), then
//! times the next 500k, so it measures steady state with the player
//! population in place.
//!
//! cargo bench -p veltrix-core --bench engine

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use veltrix_core::veltrix_config::{Source, compile};
use veltrix_core::{Engine, Event, Ingest, Plan, Submission, ndjson_lines};

// The one workload generator, shared with `veltrix bench` and the reference
// stack (bench/reference). Included by path because veltrix-core cannot
// list `veltrix-workload` (which depends on it) without a dev-dependency
// cycle in its manifest; the file only needs crates veltrix-core has.
#[allow(dead_code)]
#[path = "../../veltrix-workload/src/lib.rs"]
mod workload;

const PLAYERS: usize = 100_000;
const WARM: usize = 500_000;
const MEASURED: usize = 500_000;

fn plan() -> Arc<Plan> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/golden-compass/veltrix.toml"
    );
    let text = std::fs::read_to_string(path).expect("example config");
    let config = compile(&[Source::new("veltrix.toml", text)]).expect("valid example");
    Arc::new(Plan::new(Arc::new(config)))
}

/// NDJSON lines of the shared workload (Zipf(1.1) players, hunt progress,
/// the example's event mix), without duplicates or invalid events.
fn workload(plan: &Arc<Plan>, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let spec = workload::Spec {
        events: count as u64,
        players: PLAYERS,
        duplicate_percent: 0.0,
        invalid_percent: 0.0,
        seed,
        ..workload::Spec::default()
    };
    let workload = workload::Workload::new(plan.clone(), spec).expect("workload");
    let (bytes, _) = workload.ndjson();
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn parse_all(plan: &Plan, lines: &[Vec<u8>]) -> Vec<(u64, Event)> {
    let mut ingest = Ingest::new();
    lines
        .iter()
        .enumerate()
        .map(
            |(i, line)| match ingest.submit(plan, line, i as u64 + 1, 0) {
                Submission::Accepted { seq, event } => (seq, event),
                other => panic!("workload event rejected: {other:?}"),
            },
        )
        .collect()
}

/// Times applying `measured` to an engine that has applied `warm` (the
/// warm-up is rebuilt outside the timing for every iteration).
fn bench_apply(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    plan: &Arc<Plan>,
    warm: &[(u64, Event)],
    measured: &[(u64, Event)],
) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let mut engine = Engine::new(plan.clone(), 1);
                for (seq, event) in warm {
                    engine.apply_event(*seq, event);
                }
                engine
            },
            |mut engine| {
                for (seq, event) in measured {
                    engine.apply_event(*seq, event);
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
}

fn bench_engine(c: &mut Criterion) {
    let plan = plan();
    let lines = workload(&plan, WARM + MEASURED, 7);
    let events = parse_all(&plan, &lines);
    let (warm, measured) = events.split_at(WARM);

    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MEASURED as u64));
    bench_apply(
        &mut group,
        "apply_parsed_events/100k_players",
        &plan,
        warm,
        measured,
    );

    let measured_lines: Vec<u8> = lines[WARM..]
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    eprintln!(
        "NDJSON workload: {} bytes per event on average",
        measured_lines.len() / MEASURED
    );
    group.throughput(Throughput::Elements(MEASURED as u64));
    group.bench_function("ingest_ndjson_and_apply/100k_players", |b| {
        b.iter_batched(
            || {
                let mut ingest = Ingest::new();
                let mut engine = Engine::new(plan.clone(), 1);
                for (i, line) in lines[..WARM].iter().enumerate() {
                    if let Submission::Accepted { seq, event } =
                        ingest.submit(&plan, line, i as u64, 0)
                    {
                        engine.apply_event(seq, &event);
                    }
                }
                (ingest, engine)
            },
            |(mut ingest, mut engine)| {
                for (line, text) in ndjson_lines(&measured_lines) {
                    if let Submission::Accepted { seq, event } = ingest.submit(&plan, text, line, 0)
                    {
                        engine.apply_event(seq, &event);
                    }
                }
                (ingest, engine)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // Snapshot of the state after all 1M events (100k players). The server's
    // encoder last saw the state 100k events earlier (see encode_warm).
    let mut ingest = Ingest::new();
    let mut engine = Engine::new(plan.clone(), 1);
    let mut warm_encoder = veltrix_core::snapshot::Encoder::default();
    for (i, line) in lines.iter().enumerate() {
        if i == lines.len() - 100_000 {
            warm_encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy());
        }
        if let Submission::Accepted { seq, event } = ingest.submit(&plan, line, i as u64, 0) {
            engine.apply_event(seq, &event);
        }
    }
    let bytes = veltrix_core::snapshot::encode(&ingest, &engine);
    eprintln!(
        "snapshot after {} events: {} bytes ({} grants)",
        lines.len(),
        bytes.len(),
        engine
            .partitions
            .iter()
            .map(|p| p.grants.len())
            .sum::<usize>()
    );
    let mut snapshot = c.benchmark_group("snapshot");
    snapshot.sample_size(10);
    snapshot.bench_function("encode/1M_events_100k_players", |b| {
        b.iter(|| veltrix_core::snapshot::encode(&ingest, &engine))
    });
    // What the server's engine thread does for a snapshot, against what it
    // did before the state shared its storage.
    snapshot.bench_function("snapshot_copy/1M_events_100k_players", |b| {
        b.iter(|| (ingest.snapshot_copy(), engine.snapshot_copy()))
    });
    // The same players, grants and dedup set copied outright, as the
    // engine thread did before (Ingest::clone copies the dedup shards).
    snapshot.bench_function("deep_copy/1M_events_100k_players", |b| {
        b.iter(|| {
            let partitions = &engine.partitions;
            let players: Vec<veltrix_core::player::PlayerState> = partitions
                .iter()
                .flat_map(|p| p.players.iter().map(|player| (**player).clone()))
                .collect();
            let grants: Vec<veltrix_core::grant::Grant> = partitions
                .iter()
                .flat_map(|p| p.grants.iter().cloned())
                .collect();
            (players, grants, ingest.clone())
        })
    });
    // An encoder that encoded the state 100k events ago, as the server's
    // snapshot thread keeps it (a fresh clone of it each iteration).
    snapshot.bench_function("encode_warm/1M_events_100k_since_last", |b| {
        b.iter_batched(
            || warm_encoder.clone(),
            |mut encoder| encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy()),
            BatchSize::PerIteration,
        )
    });
    snapshot.bench_function("decode/1M_events_100k_players", |b| {
        b.iter(|| veltrix_core::snapshot::decode(plan.clone(), &bytes).expect("decodes"))
    });
    snapshot.finish();

    rules_only(c);

    let mut parse = c.benchmark_group("parse");
    parse.throughput(Throughput::Elements(10_000));
    let sample: Vec<&Vec<u8>> = lines.iter().take(10_000).collect();
    parse.bench_function("validate_event_json", |b| {
        b.iter(|| {
            for line in &sample {
                let _ = std::hint::black_box(veltrix_core::parse_event(&plan.config, line, 0));
            }
        })
    });
    parse.finish();
}

/// The example's events and rules without hunts, leaderboards or views, so
/// the measurement is rule evaluation alone: windows, streaks, sequences,
/// once/limit/cooldown and compiled conditions, plus the grants they make.
const RULES_ONLY: &str = r#"
[events.login]
[events.purchase.fields]
amount = { type = "number", min = 0 }
currency = { type = "string", optional = true, enum = ["coins", "gems", "usd"] }
[events.location_visited.fields]
place = "string"
[events.item_found.fields]
item = { type = "string", enum = ["map", "key", "lantern", "feather"] }
[events.quest_done]
extra = "allow"
[events.quest_done.fields]
quest = { type = "string", max_len = 40 }
score = { type = "integer", min = 0, max = 1000 }
hardcore = { type = "boolean", optional = true }
[currencies.coins]
[currencies.gems]
[rules.first_login]
on = "login"
once = true
reward = { points = 10, coins = 1 }
[rules.big_spender]
on = "purchase"
when = "event.amount >= 50"
reward = { coins = 5 }
limit = { count = 3, per = "1d" }
[rules.loyal]
on = "login"
when = "streak('login', '1d') >= 7"
reward = { badge = "loyal", gems = 1 }
once = true
[rules.explorer]
sequence = ["location_visited", "item_found"]
within = "10m"
reward = { points = 25 }
cooldown = "1h"
[rules.shopaholic]
on = "purchase"
when = "count('purchase', '1h') >= 3 && sum('purchase', 'amount', '1h') >= 100"
reward = { points = 50, badge = "shopaholic" }
cooldown = "1d"
[rules.hardcore_quester]
on = "quest_done"
when = "has(event.hardcore) && event.hardcore && event.score > 500"
reward = { points = 75 }
[rules.veteran_bonus]
on = "quest_done"
when = "has_badge('loyal') && player.points >= 100"
reward = { gems = 2 }
[rules.rich_login]
on = "login"
when = "player.coins >= 20 ? player.gems < 5 : false"
reward = { gems = 1 }
cooldown = "1d"
[rules.gem_collector]
on = "purchase"
when = "has(event.currency) && event.currency == 'gems' && event.amount * 2 > 30"
reward = { points = 20 }
"#;

fn rules_only(c: &mut Criterion) {
    const WARM: usize = 200_000;
    const MEASURED: usize = 200_000;
    let config = compile(&[Source::new("rules.toml", RULES_ONLY)]).expect("valid rules");
    let plan = Arc::new(Plan::new(Arc::new(config)));
    let lines = workload(&plan, WARM + MEASURED, 11);
    let events = parse_all(&plan, &lines);
    let (warm, measured) = events.split_at(WARM);
    let mut group = c.benchmark_group("rules");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MEASURED as u64));
    bench_apply(
        &mut group,
        "evaluate_9_rules/100k_players",
        &plan,
        warm,
        measured,
    );
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
