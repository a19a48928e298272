#!/usr/bin/env bash
# optimize_bench: runs `firesight optimize` on the default data (the fire-cair run that
# scripts/run.sh trains), timed by /usr/bin/time -v, then prints the variant table from
# results.json and checks the issue's goals (int8 within 1.0 point and <= 0.5x latency of fp32,
# pruned + clustered + int8 <= 1/8 of fp32's size, the whole run under 10 minutes).
#
# usage: bench/optimize_bench.sh [extra `firesight optimize` options...]
#   BUILD_DIR (build)  RUN_DIR (runs/fire-cair)  OUT (RUN_DIR/optimize-bench)  TARGET (latency)
#   RESUME=1 keeps OUT from an earlier run (optimize resumes; the time is then not the whole run).
#   A missing RUN_DIR is trained first, as scripts/run.sh does (not counted in the optimize time).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RUN_DIR=${RUN_DIR:-runs/fire-cair}
OUT=${OUT:-$RUN_DIR/optimize-bench}
TARGET=${TARGET:-latency}
FS="$BUILD_DIR/apps/firesight/firesight"
VB="$BUILD_DIR/bench/variants_bench"

fail() { printf 'optimize_bench: %s\n' "$*" >&2; exit 1; }
[ -x "$FS" ] || fail "$FS not built (cmake -S . -B $BUILD_DIR -G Ninja && ninja -C $BUILD_DIR)"
[ -x "$VB" ] || fail "$VB not built (ninja -C $BUILD_DIR variants_bench)"
[ -x "$BUILD_DIR/apps/firesight-run/firesight-run" ] || fail "firesight-run not built (ninja -C $BUILD_DIR firesight-run): optimize times variants with it"
[ -x /usr/bin/time ] || fail "/usr/bin/time is missing (apt-get install time)"
"$FS" optimize --help >/dev/null 2>&1 || fail "this firesight has no 'optimize' command"
ASSETS=$(scripts/assets.sh | tail -n 1)
DATA="$ASSETS/fire-cair"
[ -d "$DATA" ] || fail "no fire-cair data at $DATA"

if [ ! -f "$RUN_DIR/model.pt" ]; then
  printf '==> no trained run at %s: training one first (as scripts/run.sh does)\n' "$RUN_DIR"
  "$FS" train --data "$DATA" --out "$RUN_DIR" --backbone "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite"
fi

if [ "${RESUME:-0}" != 1 ] && [ -d "$OUT" ]; then
  printf '==> removing the earlier bench output %s (RESUME=1 keeps it)\n' "$OUT"
  rm -rf -- "$OUT"
fi

printf '\n==> firesight optimize --model %s --data %s --out %s --max-accuracy-drop 1.0 --target %s %s\n' \
  "$RUN_DIR" "$DATA" "$OUT" "$TARGET" "$*"
printf '    (%s cores, %s)\n' "$(nproc)" "$(date -u '+%Y-%m-%d %H:%M UTC')"
mkdir -p "$OUT"
TIME_LOG="$OUT/time.txt"
status=0
/usr/bin/time -v -o "$TIME_LOG" "$FS" optimize --model "$RUN_DIR" --data "$DATA" --out "$OUT" \
  --max-accuracy-drop 1.0 --target "$TARGET" "$@" || status=$?
[ $status = 0 ] || fail "firesight optimize failed (exit $status); /usr/bin/time: $TIME_LOG"

wall=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TIME_LOG")
rss_kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$TIME_LOG")
cpu_pct=$(sed -n 's/^[[:space:]]*Percent of CPU this job got: //p' "$TIME_LOG")
# m:ss(.ss) or h:mm:ss -> seconds
seconds=$(printf '%s\n' "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.0f", s }')

printf '\n==> variants (from %s/results.json, measured with the runtime on the test split)\n' "$OUT"
targets=0
"$VB" --results "$OUT/results.json" --targets || targets=$?
[ $targets = 0 ] || [ $targets = 3 ] || fail "could not read $OUT/results.json"

printf '\n==> the whole optimize run: %s wall (%s s), peak RSS %.0f MB, CPU %s\n' "$wall" "$seconds" \
  "$(awk -v k="$rss_kb" 'BEGIN { print k / 1024 }')" "$cpu_pct"
if [ "$seconds" -le 600 ]; then verdict=PASS; else verdict=MISS; fi
printf '  [%s] under 10 minutes on %s cores (aim: 3 minutes)\n' "$verdict" "$(nproc)"
printf '\nreport: %s/report.html  chosen engine: %s/model.fse\n' "$OUT" "$OUT"
