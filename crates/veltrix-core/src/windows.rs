//! Per-player rolling windows in event time, for `count`, `sum` and `streak`.
//!
//! Only the series an expression asks for are kept (see `Tracking`). Events
//! may arrive out of event-time order, so each series is kept sorted by `ts`;
//! the common in-order case is a push at the back. Entries older than
//! `newest − longest window − lateness` are dropped: they can only matter to
//! events later than the configured lateness, which is the documented bound.

use std::collections::VecDeque;
use veltrix_config::veltrix_expr::Period;
use veltrix_config::{Config, EventTypeId, FieldSlot};

const DAY_MS: i64 = 86_400_000;

/// Which series the configuration needs, computed once per configuration.
#[derive(Clone, Debug, Default)]
pub struct Tracking {
    /// (event type, field or None for counts) → series index; with the longest window.
    pub series: Vec<SeriesSpec>,
    /// (event type, period) → streak index.
    pub streaks: Vec<(EventTypeId, Period)>,
    /// For each event type: series indices and streak indices it feeds.
    pub by_type: Vec<(Vec<usize>, Vec<usize>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSpec {
    pub event_type: EventTypeId,
    pub field: Option<FieldSlot>,
    pub longest_ms: i64,
}

impl Tracking {
    pub fn for_config(config: &Config) -> Tracking {
        let mut tracking = Tracking {
            by_type: vec![(Vec::new(), Vec::new()); config.event_types.len()],
            ..Tracking::default()
        };
        let exprs = config.rules.iter().filter_map(|r| r.when.as_ref()).chain(
            config.hunts.iter().flat_map(|h| {
                h.stages.iter().filter_map(|s| match &s.kind {
                    veltrix_config::StageKind::Solve { when, .. } => when.as_ref(),
                    _ => None,
                })
            }),
        );
        for expr in exprs {
            let req = expr.requirements();
            for &(event_type, window) in &req.counts {
                tracking.need_series(event_type, None, window);
            }
            for &(event_type, field, window) in &req.sums {
                tracking.need_series(event_type, Some(field), window);
            }
            for &(event_type, period) in &req.streaks {
                if !tracking.streaks.contains(&(event_type, period)) {
                    tracking.streaks.push((event_type, period));
                    let index = tracking.streaks.len() - 1;
                    tracking.by_type[event_type as usize].1.push(index);
                }
            }
        }
        tracking
    }

    fn need_series(&mut self, event_type: EventTypeId, field: Option<FieldSlot>, window: i64) {
        if let Some(spec) = self
            .series
            .iter_mut()
            .find(|s| s.event_type == event_type && s.field == field)
        {
            spec.longest_ms = spec.longest_ms.max(window);
            return;
        }
        self.series.push(SeriesSpec {
            event_type,
            field,
            longest_ms: window,
        });
        let index = self.series.len() - 1;
        self.by_type[event_type as usize].0.push(index);
    }

    pub fn series_index(&self, event_type: EventTypeId, field: Option<FieldSlot>) -> Option<usize> {
        self.series
            .iter()
            .position(|s| s.event_type == event_type && s.field == field)
    }

    pub fn streak_index(&self, event_type: EventTypeId, period: Period) -> Option<usize> {
        self.streaks.iter().position(|s| *s == (event_type, period))
    }
}

/// Entries sorted by event time. A count series keeps only times; a sum
/// series also keeps values and, while every value is a whole number below
/// 2^53, running integer totals so a window sum is two lookups instead of a
/// scan. Those totals are exact, so the result equals summing the window.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    ts: VecDeque<i64>,
    values: VecDeque<f64>,
    /// `totals[i]` = sum of all values up to and including entry i, counted
    /// from the first entry ever recorded (pruning keeps differences valid).
    totals: VecDeque<i128>,
    fractional: bool,
    newest: i64,
}

const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

impl Series {
    pub fn record(&mut self, ts: i64, value: Option<f64>, keep_ms: i64) {
        let at = if self.ts.back().is_none_or(|&last| last <= ts) {
            self.ts.len()
        } else {
            self.ts.partition_point(|&t| t <= ts)
        };
        self.ts.insert(at, ts);
        if let Some(value) = value {
            self.values.insert(at, value);
            if value.fract() != 0.0 || value.abs() >= EXACT_INTEGER {
                self.fractional = true;
                self.totals.clear();
            }
            if !self.fractional {
                // Late entries rewrite the totals after them; in-order ones append.
                let mut running = if at == 0 { 0 } else { self.totals[at - 1] };
                self.totals.truncate(at);
                for v in self.values.range(at..) {
                    // Exact: integral and below 2^53 (checked above); via
                    // i64 because a direct f64 -> i128 cast is a slow libcall.
                    running += i128::from(*v as i64);
                    self.totals.push_back(running);
                }
            }
        }
        self.newest = self.newest.max(ts);
        let horizon = self.newest.saturating_sub(keep_ms);
        while self.ts.front().is_some_and(|&t| t < horizon) {
            self.ts.pop_front();
            self.values.pop_front();
            self.totals.pop_front();
        }
        debug_assert!(self.values.is_empty() || self.values.len() == self.ts.len());
    }

