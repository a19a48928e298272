#!/usr/bin/env bash
# train_rss_scaling: peak RSS of `firesight train` against the size of the data set. Builds data
# sets of N images (default 1000 3000 10000) by repeating the fire-smoke photos as symbolic links
# (fire / smoke / neutral in fire-smoke's proportions), trains each with build/bench/train_bench
# under the same memory budget, and prints N, the stage times and the peak RSS after each stage.
# The repeated photos make the cache and every epoch N images long; what the model learns from
# them is not the point.
#
# usage: bench/train_rss_scaling.sh [train_bench options, e.g. --epochs 1 --head-epochs 5]
#   BUILD_DIR (build)  SIZES ("1000 3000 10000")  WORK (runs/rss-scaling)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
SIZES=${SIZES:-1000 3000 10000}
WORK=${WORK:-runs/rss-scaling}
TB="$BUILD_DIR/bench/train_bench"
[ -x "$TB" ] || { echo "train_rss_scaling: $TB not built (ninja -C $BUILD_DIR train_bench)" >&2; exit 1; }
ASSETS=$(scripts/assets.sh | tail -n 1)
SRC=$(cd "$ASSETS/fire-smoke" && pwd)
total=$(find "$SRC" -mindepth 2 -maxdepth 2 -type f | wc -l)
for n in $SIZES; do
    data="$WORK/data-$n"
    rm -rf "$data"
    for cls in "$SRC"/*/; do
        cls=$(basename "$cls")
        mkdir -p "$data/$cls"
        mapfile -t files < <(find "$SRC/$cls" -maxdepth 1 -type f | sort)
        want=$(( n * ${#files[@]} / total ))
        for ((i = 0; i < want; i++)); do
            f=${files[i % ${#files[@]}]}
            ln -s "$f" "$data/$cls/r$((i / ${#files[@]}))-$(basename "$f")"
        done
    done
    printf '\n==> %d images (%s), load %s\n' "$(find "$data" -type l | wc -l)" "$data" "$(cut -d' ' -f1-3 /proc/loadavg)"
    "$TB" "$data" --out "$WORK/run-$n" "$@" | grep -E '^stage|^peak|^wall|^data'
    rm -rf "$WORK/run-$n"
done
