#!/usr/bin/env bash
# The cache stage of `firesight train` (decode every photo, embed it with the frozen backbone) under
# several allocator settings, one process after the other: wall, user and system seconds, minor page
# faults and peak RSS of each (docs/allocator.md). The settings go through the environment, which
# overrides what keep_freed_memory() sets only where the variable is given; "glibc defaults" runs
# with FIRESIGHT_MALLOC_DEFAULTS=1, which skips keep_freed_memory().
#   bench/allocator_compare.sh [DATA=fire-cair assets]      (jemalloc rows need libjemalloc2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ASSETS=$(scripts/assets.sh 2>/dev/null | tail -n 1)
DATA=${1:-$ASSETS/fire-cair}
FS=$BUILD_DIR/apps/firesight/firesight
J=/usr/lib/$(gcc -print-multiarch)/libjemalloc.so.2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {
  local name=$1; shift
  /usr/bin/time -f "$name: wall %e s, user %U s, system %S s, minor faults %R, peak RSS %M KB" env "$@" \
    "$FS" train --no-progress --data "$DATA" --out "$out/$name" --epochs 0 --head-epochs 1 2>&1 | grep -E "wall|stage cache"
}
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
run glibc-defaults FIRESIGHT_MALLOC_DEFAULTS=1
run glibc-keep-freed-memory X=1
if [ -e "$J" ]; then
  run jemalloc FIRESIGHT_MALLOC_DEFAULTS=1 LD_PRELOAD=$J
  run jemalloc-no-decay FIRESIGHT_MALLOC_DEFAULTS=1 LD_PRELOAD=$J MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1
fi
