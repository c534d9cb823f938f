#!/usr/bin/env bash
# Disk-full test: runs the real server with its data directory on a small
# tmpfs, fills it, and checks that ingest answers 507 insufficient_storage,
# nothing acknowledged is lost, and the server recovers by itself once space
# returns. The assertions are in crates/veltrix-cli/tests/disk_full.rs
# (an #[ignore]d test); this script only makes and removes the mount.
#
# Needs root (or CAP_SYS_ADMIN) to mount a tmpfs. Exits non-zero, saying
# why, when it cannot.
#
#   scripts/disk-full.sh            # debug build
#   scripts/disk-full.sh --release  # extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

size="${VELTRIX_DISK_FULL_SIZE:-64m}"

if [ "$(id -u)" != 0 ]; then
    echo "disk-full.sh: must run as root to mount a ${size} tmpfs (mount -t tmpfs needs CAP_SYS_ADMIN)" >&2
    exit 1
fi
if ! command -v mount >/dev/null || ! command -v umount >/dev/null; then
    echo "disk-full.sh: mount/umount not found (install util-linux)" >&2
    exit 1
fi

# Build first, so the mount exists only while the test runs.
cargo test -p veltrix-cli --test disk_full "$@" --no-run

mnt="$(mktemp -d "${TMPDIR:-/tmp}/veltrix-disk-full.XXXXXX")"
cleanup() {
    # Harmless when nothing is mounted there; lazy unmount if still busy.
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if ! err="$(mount -t tmpfs -o "size=${size},mode=0700" tmpfs "$mnt" 2>&1)"; then
    echo "disk-full.sh: cannot mount a ${size} tmpfs on ${mnt}: ${err}" >&2
    echo "disk-full.sh: in a container this needs --privileged or --cap-add SYS_ADMIN" >&2
    exit 1
fi
echo "disk-full.sh: ${size} tmpfs on ${mnt}"

VELTRIX_DISK_FULL_DIR="$mnt" cargo test -p veltrix-cli --test disk_full "$@" \
    -- --ignored --nocapture --test-threads=1