    /// Index range of entries with ts in (t − window, t].
    fn bounds(&self, t: i64, window: i64) -> (usize, usize) {
        let lo = self
            .ts
            .partition_point(|&ts| ts <= t.saturating_sub(window));
        let hi = self.ts.partition_point(|&ts| ts <= t);
        (lo, hi.max(lo))
    }

    pub fn count(&self, t: i64, window: i64) -> i64 {
        let (lo, hi) = self.bounds(t, window);
        (hi - lo) as i64
    }

    pub fn sum(&self, t: i64, window: i64) -> f64 {
        let (lo, hi) = self.bounds(t, window);
        if lo == hi {
            return 0.0;
        }
        if !self.fractional && self.totals.len() == self.ts.len() {
            let before = self.totals[lo] - i128::from(self.values[lo] as i64);
            return (self.totals[hi - 1] - before) as f64;
        }
        self.values.range(lo..hi).sum()
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// The UTC period index holding `ts`: days since the epoch, or ISO weeks
/// (Monday 00:00 UTC; the epoch was a Thursday, hence the +3).
pub fn period_index(ts: i64, period: Period) -> i64 {
    let day = ts.div_euclid(DAY_MS);
    match period {
        Period::Day => day,
        Period::Week => (day + 3).div_euclid(7),
    }
}

/// Disjoint, sorted, inclusive runs of period indices in which the player had
/// an event: a streak is the length of the run ending at a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Streak {
    runs: Vec<(i64, i64)>,
}

impl Streak {
    pub fn record(&mut self, period: i64) {
        let at = self.runs.partition_point(|&(_, end)| end < period - 1);
        match self.runs.get(at).copied() {
            Some((start, end)) if start <= period && period <= end => {}
            Some((start, end)) if end == period - 1 => {
                self.runs[at].1 = period;
                // Joins the next run when the gap closed.
                if let Some(&(next_start, next_end)) = self.runs.get(at + 1)
                    && next_start == period + 1
                {
                    self.runs[at] = (start, next_end);
                    self.runs.remove(at + 1);
                }
            }
            Some((start, _)) if start == period + 1 => self.runs[at].0 = period,
            _ => self.runs.insert(at, (period, period)),
        }
        debug_assert!(self.runs.windows(2).all(|w| w[0].1 + 1 < w[1].0));
    }

