#!/usr/bin/env python3
"""Prints the comparison table (Markdown) from the JSON files bench/compare.sh
wrote into its work directory. Every number comes from those files."""
import json
import sys
from pathlib import Path

work = Path(sys.argv[1])


def load(name):
    return json.loads((work / name).read_text())


veltrix = load("veltrix.json")
publish = load("publish.json")
consume = load("consume.json")
stack = load("stack.json")
verify = load("verify.json")
rank = load("rank.json")
log = load("log.json")
parse = load("parse.json")
seq = load("fio-seq.json")["jobs"][0]["write"]
fsync = load("fio-fsync.json")["jobs"][0]
workload = load("workload.json")
log_bytes = int((work / "veltrix-log-bytes.txt").read_text())
written = work / "veltrix-write-bytes.txt"
# Bytes written by the server during the run (/proc/PID/io), else what is
# left in the data directory (older snapshots already removed).
write_bytes = int(written.read_text()) if written.exists() else log_bytes

events = veltrix["events_sent"]
v_rate = veltrix["events_per_second"]
r_rate = events / consume["pipeline_seconds"]
v_lat = veltrix["ack_latency_ms"]
r_lat = consume["end_to_end_latency_ms"]
p_lat = publish["publish_ack_latency_ms"]
v_cpu = veltrix["server_cpu_seconds"]
r_cpu = stack["servers_cpu_seconds"] + (consume.get("process_cpu_seconds") or 0)
v_rss = veltrix["server_peak_rss_mb"]
r_rss = stack["servers_peak_rss_mb"] + (consume.get("process_peak_rss_mb") or 0)


def per_m(cpu):
    return cpu / events * 1e6


def f(x, digits=1):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if abs(x) >= 1 else f"{x:.{digits + 2}f}"


rows = [
    ("sustained throughput (events/s, higher is better)", v_rate, r_rate),
    ("ack latency p50 (ms)", v_lat["p50"], r_lat["p50"]),
    ("ack latency p90 (ms)", v_lat["p90"], r_lat["p90"]),
    ("ack latency p99 (ms)", v_lat["p99"], r_lat["p99"]),
    ("ack latency p99.9 (ms)", v_lat["p99.9"], r_lat["p99.9"]),
    ("ack latency max (ms)", v_lat["max"], r_lat["max"]),
    ("CPU seconds per million events", per_m(v_cpu), per_m(r_cpu)),
    ("peak memory (MiB)", v_rss, r_rss),
]
print(f"Workload: {events:,} events ({workload['valid']:,} valid incl. {workload['hunt_steps']:,} hunt steps, "
      f"{workload['duplicates']:,} duplicates, {workload['invalid']:,} invalid), "
      f"{workload['bytes'] / events:.0f} bytes/event; generated at {workload['generation_events_per_second']:,.0f} events/s.")
print(f"Identical results: leaderboards {', '.join(verify['leaderboards'])} (top 100 and sizes) and "
      f"{verify['grants']:,} grants on both sides.\n")
print("| measure | Veltrix | reference stack | Veltrix / reference |")
print("|---|---:|---:|---:|")
for name, v, r in rows:
    print(f"| {name} | {f(v)} | {f(r)} | {v / r:.3g} |")
print(f"| (reference publish-ack only: p50 / p99 ms) | | {f(p_lat['p50'])} / {f(p_lat['p99'])} | |")

rate_file = work / "veltrix-rate.json"
if rate_file.exists():
    vr_ = load("veltrix-rate.json")
    cr_ = load("consume-rate.json")
    pr_ = load("publish-rate.json")
    rate = pr_["rate"]
    print(f"\nLatency at equal load: both offered {rate:,.0f} events/s (open loop, latency from each event's "
          f"scheduled time), {vr_['events_sent']:,} events; Veltrix in requests of {vr_['batch']} events:\n")
    print("| measure | Veltrix | reference stack | Veltrix / reference |")
    print("|---|---:|---:|---:|")
    print(f"| achieved (events/s) | {f(vr_['events_per_second'])} | {f(vr_['events_sent'] / cr_['pipeline_seconds'])} | |")
    for q in ["p50", "p90", "p99", "p99.9", "max"]:
        v, r = vr_["ack_latency_ms"][q], cr_["end_to_end_latency_ms"][q]
        print(f"| ack latency {q} (ms) | {f(v)} | {f(r)} | {v / r:.3g} |")

