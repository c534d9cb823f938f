//! Core throughput on a realistic workload: the example configuration (10
//! rules, 2 hunts, 3 leaderboards, a view), 100,000 players with
//! Zipf-distributed activity, a mix of every event type.
//!
//! Each measurement first warms an engine with 500k events (not timed), then
//! times the next 500k, so it measures steady state with the player
//! population in place.
//!
//! cargo bench -p veltrix-core --bench engine

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use veltrix_core::veltrix_config::{Source, compile};
use veltrix_core::{Engine, Event, Ingest, Plan, Submission, ndjson_lines};

const PLAYERS: usize = 100_000;
const WARM: usize = 500_000;
const MEASURED: usize = 500_000;
const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z, inside the hunt

fn plan() -> Arc<Plan> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/golden-compass/veltrix.toml"
    );
    let text = std::fs::read_to_string(path).expect("example config");
    let config = compile(&[Source::new("veltrix.toml", text)]).expect("valid example");
    Arc::new(Plan::new(Arc::new(config)))
}

/// Zipf(s = 1.1) over player ranks, by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// NDJSON lines of a realistic event mix (about 105 bytes each).
fn workload(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(PLAYERS, 1.1);
    let places = ["harbor", "park", "pier", "lighthouse"];
    let items = ["map", "key", "lantern", "feather"];
    (0..count)
        .map(|i| {
            let player = zipf.sample(&mut rng);
            let ts = T0 + i as i64 * 20; // 50 events per second of event time
            let kind = rng.random_range(0..100);
            let (kind, data) = match kind {
                0..30 => ("login", String::from("{}")),
                30..50 => {
                    let currency = ["coins", "gems", "usd"][rng.random_range(0..3)];
                    ("purchase", format!("{{\"amount\":{},\"currency\":\"{currency}\"}}", rng.random_range(1..120)))
                }
                50..70 => ("location_visited", format!("{{\"place\":\"{}\"}}", places[rng.random_range(0..4)])),
                70..90 => ("item_found", format!("{{\"item\":\"{}\"}}", items[rng.random_range(0..4)])),
                90..95 => {
                    let answer = if rng.random_bool(0.5) { "keyboard" } else { "piano" };
                    ("answer", format!("{{\"hunt\":\"golden_compass\",\"stage\":\"riddle\",\"answer\":\"{answer}\"}}"))
                }
                _ => ("quest_done", format!("{{\"quest\":\"q{}\",\"score\":{},\"hardcore\":true}}", rng.random_range(0..9), rng.random_range(0..1000))),
            };
            format!("{{\"id\":\"e{i}\",\"player\":\"p{player}\",\"type\":\"{kind}\",\"ts\":{ts},\"data\":{data}}}").into_bytes()
        })
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

fn bench_engine(c: &mut Criterion) {
    let plan = plan();
    let lines = workload(WARM + MEASURED, 7);
    let events = parse_all(&plan, &lines);
    let (warm, measured) = events.split_at(WARM);

    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MEASURED as u64));
    group.bench_function("apply_parsed_events/100k_players", |b| {
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

    // Snapshot of the state after all 1M events (100k players).
    let mut ingest = Ingest::new();
    let mut engine = Engine::new(plan.clone(), 1);
    for (i, line) in lines.iter().enumerate() {
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
    snapshot.bench_function("decode/1M_events_100k_players", |b| {
        b.iter(|| veltrix_core::snapshot::decode(plan.clone(), &bytes).expect("decodes"))
    });
    snapshot.finish();

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

criterion_group!(benches, bench_engine);
criterion_main!(benches);
