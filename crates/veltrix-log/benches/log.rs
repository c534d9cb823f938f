//! Log throughput and fsync latency on the real file system.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/target-log cargo bench -p veltrix-log`
//! The temporary directory is created under `$VELTRIX_BENCH_DIR` if set (to
//! measure a particular disk), else the system temp dir.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use veltrix_log::{Log, LogOptions};

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("VELTRIX_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn records(n: usize) -> Vec<Vec<u8>> {
    // ~120-byte JSON-ish events.
    (0..n)
        .map(|i| format!(r#"{{"id":"evt-{i:010}","type":"answer","player":"p-{:06}","hunt":"h1","stage":"s3","ts":1763985600000}}"#, i % 997).into_bytes())
        .map(|mut v| {
            v.resize(120, b' ');
            v
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempdir();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    let batch = records(1000);

    // Records/s comes from criterion's element throughput; MB/s = records/s x 120 B
    // of payload (136 B on disk with the record header).
    let mut g = c.benchmark_group("append_fsync");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_1000x120B", |b| {
        b.iter(|| black_box(log.append_sync(batch.clone()).unwrap()));
    });
    g.finish();

    let mut g = c.benchmark_group("single_record_fsync");
    g.sample_size(50).measurement_time(Duration::from_secs(8));
    let one = records(1);
    g.bench_function("append_sync_1x120B", |b| {
        b.iter(|| black_box(log.append_sync(one.clone()).unwrap()));
    });
    g.finish();

    // Group commit under concurrency: 8 threads each appending one record and
    // waiting; reports appends per fsync alongside the time.
    let log = Arc::new(log);
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(8 * 100));
    let before = log.stats();
    let rounds = AtomicU64::new(0);
    g.bench_function("8_threads_x100_single_appends", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                rounds.fetch_add(1, Ordering::Relaxed);
                std::thread::scope(|s| {
                    for _ in 0..8 {
                        let log = &log;
                        let one = &one;
                        s.spawn(move || {
                            for _ in 0..100 {
                                log.append_sync(one.clone()).unwrap();
                            }
                        });
                    }
                });
            }
            t.elapsed()
        });
    });
    g.finish();
    let after = log.stats();
    eprintln!(
        "group commit: {} appends, {} fsyncs ({:.1} appends per fsync), mean fsync {:.3} ms",
        after.appends - before.appends,
        after.syncs - before.syncs,
        (after.appends - before.appends) as f64 / (after.syncs - before.syncs).max(1) as f64,
        (after.sync_nanos - before.sync_nanos) as f64
            / (after.syncs - before.syncs).max(1) as f64
            / 1e6
    );
    Arc::into_inner(log).unwrap().close().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
