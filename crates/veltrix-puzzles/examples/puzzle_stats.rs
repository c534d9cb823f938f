//! Generation latency and rejection rates per kind and difficulty.
//!
//! Run: `cargo run --release -p veltrix-puzzles --example puzzle_stats [players]`
//! (default 10,000 players per row). Each player's instance is generated on
//! demand, cold, as the engine would; the figures go into README.md.

use std::time::Instant;

use veltrix_puzzles::{PuzzleKind, PuzzleRequest, PuzzleSpec, generate};

/// Nanoseconds this thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`),
/// Linux only. Wall-clock percentiles on a shared 2-core machine are dominated
/// by preemption (4 ms scheduler ticks), so the on-CPU figure is reported
/// beside them: it is what one generation costs when it has a core.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    unsafe extern "C" {
        // From the C library std already links; no extra dependency.
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut time = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: `time` is a valid, writable timespec for the duration of the
    // call, laid out as the C struct on 64-bit Linux.
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    (status == 0).then(|| time.seconds as u64 * 1_000_000_000 + time.nanoseconds as u64)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

fn main() {
    // `--show`: print one instance's text per row (never its answer) instead.
    let show = std::env::args().any(|arg| arg == "--show");
    let players: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let words = |list: &[&str]| {
        list.iter()
            .map(|word| (*word).to_owned())
            .collect::<Vec<_>>()
    };
    let mut specs: Vec<(String, PuzzleSpec)> = vec![
        (
            "caesar (4 words)".to_owned(),
            PuzzleSpec {
                kind: PuzzleKind::Caesar,
                words: words(&["compass", "anchor", "harbor", "lantern"]),
                difficulty: None,
                size: None,
            },
        ),
        (
            "anagram (4 words)".to_owned(),
            PuzzleSpec {
                kind: PuzzleKind::Anagram,
                words: words(&["compass", "anchor", "harbor", "lantern"]),
                difficulty: None,
                size: None,
            },
        ),
    ];
    for (size, difficulties) in veltrix_puzzles::sudoku::OFFERED {
        for difficulty in difficulties {
            specs.push((
                format!("sudoku {size}x{size} {}", difficulty.as_str()),
                PuzzleSpec {
                    kind: PuzzleKind::Sudoku,
                    words: Vec::new(),
                    difficulty: Some(difficulty.as_str().to_owned()),
                    size: Some(size),
                },
            ));
        }
    }
    if !show {
        println!("players per row: {players}");
        println!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>8} {:>7} {:>9}",
            "kind",
            "p50 us",
            "p99 us",
            "max us",
            "mean us",
            "cpu p50",
            "cpu p99",
            "cpu max",
            "rejections",
            "rej max",
            "failed",
            "nodes p99"
        );
    }
    // PUZZLE_STATS_ONLY=<substring> measures only the matching rows.
    let only = std::env::var("PUZZLE_STATS_ONLY").unwrap_or_default();
    for (label, spec) in specs.iter().filter(|(label, _)| label.contains(&only)) {
        if show {
            let request = PuzzleRequest {
                hunt: "hunt",
                stage: "stage",
                player: "ada",
                secret: b"stats-secret",
            };
            match generate(spec, &request) {
                Ok(instance) => println!("== {label}\n{}\n", instance.text),
                Err(error) => println!("== {label}\nerror: {error}\n"),
            }
            continue;
        }
        let mut micros: Vec<f64> = Vec::with_capacity(players);
        let mut cpu_micros: Vec<f64> = Vec::with_capacity(players);
        let mut nodes: Vec<u64> = Vec::with_capacity(players);
        let (mut rejections, mut failed, mut most_rejections) = (0u64, 0u64, 0u32);
        for player in 0..players {
            let name = format!("player-{player}");
            let request = PuzzleRequest {
                hunt: "hunt",
                stage: "stage",
                player: &name,
                secret: b"stats-secret",
            };
            let cpu_start = thread_cpu_ns();
            let start = Instant::now();
            let result = generate(spec, &request);
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            if let (Some(before), Some(after)) = (cpu_start, thread_cpu_ns()) {
                cpu_micros.push(after.saturating_sub(before) as f64 / 1e3);
            }
            match result {
                Ok(instance) => {
                    rejections += u64::from(instance.rejected_derivations);
                    most_rejections = most_rejections.max(instance.rejected_derivations);
                    nodes.push(instance.solver.nodes);
                }
                Err(_) => failed += 1,
            }
        }
        micros.sort_by(f64::total_cmp);
        cpu_micros.sort_by(f64::total_cmp);
        let cpu_at = |fraction: f64| {
            cpu_micros
                .get(((cpu_micros.len().max(1) - 1) as f64 * fraction).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        nodes.sort_unstable();
        let at = |fraction: f64| micros[((micros.len() - 1) as f64 * fraction).round() as usize];
        let mean = micros.iter().sum::<f64>() / micros.len() as f64;
        let nodes_p99 = nodes
            .get((nodes.len().saturating_sub(1) as f64 * 0.99) as usize)
            .copied()
            .unwrap_or(0);
        println!(
            "{:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.3}/i {:>8} {:>7} {:>9}",
            label,
            at(0.5),
            at(0.99),
            at(1.0),
            mean,
            cpu_at(0.5),
            cpu_at(0.99),
            cpu_at(1.0),
            rejections as f64 / players as f64,
            most_rejections,
            failed,
            nodes_p99
        );
    }
}
