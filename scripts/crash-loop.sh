#!/usr/bin/env bash
# The full crash loop (RELIABILITY.md, "Crash loop"): the real server under
# concurrent load, SIGKILLed at random moments VELTRIX_CRASH_CYCLES times
# (default 100), every invariant checked after each restart.
#
#   scripts/crash-loop.sh                          # 100 cycles, new seed
#   VELTRIX_CRASH_SEED=123 scripts/crash-loop.sh   # replay a seed
set -euo pipefail
cd "$(dirname "$0")/.."
export VELTRIX_CRASH_CYCLES="${VELTRIX_CRASH_CYCLES:-100}"
exec cargo test --release -p veltrix-cli --test crash_loop -- --nocapture "$@"
