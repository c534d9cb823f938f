//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::sync::Arc;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::veltrix_config::{Source, compile};
use veltrix_core::{Plan, run_ndjson};

pub fn plan(toml: &str) -> Arc<Plan> {
    match compile(&[Source::new("test.toml", toml)]) {
        Ok(config) => Arc::new(Plan::new(Arc::new(config))),
        Err(d) => panic!(
            "config invalid: {:#?}",
            d.iter().map(|d| d.one_line()).collect::<Vec<_>>()
        ),
    }
}

pub fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend(serde_json::to_vec(e).unwrap());
        out.push(b'\n');
    }
    out
}

/// Runs events and returns the state dump as JSON.
pub fn run(plan: &Arc<Plan>, events: &[Value]) -> Value {
    run_bytes(plan, &ndjson(events), 1)
}

pub fn run_bytes(plan: &Arc<Plan>, bytes: &[u8], partitions: usize) -> Value {
    let (ingest, engine) = run_ndjson(plan.clone(), bytes, 1_000, partitions);
    serde_json::to_value(dump(&DumpSource::from_engine(&ingest, &engine))).unwrap()
}

/// An event at `minutes` after 2026-12-01T00:00:00Z.
pub fn ev(id: &str, player: &str, kind: &str, minutes: i64, data: Value) -> Value {
    json!({"id": id, "player": player, "type": kind, "ts": T0 + minutes * 60_000, "data": data})
}

pub const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z
pub const DAY_MIN: i64 = 24 * 60;

/// (player, source, events) of every grant, in order.
pub fn grant_list(state: &Value) -> Vec<(String, String, Vec<String>)> {
    state["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["player"].as_str().unwrap().to_string(),
                g["source"].as_str().unwrap().to_string(),
                g["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

pub fn sources(state: &Value) -> Vec<String> {
    grant_list(state).into_iter().map(|g| g.1).collect()
}

pub fn points(state: &Value, player: &str) -> i64 {
    state["players"][player]["points"].as_i64().unwrap_or(0)
}
