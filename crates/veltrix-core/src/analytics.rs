//! Analytics views (SPEC §5): counts, sums, minimums and maximums per
//! dimension values and time bucket, kept as events arrive so a query reads
//! buckets instead of scanning events.
//!
//! Views span all players, so they are updated in log order by the engine
//! (like leaderboards), never per partition: floating-point sums then add in
//! the same order however players are partitioned.

use crate::event::{Event, FieldValue};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use veltrix_config::{Config, Dimension, Measure, View};

/// One view's buckets: (bucket start ms, dimension values) → accumulators.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ViewState {
    pub buckets: BTreeMap<(i64, Vec<Option<String>>), Vec<Accumulator>>,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Accumulator {
    Count(u64),
    Sum(f64),
    Min(Option<f64>),
    Max(Option<f64>),
}

impl Accumulator {
    fn new(measure: &Measure) -> Accumulator {
        match measure {
            Measure::Count => Accumulator::Count(0),
            Measure::Sum(..) => Accumulator::Sum(0.0),
            Measure::Min(..) => Accumulator::Min(None),
            Measure::Max(..) => Accumulator::Max(None),
        }
    }

    fn add(&mut self, measure: &Measure, event: &Event) {
        let value = |slot: u16| event.data.get(slot as usize).and_then(FieldValue::as_f64);
        match (self, measure) {
            (Accumulator::Count(n), _) => *n += 1,
            (Accumulator::Sum(total), Measure::Sum(slot, _)) => {
                *total += value(*slot).unwrap_or(0.0)
            }
            (Accumulator::Min(m), Measure::Min(slot, _)) => {
                if let Some(v) = value(*slot) {
                    *m = Some(m.map_or(v, |m| m.min(v)));
                }
            }
            (Accumulator::Max(m), Measure::Max(slot, _)) => {
                if let Some(v) = value(*slot) {
                    *m = Some(m.map_or(v, |m| m.max(v)));
                }
            }
            // Invariant: accumulators are built from the same measures.
            _ => debug_assert!(false, "accumulator does not match its measure"),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Accumulator::Count(n) => json!(n),
            Accumulator::Sum(s) => json!(s),
            Accumulator::Min(m) | Accumulator::Max(m) => json!(m),
        }
    }
}

pub fn measure_name(measure: &Measure) -> String {
    match measure {
        Measure::Count => "count".into(),
        Measure::Sum(_, f) => format!("sum(data.{f})"),
        Measure::Min(_, f) => format!("min(data.{f})"),
        Measure::Max(_, f) => format!("max(data.{f})"),
    }
}

pub fn dimension_name(dimension: &Dimension) -> String {
    match dimension {
        Dimension::Player => "player".into(),
        Dimension::Field(_, f) => format!("data.{f}"),
    }
}

/// All views of a configuration.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Views {
    pub views: Vec<ViewState>,
}

impl Views {
    pub fn new(config: &Config) -> Views {
        Views {
            views: vec![ViewState::default(); config.views.len()],
        }
    }

    /// Adds an accepted event to every view defined on its type.
    pub fn record(&mut self, config: &Config, event: &Event) {
        for (view, state) in config.views.iter().zip(&mut self.views) {
            if view.on != event.event_type {
                continue;
            }
            let bucket = event.ts.div_euclid(view.bucket_ms) * view.bucket_ms;
            let dims = view
                .group_by
                .iter()
                .map(|d| dimension_value(d, event))
                .collect();
            let accumulators = state
                .buckets
                .entry((bucket, dims))
                .or_insert_with(|| view.measures.iter().map(Accumulator::new).collect());
            for (acc, measure) in accumulators.iter_mut().zip(&view.measures) {
                acc.add(measure, event);
            }
        }
    }
}

fn dimension_value(dimension: &Dimension, event: &Event) -> Option<String> {
    match dimension {
        Dimension::Player => Some(event.player.to_string()),
        Dimension::Field(slot, _) => match event.data.get(*slot as usize)? {
            FieldValue::Missing => None,
            FieldValue::Str(s) => Some(s.to_string()),
            FieldValue::Int(i) => Some(i.to_string()),
            FieldValue::Double(d) => Some(d.to_string()),
            FieldValue::Bool(b) => Some(b.to_string()),
        },
    }
}

/// A query: a time range [from, to) in ms and dimension filters (by name,
/// e.g. `data.currency`; value `None` matches events without the field).
#[derive(Clone, Debug, Default)]
pub struct ViewQuery {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub filters: Vec<(String, Option<String>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewRow {
    /// Bucket start, RFC 3339 UTC.
    pub bucket: String,
    pub dimensions: Map<String, Value>,
    pub measures: Map<String, Value>,
}

/// Buckets of a view in time order, then by dimension values. Unknown filter
/// names are the caller's error to report; here they match nothing.
pub fn query_view(view: &View, state: &ViewState, query: &ViewQuery) -> Vec<ViewRow> {
    let names: Vec<String> = view.group_by.iter().map(dimension_name).collect();
    let lo = query
        .from
        .map_or(i64::MIN, |f| f.div_euclid(view.bucket_ms) * view.bucket_ms);
    let hi = query.to.unwrap_or(i64::MAX);
    state
        .buckets
        .range((lo, Vec::new())..)
        .take_while(|((bucket, _), _)| *bucket < hi)
        .filter(|((_, dims), _)| {
            query.filters.iter().all(|(name, wanted)| {
                names
                    .iter()
                    .position(|n| n == name)
                    .is_some_and(|i| dims[i] == *wanted)
            })
        })
        .map(|((bucket, dims), accumulators)| ViewRow {
            bucket: jiff::Timestamp::from_millisecond(*bucket)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| bucket.to_string()),
            dimensions: names
                .iter()
                .cloned()
                .zip(dims.iter().map(|d| json!(d)))
                .collect(),
            measures: view
                .measures
                .iter()
                .map(measure_name)
                .zip(accumulators.iter().map(|a| a.to_json()))
                .collect(),
        })
        .collect()
}
