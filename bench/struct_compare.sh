#!/usr/bin/env bash
# Latency of engine files against a reference engine, 1 thread, batch 1, in interleaved rounds:
# each round runs `firesight-run --bench RUNS` once per engine (fresh process, rotated order), and an
# engine's figure is the median of its round medians, so load from other programs hits all alike.
#   bench/struct_compare.sh [--rounds 7] [--runs 200] [--backend native-int8] REF.fse OTHER.fse...
# Prints each engine's median and its speed-up over REF (REF median / engine median), and the load.
set -euo pipefail
ROUNDS=7 RUNS=200 BACKEND=native-int8
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $# -ge 2 ]] || { echo "usage: $0 [--rounds N] [--runs N] [--backend B] REF.fse OTHER.fse..." >&2; exit 2; }
RUN=${FIRESIGHT_RUN:-build/apps/firesight-run/firesight-run}
engines=("$@")
n=${#engines[@]}
declare -A medians
echo "load before: $(uptime)"
for ((r = 0; r < ROUNDS; ++r)); do
    for ((k = 0; k < n; ++k)); do
        e=${engines[$(((k + r) % n))]}
        m=$("$RUN" --model "$e" --bench "$RUNS" --threads 1 --backend "$BACKEND" --json |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_median_ms"])')
        medians[$e]+="$m "
    done
done
echo "load after:  $(uptime)"
ref=""
for e in "${engines[@]}"; do
    med=$(python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))' ${medians[$e]})
    [[ -z $ref ]] && ref=$med
    python3 -c 'import sys; m,r=float(sys.argv[2]),float(sys.argv[3]); print(f"{sys.argv[1]}: median of {sys.argv[4]} round medians {m:.3f} ms, {r/m:.2f}x the first")' "$e" "$med" "$ref" "$ROUNDS"
done
