#!/usr/bin/env bash
# Runs every Veltrix fuzz target (fuzz/, cargo-fuzz + libFuzzer) for a bounded
# time each and prints the executions per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Works on the stable toolchain: `-s none` builds without a sanitizer (no
# -Zsanitizer), keeping libFuzzer's coverage instrumentation, which is stable
# (-Cpasses=sancov-module). Panics and failed assertions are the crashes we
# look for; a sanitizer would need nightly.
#
# Corpora: fuzz/seeds/<target> and fuzz/regressions/<target> (both checked in)
# are read; new inputs go to fuzz/corpus/<target> (git-ignored). A crash
# leaves its input in fuzz/artifacts/<target>/; copy it into
# fuzz/regressions/<target>/ so `cargo test --workspace` replays it
# (crates/veltrix-server/tests/access.rs, fuzz_regressions_and_seeds_run_clean).
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_ARGS (extra
# libFuzzer flags). Exit status 1 when a target found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

cd fuzz
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "building ${#targets[@]} fuzz targets (release, coverage instrumentation, no sanitizer)" >&2
start=$(date +%s)
if [ $# -gt 0 ]; then
    for t in "${targets[@]}"; do cargo fuzz build -s none "$t"; done
else
    cargo fuzz build -s none # every target in one cargo run
fi
echo "built in $(( $(date +%s) - start )) s" >&2

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "regressions/$t"
    log=$(mktemp)
    status=0
    # -timeout: an input taking over 10 s is reported (a hang is a bug too).
    cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
    corpus=$(ls "corpus/$t" | wc -l)
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        echo "---- $t FAILED (exit $status); last lines of its output:" >&2
        tail -n 40 "$log" >&2
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
        summary+=("$(printf '%-12s %12s executions  %4s s  corpus %5s  CRASH %s' "$t" "${execs:-?}" "${took:-?}" "$corpus" "${artifact:-see output}")")
    else
        summary+=("$(printf '%-12s %12s executions  %4s s  corpus %5s  ok' "$t" "${execs:-?}" "${took:-?}" "$corpus")")
    fi
    rm -f "$log"
done

echo
echo "fuzz: ${seconds} s per target (cargo fuzz run -s none TARGET -- -max_total_time=${seconds})"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes in: ${failed[*]}; copy each artifact into fuzz/regressions/<target>/ and fix" >&2
    exit 1
fi