    /// Consecutive periods ending with `period` that hold an event.
    pub fn length_at(&self, period: i64) -> i64 {
        let at = self.runs.partition_point(|&(_, end)| end < period);
        match self.runs.get(at) {
            Some(&(start, end)) if start <= period && period <= end => period - start + 1,
            _ => 0,
        }
    }
}

/// One player's windows, indexed like `Tracking`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Windows {
    pub series: Vec<Series>,
    pub streaks: Vec<Streak>,
}

impl Windows {
    pub fn record(
        &mut self,
        tracking: &Tracking,
        event_type: EventTypeId,
        ts: i64,
        value_of: impl Fn(FieldSlot) -> Option<f64>,
        lateness_ms: i64,
    ) {
        let (series, streaks) = &tracking.by_type[event_type as usize];
        if series.is_empty() && streaks.is_empty() {
            return;
        }
        if self.series.len() < tracking.series.len() {
            self.series
                .resize_with(tracking.series.len(), Series::default);
        }
        if self.streaks.len() < tracking.streaks.len() {
            self.streaks
                .resize_with(tracking.streaks.len(), Streak::default);
        }
        for &index in series {
            let spec = &tracking.series[index];
            let value = match spec.field {
                None => None,
                // A missing optional field adds nothing to a sum.
                Some(slot) => match value_of(slot) {
                    Some(v) => Some(v),
                    None => continue,
                },
            };
            self.series[index].record(ts, value, spec.longest_ms.saturating_add(lateness_ms));
        }
        for &index in streaks {
            let (_, period) = tracking.streaks[index];
            self.streaks[index].record(period_index(ts, period));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_sum_cover_half_open_window() {
        let mut s = Series::default();
        for (ts, v) in [(1000, 1.0), (2000, 2.0), (3000, 4.0)] {
            s.record(ts, Some(v), 1_000_000);
        }
        // (t − w, t] = (1000, 3000]: excludes the entry at exactly 1000.
        assert_eq!(s.count(3000, 2000), 2);
        assert_eq!(s.sum(3000, 2000), 6.0);
        assert_eq!(s.count(3000, 2001), 3);
        assert_eq!(s.count(999, 10), 0);
    }

    #[test]
    fn out_of_order_entries_stay_sorted() {
        let mut s = Series::default();
        for (ts, v) in [(5000, 5.0), (1000, 1.0), (3000, 3.0), (2000, 2.0)] {
            s.record(ts, Some(v), 1_000_000);
        }
        // Late entries keep the running totals exact.
        assert_eq!(s.sum(3000, 2500), 6.0);
        assert_eq!(s.sum(5000, 10_000), 11.0);
        assert_eq!(s.count(2500, 2000), 2);
        assert_eq!(s.count(5000, 10_000), 4);
    }

    #[test]
    fn old_entries_are_pruned_beyond_keep() {
        let mut s = Series::default();
        s.record(0, Some(1.0), 1000);
        s.record(5000, Some(2.0), 1000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.sum(5000, 10_000), 2.0);
    }

    #[test]
    fn fractional_values_fall_back_to_direct_summation() {
        let mut s = Series::default();
        for (ts, v) in [(1, 0.1), (2, 0.2), (3, 3.0)] {
            s.record(ts, Some(v), 1_000_000);
        }
        assert_eq!(s.sum(3, 10), 0.1 + 0.2 + 3.0);
        assert_eq!(s.sum(3, 2), 0.2 + 3.0);
    }

    #[test]
    fn streaks_merge_runs_in_any_order() {
        let mut st = Streak::default();
        for p in [10, 12, 11, 14] {
            st.record(p);
        }
        assert_eq!(st.length_at(12), 3);
        assert_eq!(st.length_at(14), 1);
        assert_eq!(st.length_at(13), 0);
        st.record(13);
        assert_eq!(st.length_at(14), 5);
    }

    #[test]
    fn iso_weeks_start_on_monday() {
        // 2026-11-23 is a Monday, 2026-11-22 a Sunday.
        let monday = 1_795_392_000_000; // 2026-11-23T00:00:00Z
        let sunday_night = monday - 1;
        assert_eq!(
            period_index(monday, Period::Week),
            period_index(sunday_night, Period::Week) + 1
        );
        assert_eq!(
            period_index(monday + 6 * DAY_MS + DAY_MS - 1, Period::Week),
            period_index(monday, Period::Week)
        );
    }
}
