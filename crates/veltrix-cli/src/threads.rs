//! Where a process's CPU time goes, thread by thread, from Linux's `/proc`:
//! what `veltrix bench --server-pid` reports for the server it measures.
//!
//! A throughput limit shows here as one thread that never sleeps (few
//! voluntary switches) while the others do. Time spent waiting for a CPU
//! (runnable, not running: `schedstat`'s second field) shows how much the
//! threads compete for the cores. Threads are summed by name (`comm`,
//! which Linux cuts to 15 bytes): the server's pool threads share one.

use std::collections::BTreeMap;

/// CPU figures of the threads of one name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Times {
    pub threads: u32,
    /// On a CPU, seconds.
    pub running: f64,
    /// Runnable but waiting for a CPU, seconds.
    pub waiting: f64,
    /// Times a thread went to sleep (waited for something).
    pub voluntary: u64,
    /// Times a thread was switched out while it could still run.
    pub involuntary: u64,
}

/// The threads of process `pid`, summed by name. `None` off Linux or when
/// the process is gone. Threads that ended before this reading are not in
/// it.
pub fn by_name(pid: u32) -> Option<BTreeMap<String, Times>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut by_name: BTreeMap<String, Times> = BTreeMap::new();
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        // A thread may end between listing and reading: skip it.
        let (Some(comm), Some(schedstat), Some(status)) =
            (read("comm"), read("schedstat"), read("status"))
        else {
            continue;
        };
        let Some(thread) = parse_thread(&schedstat, &status) else {
            continue;
        };
        let sum = by_name.entry(comm.trim().to_string()).or_default();
        sum.threads += 1;
        sum.running += thread.running;
        sum.waiting += thread.waiting;
        sum.voluntary += thread.voluntary;
        sum.involuntary += thread.involuntary;
    }
    Some(by_name)
}

/// One thread's figures from its `schedstat` ("run_ns wait_ns slices")
/// and `status` (`voluntary_ctxt_switches`, `nonvoluntary_ctxt_switches`).
pub fn parse_thread(schedstat: &str, status: &str) -> Option<Times> {
    let mut fields = schedstat.split_whitespace();
    let running: u64 = fields.next()?.parse().ok()?;
    let waiting: u64 = fields.next()?.parse().ok()?;
    let switches = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))?
            .trim()
            .parse()
            .ok()
    };
    Some(Times {
        threads: 1,
        running: running as f64 / 1e9,
        waiting: waiting as f64 / 1e9,
        voluntary: switches("voluntary_ctxt_switches:")?,
        involuntary: switches("nonvoluntary_ctxt_switches:")?,
    })
}

/// What each name's threads did between two readings, the busiest first.
/// A name absent before counts from zero (threads started meanwhile).
pub fn between(
    before: &BTreeMap<String, Times>,
    after: &BTreeMap<String, Times>,
) -> Vec<(String, Times)> {
    let mut spent: Vec<(String, Times)> = after
        .iter()
        .map(|(name, now)| {
            let then = before.get(name).cloned().unwrap_or_default();
            let times = Times {
                threads: now.threads,
                running: (now.running - then.running).max(0.0),
                waiting: (now.waiting - then.waiting).max(0.0),
                voluntary: now.voluntary.saturating_sub(then.voluntary),
                involuntary: now.involuntary.saturating_sub(then.involuntary),
            };
            (name.clone(), times)
        })
        .filter(|(_, times)| times.running > 0.0 || times.waiting > 0.0)
        .collect();
    spent.sort_by(|a, b| b.1.running.total_cmp(&a.1.running));
    spent
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tveltrix-engine\nState:\tR (running)\n\
        voluntary_ctxt_switches:\t9\nnonvoluntary_ctxt_switches:\t1471\n";

    #[test]
    fn a_thread_reads_from_schedstat_and_status() {
        let times = parse_thread("1750000000 160000000 1480\n", STATUS).unwrap();
        assert_eq!(times.threads, 1);
        assert!((times.running - 1.75).abs() < 1e-9);
        assert!((times.waiting - 0.16).abs() < 1e-9);
        assert_eq!((times.voluntary, times.involuntary), (9, 1471));
        assert_eq!(parse_thread("garbage", STATUS), None);
        assert_eq!(parse_thread("1 2 3", "Name:\tx\n"), None);
    }

    #[test]
    fn between_two_readings_the_busiest_come_first_and_new_names_count_from_zero() {
        let times = |running: f64, voluntary: u64| Times {
            threads: 1,
            running,
            waiting: running / 10.0,
            voluntary,
            involuntary: 0,
        };
        let before = BTreeMap::from([
            ("veltrix-engine".to_string(), times(1.0, 5)),
            ("idle".to_string(), times(0.5, 1)),
        ]);
        let after = BTreeMap::from([
            ("veltrix-engine".to_string(), times(3.0, 7)),
            ("idle".to_string(), times(0.5, 1)),
            ("tokio-rt-worker".to_string(), times(4.0, 100)),
        ]);
        let spent = between(&before, &after);
        let names: Vec<&str> = spent.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["tokio-rt-worker", "veltrix-engine"]);
        assert!((spent[1].1.running - 2.0).abs() < 1e-9);
        assert_eq!(spent[1].1.voluntary, 2);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_thread_that_ran() {
        let threads = by_name(std::process::id()).expect("/proc is readable");
        assert!(threads.values().map(|t| t.threads).sum::<u32>() >= 1);
        // Burn a little CPU so the reading has something to show.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let later = by_name(std::process::id()).expect("/proc is readable");
        assert!(
            between(&threads, &later)
                .iter()
                .any(|(_, t)| t.running > 0.0)
        );
    }
}