print("\nComponents (same run):\n")
print("| component | Veltrix | reference | Veltrix / reference |")
print("|---|---:|---:|---:|")
vr, rr = rank["veltrix_rank"], rank["redis"]
print(f"| leaderboard update at {rank['players']:,} players (ops/s) | {f(vr['update_per_second'])} | "
      f"{f(rr['zincrby_per_second'])} (ZINCRBY, pipeline {rank['redis_pipeline']}) | {vr['update_per_second'] / rr['zincrby_per_second']:.3g} |")
print(f"| leaderboard rank at {rank['players']:,} players (ops/s) | {f(vr['rank_per_second'])} | "
      f"{f(rr['zrevrank_per_second'])} (ZREVRANK, pipeline {rank['redis_pipeline']}) | {vr['rank_per_second'] / rr['zrevrank_per_second']:.3g} |")
ls, lb, lj = log["veltrix_log_single"], log["veltrix_log_batch_1000"], log["jetstream"]
print(f"| durable append, {log['record_bytes']} B records, {log['in_flight']} in flight (records/s) | "
      f"{f(ls['records_per_second'])} ({ls['fsyncs']:,} fsyncs) | {f(lj['records_per_second'])} (JetStream, sync always) | "
      f"{ls['records_per_second'] / lj['records_per_second']:.3g} |")
print(f"| durable append, batches of 1,000 (records/s) | {f(lb['records_per_second'])} | – | |")

disk_mb = seq["bw_bytes"] / 1e6
fsyncs = fsync["sync"]["lat_ns"]["N"] / (fsync["job_runtime"] / 1000) if fsync.get("sync") else None
v_mb = write_bytes / veltrix["seconds"] / 1e6
print("\nPhysical limits (same run):\n")
print("| limit | measured | Veltrix reaches |")
print("|---|---:|---:|")
print(f"| disk sequential write (fio, 1 MiB direct) | {disk_mb:,.0f} MB/s | {100 * v_mb / disk_mb:.2f} % "
      f"({v_mb:.1f} MB/s of log and snapshots written during durable ingest; {log_bytes / 1e6:.0f} MB left on disk) |")
metrics = (work / "veltrix-results" / "metrics.txt").read_text()
v_fsyncs = next((float(l.split()[-1]) for l in metrics.splitlines()
                 if l.startswith("veltrix_log_fsync_seconds_count")), None)
if fsyncs and v_fsyncs is not None:
    v_fsync_rate = v_fsyncs / veltrix["seconds"]
    print(f"| fsync rate (fio, 4 KiB write + fdatasync) | {fsyncs:,.0f} /s | {100 * v_fsync_rate / fsyncs:.1f} % "
          f"({v_fsync_rate:,.0f} group commits/s, {events / max(v_fsyncs, 1):,.0f} events per fsync) |")
print(f"| JSON parse of the event bytes alone (serde_json, 1 core) | {parse['events_per_second']:,.0f} events/s "
      f"({parse['mb_per_second']:.0f} MB/s) | {100 * v_rate / parse['events_per_second']:.1f} % |")

print("\nTargets:\n")
ratio = v_rate / r_rate
print(f"- throughput >= 20x the reference: {ratio:.1f}x -> {'met' if ratio >= 20 else f'missed by {20 / ratio:.2f}x'}")
lat = r_lat['p99'] / v_lat['p99']
print(f"- p99 <= 1/10 of the reference's: Veltrix p99 is 1/{lat:.1f} of it -> {'met' if lat >= 10 else f'missed by {10 / lat:.2f}x'}")
share = 100 * v_mb / disk_mb
print(f"- >= 50 % of sequential-write bandwidth in durable ingest: {share:.2f} % -> "
      f"{'met' if share >= 50 else f'missed by {50 / share:.0f}x'}")
if rate_file.exists():
    lat_eq = cr_["end_to_end_latency_ms"]["p99"] / vr_["ack_latency_ms"]["p99"]
    print(f"- p99 at equal load ({rate:,.0f} events/s): Veltrix p99 is 1/{lat_eq:.1f} of the reference's -> "
          f"{'met' if lat_eq >= 10 else f'missed by {10 / lat_eq:.2f}x'}")
