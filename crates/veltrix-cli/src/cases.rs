//! `veltrix test`: configuration test cases. A case feeds events through the
//! real ingest and engine and compares the state dump with expectations.
//! The format is documented in docs/TESTING_CONFIGS.md.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::{Plan, run_ndjson};

pub struct Case {
    pub name: String,
    pub ndjson: Vec<u8>,
    pub now: i64,
    pub partitions: usize,
    pub expect: Map<String, Value>,
}

const CASE_KEYS: [&str; 7] = [
    "name",
    "events",
    "events_ndjson",
    "events_file",
    "now",
    "partitions",
    "expect",
];
const EXPECT_KEYS: [&str; 5] = ["counts", "players", "grants", "leaderboards", "rejected"];

pub fn parse_suite(text: &str, file: &Path) -> Result<Vec<Case>> {
    let table: toml::Table = toml::from_str(text)?;
    for key in table.keys() {
        if key != "case" {
            bail!("unknown top-level key \"{key}\": a case file holds [[case]] entries");
        }
    }
    let Some(cases) = table.get("case").and_then(|c| c.as_array()) else {
        bail!("no [[case]] entries");
    };
    let mut out = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let case = to_json(case);
        let Value::Object(case) = case else {
            bail!("case[{index}] is not a table")
        };
        out.push(parse_case(case, index, file).with_context(|| format!("case[{index}]"))?);
    }
    Ok(out)
}

fn parse_case(case: Map<String, Value>, index: usize, file: &Path) -> Result<Case> {
    for key in case.keys() {
        if !CASE_KEYS.contains(&key.as_str()) {
            bail!(
                "unknown key \"{key}\" (a case has {})",
                CASE_KEYS.join(", ")
            );
        }
    }
    let name = case
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| format!("case {}", index + 1), str::to_string);
    let mut ndjson = Vec::new();
    if let Some(events) = case.get("events") {
        let Value::Array(events) = events else {
            bail!("events must be an array of event tables")
        };
        for event in events {
            ndjson.extend(serde_json::to_vec(event)?);
            ndjson.push(b'\n');
        }
    }
    if let Some(text) = case.get("events_ndjson") {
        let Value::String(text) = text else {
            bail!("events_ndjson must be a string")
        };
        ndjson.extend(text.as_bytes());
        ndjson.push(b'\n');
    }
    if let Some(path) = case.get("events_file") {
        let Value::String(path) = path else {
            bail!("events_file must be a string")
        };
        let full = file.parent().unwrap_or(Path::new(".")).join(path);
        ndjson.extend(
            std::fs::read(&full).with_context(|| format!("cannot read {}", full.display()))?,
        );
        ndjson.push(b'\n');
    }
    let now = match case.get("now") {
        None => 0,
        Some(Value::String(s)) => crate::cmd::parse_time(s)?,
        Some(Value::Number(n)) => n.as_i64().context("now must be integer ms")?,
        Some(_) => bail!("now must be an RFC 3339 time or integer ms"),
    };
    let partitions = match case.get("partitions") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1024).contains(n))
            .context("partitions must be from 1 to 1024")? as usize,
    };
    let expect = match case.get("expect") {
        Some(Value::Object(e)) => e.clone(),
        None => bail!("a case needs [case.expect]"),
        Some(_) => bail!("expect must be a table"),
    };
    for key in expect.keys() {
        if !EXPECT_KEYS.contains(&key.as_str()) {
            bail!(
                "unknown expectation \"{key}\" (expect has {})",
                EXPECT_KEYS.join(", ")
            );
        }
    }
    Ok(Case {
        name,
        ndjson,
        now,
        partitions,
        expect,
    })
}

fn to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Runs a case; returns the differences (empty when it passes).
pub fn run_case(plan: &Arc<Plan>, case: &Case) -> Vec<String> {
    let (ingest, engine) = run_ndjson(plan.clone(), &case.ndjson, case.now, case.partitions);
    let state = dump(&DumpSource::from_engine(&ingest, &engine));
    // Invariant: the dump is plain JSON data.
    let actual = serde_json::to_value(&state).expect("dump serializes");
    let mut failures = Vec::new();
    for (key, expected) in &case.expect {
        let actual_key = if key == "counts" {
            "events"
        } else {
            key.as_str()
        };
        let got = actual.get(actual_key).unwrap_or(&Value::Null);
        match key.as_str() {
            // Only the players and boards named are checked.
            "players" | "leaderboards" => {
                let Value::Object(expected) = expected else {
                    failures.push(format!("expect.{key} must be a table"));
                    continue;
                };
                for (name, want) in expected {
                    let have = got.get(name).unwrap_or(&Value::Null);
                    if key == "leaderboards" && have.is_null() {
                        failures.push(format!("leaderboards.{name}: no such leaderboard"));
                        continue;
                    }
                    compare(want, have, &format!("{key}.{name}"), &mut failures);
                }
            }
            _ => compare(expected, got, key, &mut failures),
        }
    }
    failures
}

/// Expected tables match when each of their keys matches (other keys are
/// ignored); arrays must have the same length; an `error` string matches
/// when it is contained in the actual message; zero, false and empty values
/// match an omitted key.
fn compare(expected: &Value, actual: &Value, path: &str, failures: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, w) in want {
                let child = format!("{path}.{key}");
                let h = have.get(key).unwrap_or(&Value::Null);
                if key == "error"
                    && let (Value::String(w), Value::String(h)) = (w, h)
                {
                    if !h.contains(w.as_str()) {
                        failures.push(format!(
                            "{child}: expected a message containing {w:?}, got {h:?}"
                        ));
                    }
                    continue;
                }
                compare(w, h, &child, failures);
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                failures.push(format!(
                    "{path}: expected {} entries, got {}: {}",
                    want.len(),
                    have.len(),
                    short(actual)
                ));
                return;
            }
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                compare(w, h, &format!("{path}[{i}]"), failures);
            }
        }
        (Value::Number(w), Value::Number(h)) if w.as_f64() == h.as_f64() => {}
        (w, Value::Null) if is_empty(w) => {}
        (w, h) if w == h => {}
        (w, h) => failures.push(format!("{path}: expected {}, got {}", short(w), short(h))),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 300 {
        format!("{}…", &text[..text.floor_char_boundary(300)])
    } else {
        text
    }
}
