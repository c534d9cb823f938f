//! Generation time per kind and difficulty, and solver time alone.
//!
//! Run: `cargo bench -p veltrix-puzzles` (about a minute). Each iteration
//! generates a different player's instance, cold, as the engine does on
//! demand; percentiles over 10,000 players come from
//! `examples/puzzle_stats.rs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use veltrix_puzzles::{PuzzleData, PuzzleKind, PuzzleRequest, PuzzleSpec, generate, sudoku};

fn specs() -> Vec<(String, PuzzleSpec)> {
    let words: Vec<String> = ["compass", "anchor", "harbor", "lantern"]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    let mut specs = vec![
        (
            "caesar".to_owned(),
            PuzzleSpec {
                kind: PuzzleKind::Caesar,
                words: words.clone(),
                difficulty: None,
                size: None,
            },
        ),
        (
            "anagram".to_owned(),
            PuzzleSpec {
                kind: PuzzleKind::Anagram,
                words,
                difficulty: None,
                size: None,
            },
        ),
    ];
    for (size, difficulties) in sudoku::OFFERED {
        for difficulty in difficulties {
            specs.push((
                format!("sudoku-{size}x{size}-{}", difficulty.as_str()),
                PuzzleSpec {
                    kind: PuzzleKind::Sudoku,
                    words: Vec::new(),
                    difficulty: Some(difficulty.as_str().to_owned()),
                    size: Some(size),
                },
            ));
        }
    }
    specs
}

fn generation(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("generate");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
    for (label, spec) in specs() {
        let mut player = 0u64;
        group.bench_function(label, |bencher| {
            bencher.iter(|| {
                player += 1;
                let name = player.to_string();
                let request = PuzzleRequest {
                    hunt: "hunt",
                    stage: "stage",
                    player: &name,
                    secret: b"bench",
                };
                black_box(generate(&spec, &request).ok())
            })
        });
    }
    group.finish();
}

/// The solver alone: rating (classifying and proving uniqueness of) fixed
/// generated sudokus, one per offered setting.
fn solver(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("solve");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    for (label, spec) in specs()
        .into_iter()
        .filter(|(_, spec)| spec.kind == PuzzleKind::Sudoku)
    {
        let request = PuzzleRequest {
            hunt: "hunt",
            stage: "stage",
            player: "fixed",
            secret: b"bench",
        };
        let Ok(instance) = generate(&spec, &request) else {
            continue;
        };
        let PuzzleData::Sudoku { size, givens, .. } = instance.data else {
            continue;
        };
        group.bench_function(label, |bencher| {
            bencher.iter(|| black_box(sudoku::rate(size, black_box(&givens))))
        });
    }
    group.finish();
}

criterion_group!(benches, generation, solver);
criterion_main!(benches);
