//! Evaluation cost of a typical condition. Prints ns per evaluation; run
//! with `cargo test -p veltrix-expr --release --test speed -- --nocapture`.
//! Asserts only the results, since timings on shared CI machines are noise.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{PURCHASE, TestCtx, compile_on};

#[test]
fn typical_condition_speed() {
    let compiled = compile_on("event.amount >= 50 && player.points < 1000", PURCHASE);
    let contexts: Vec<TestCtx> = (0..8)
        .map(|i| {
            let mut ctx = TestCtx::purchase(f64::from(i) * 10.0);
            ctx.points = 1000 - i64::from(i) * 20;
            ctx
        })
        .collect();
    let iterations = 400_000;
    let start = Instant::now();
    let mut hits = 0u32;
    for i in 0..iterations {
        let ctx = &contexts[i % contexts.len()];
        if compiled.eval_condition(black_box(ctx)) {
            hits += 1;
        }
    }
    let elapsed = start.elapsed();
    // Amounts are 0, 10, ..., 70 and points 1000, 980, ..., 860: the
    // condition holds for the last three contexts of every eight.
    assert_eq!(
        hits,
        3 * u32::try_from(iterations / contexts.len()).unwrap_or(0)
    );
    let ns = elapsed.as_nanos() as f64 / iterations as f64;
    println!("event.amount >= 50 && player.points < 1000: {ns:.1} ns per evaluation");
}
