use std::sync::Arc;
use veltrix_core::veltrix_config::{Source, compile};
use veltrix_core::{Engine, Ingest, Plan, Submission};
use veltrix_workload::*;

const EXAMPLE: &str = include_str!("../../../examples/golden-compass/veltrix.toml");

fn plan() -> Arc<Plan> {
    let config = compile(&[Source::new("veltrix.toml", EXAMPLE.to_string())]).expect("example");
    Arc::new(Plan::new(Arc::new(config)))
}

fn spec(events: u64) -> Spec {
    Spec {
        events,
        players: 1_000,
        ..Spec::default()
    }
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let plan = plan();
    let a = Workload::new(plan.clone(), spec(20_000)).unwrap().ndjson();
    let b = Workload::new(plan.clone(), spec(20_000)).unwrap().ndjson();
    assert_eq!(a, b);
    let c = Workload::new(
        plan,
        Spec {
            seed: 8,
            ..spec(20_000)
        },
    )
    .unwrap()
    .ndjson();
    assert_ne!(a.0, c.0);
    assert_eq!(lines(&a.0).len(), 20_000);
}

#[test]
fn plays_every_stage_of_the_example_hunts() {
    let workload = Workload::new(plan(), spec(10)).unwrap();
    assert_eq!(
        workload.hunt_steps(),
        [
            "golden_compass/harbor",
            "golden_compass/riddle",
            "golden_compass/relics",
            "golden_compass/cipher",
            "sky_lights/lighthouse",
            "sky_lights/feather",
        ]
    );
}

#[test]
fn without_the_answer_an_ordered_hunt_stops_before_its_riddle() {
    let workload = Workload::new(
        plan(),
        Spec {
            known_answers: vec!["piano".into()],
            ..spec(10)
        },
    )
    .unwrap();
    let steps = workload.hunt_steps();
    assert!(steps.contains(&"golden_compass/harbor".to_string()));
    assert!(
        !steps
            .iter()
            .any(|s| s.ends_with("/riddle") || s.ends_with("/cipher"))
    );
    assert!(steps.contains(&"sky_lights/feather".to_string()));
}

#[test]
fn zipf_skew_matches_the_law() {
    let players = 1_000;
    let workload = Workload::new(
        plan(),
        Spec {
            events: 200_000,
            duplicate_percent: 0.0,
            invalid_percent: 0.0,
            ..spec(0)
        },
    )
    .unwrap();
    let (bytes, _) = workload.ndjson();
    let mut per_player = vec![0u64; players];
    for line in lines(&bytes) {
        let value: serde_json::Value = serde_json::from_slice(line).unwrap();
        let rank: usize = value["player"].as_str().unwrap()[1..].parse().unwrap();
        per_player[rank] += 1;
    }
    let h: f64 = (1..=players).map(|k| 1.0 / (k as f64).powf(1.1)).sum();
    let expected_top = 200_000.0 / h;
    let top = per_player[0] as f64;
    assert!(
        (top / expected_top - 1.0).abs() < 0.05,
        "top {top} expected {expected_top}"
    );
    // Rank 100 is about 100^1.1 ≈ 158 times less active than rank 1.
    let ratio = per_player[0] as f64 / per_player[99].max(1) as f64;
    assert!((100.0..260.0).contains(&ratio), "ratio {ratio}");
    // The top 1 % of players send more than a third of the events.
    let top_share: u64 = per_player[..players / 100].iter().sum();
    assert!(top_share as f64 > 200_000.0 / 3.0);
}

#[test]
fn shares_of_duplicates_and_invalid_events_and_validation_agree() {
    let plan = plan();
    let workload = Workload::new(
        plan.clone(),
        Spec {
            duplicate_percent: 5.0,
            invalid_percent: 3.0,
            ..spec(100_000)
        },
    )
    .unwrap();
    let mut generator = workload.generator();
    let mut ingest = Ingest::new();
    let mut engine = Engine::new(plan.clone(), 1);
    let mut line = Vec::new();
    let mut position = 0;
    while let Some(class) = generator.next_line(&mut line) {
        position += 1;
        let text = line.strip_suffix(b"\n").unwrap();
        match (class, ingest.submit(&plan, text, position, 0)) {
            (Class::Valid, Submission::Accepted { seq, event }) => {
                engine.apply_event(seq, &event);
            }
            (Class::Duplicate, Submission::Duplicate { .. }) => {}
            (Class::Invalid, Submission::Rejected(_)) => {}
            (class, outcome) => panic!(
                "{class:?} line {} gave {outcome:?}",
                String::from_utf8_lossy(text)
            ),
        }
        line.clear();
    }
    let counts = generator.counts();
    assert_eq!(counts.valid, ingest.counts.accepted);
    assert_eq!(counts.duplicates, ingest.counts.duplicates);
    assert_eq!(counts.invalid, ingest.counts.rejected);
    let share = |n: u64| n as f64 / 1000.0;
    assert!((share(counts.duplicates) - 5.0).abs() < 0.5, "{counts:?}");
    assert!((share(counts.invalid) - 3.0).abs() < 0.5, "{counts:?}");
    // Every kind of invalid event is rejected, and every event type occurs.
    let text = String::from_utf8_lossy(&workload.ndjson().0).into_owned();
    for kind in [
        "login",
        "purchase",
        "location_visited",
        "item_found",
        "quest_done",
        "answer",
    ] {
        assert!(text.contains(&format!("\"type\":\"{kind}\"")), "{kind}");
    }
}

#[test]
fn players_progress_through_the_hunts() {
    let plan = plan();
    let workload = Workload::new(plan.clone(), spec(100_000)).unwrap();
    let (bytes, counts) = workload.ndjson();
    // Active players finish every hunt early; then their hunt steps become
    // background events.
    assert!(
        counts.hunt_steps > 2_000 && counts.stage_steps > 1_000,
        "{counts:?}"
    );
    let (_, engine) = veltrix_core::run_ndjson(plan.clone(), &bytes, 0, 1);
    let compass = plan.config.hunt("golden_compass").unwrap();
    let sky = plan.config.hunt("sky_lights").unwrap();
    let mut started = 0;
    let mut completed = [0; 2];
    for rank in 0..1_000 {
        let Some(player) = engine.player(&player_name(rank)) else {
            continue;
        };
        if player.hunt(compass).is_some_and(|h| h.is_started()) {
            started += 1;
        }
        for (i, hunt) in [compass, sky].into_iter().enumerate() {
            if player.hunt(hunt).is_some_and(|h| h.completed) {
                completed[i] += 1;
            }
        }
    }
    // The active players finish (the cipher needs each player's own
    // answer), the long tail is somewhere along the way.
    assert!(
        completed[0] >= 20,
        "completed golden_compass: {completed:?}"
    );
    assert!(completed[1] >= 20, "completed sky_lights: {completed:?}");
    assert!(
        started > completed[0] + 50,
        "started {started}, completed {completed:?}"
    );
}

#[test]
fn rejects_bad_specs() {
    let plan = plan();
    let bad = |spec: Spec| Workload::new(plan.clone(), spec).err();
    assert_eq!(
        bad(Spec {
            players: 0,
            ..Spec::default()
        }),
        Some(WorkloadError::NoPlayers)
    );
    assert_eq!(
        bad(Spec {
            duplicate_percent: 60.0,
            invalid_percent: 50.0,
            ..Spec::default()
        }),
        Some(WorkloadError::BadPercent)
    );
}
