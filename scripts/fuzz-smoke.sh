#!/usr/bin/env bash
# CI smoke of every fuzz target: installs cargo-fuzz if missing (idempotent),
# builds the targets and runs each for FUZZ_SMOKE_SECONDS (default 15).
# Fails when any target finds a crash. See scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-15}" "$@"
