//! What the examples share: their `EVENTS` argument, the example
//! configuration and the shared workload generated for it.

use std::sync::Arc;
use veltrix_core::Plan;
use veltrix_core::veltrix_config::{Source, compile};

#[allow(dead_code)]
#[path = "../../../veltrix-workload/src/lib.rs"]
mod workload;

/// The plan of `examples/golden-compass` and the NDJSON of the shared
/// workload for it: `EVENTS` events (the first argument, 2,000,000 by
/// default), 100,000 players with Zipf activity, no duplicates or invalid
/// events, seed 7.
pub fn example_workload() -> (Arc<Plan>, Vec<u8>) {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("EVENTS is a number"))
        .unwrap_or(2_000_000);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/golden-compass/veltrix.toml"
    );
    let text = std::fs::read_to_string(path).expect("example configuration");
    let config = compile(&[Source::new("veltrix.toml", text)]).expect("valid example");
    let plan = Arc::new(Plan::new(Arc::new(config)));
    let spec = workload::Spec {
        events,
        players: 100_000,
        duplicate_percent: 0.0,
        invalid_percent: 0.0,
        seed: 7,
        ..workload::Spec::default()
    };
    let (ndjson, _) = workload::Workload::new(plan.clone(), spec)
        .expect("workload")
        .ndjson();
    (plan, ndjson)
}
