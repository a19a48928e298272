#!/usr/bin/env bash
# main_job_times: the main job's stages (scripts/run.sh after the set-up: ImageNet check, train,
# eval, optimize, predict), each timed by /usr/bin/time -v, then one table of wall seconds and peak
# RSS per stage, the training run's own stage times (cache / head / fine-tune, from its output),
# the test split's balanced accuracy, and the load average before and after (2 shared cores make
# every figure noisy: compare within one sitting).
#
# usage: bench/main_job_times.sh [extra `firesight train` options...]
#   BUILD_DIR (build)  RUN_DIR (runs/main-job-times)  DATA_ROOTS ("fire-smoke hard-negatives",
#   folders under the assets)  STAGES ("check train eval optimize predict": a subset skips the others;
#   eval, optimize and predict need a trained RUN_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RUN_DIR=${RUN_DIR:-runs/main-job-times}
DATA_ROOTS=${DATA_ROOTS:-fire-smoke hard-negatives}
STAGES=${STAGES:-check train eval optimize predict}
FS="$BUILD_DIR/apps/firesight/firesight"
fail() { printf 'main_job_times: %s\n' "$*" >&2; exit 1; }
[ -x "$FS" ] || fail "$FS not built"
[ -x /usr/bin/time ] || fail "/usr/bin/time is missing (apt-get install time)"
ASSETS=$(scripts/assets.sh | tail -n 1)
DATA=()
for r in $DATA_ROOTS; do DATA+=(--data "$ASSETS/$r"); done
LOG="$RUN_DIR.times"
mkdir -p "$LOG"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
stage() {  # stage NAME COMMAND...: runs it, keeps its output in $LOG/NAME.log
    local name=$1
    shift
    printf '==> %s\n' "$name" >&2
    /usr/bin/time -v -o "$LOG/$name.time" "$@" >"$LOG/$name.log" 2>&1 || { tail -20 "$LOG/$name.log" >&2; fail "$name failed (log: $LOG/$name.log)"; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.1f", s}' "$LOG/$name.time")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$LOG/$name.time")
    rows+=("$(printf '%-10s %8s s %8s MB' "$name" "$wall" "$rss")")
    total=$(awk -v a="${total:-0}" -v b="$wall" 'BEGIN {printf "%.1f", a + b}')
}
for s in $STAGES; do
    case $s in
        check) stage check "$FS" predict --model "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" --top 3 "$ASSETS"/imagenet-samples/*.{bmp,jpg} ;;
        train) stage train "$FS" train --no-progress "${DATA[@]}" --out "$RUN_DIR" --backbone "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" "$@" ;;
        eval) stage eval "$FS" eval --no-progress --model "$RUN_DIR" "${DATA[@]}" --split test --out "$RUN_DIR/eval" ;;
        optimize) stage optimize "$FS" optimize --quiet --model "$RUN_DIR" "${DATA[@]}" --out "$RUN_DIR/optimized" --max-accuracy-drop 1.0 ;;
        predict) stage predict "$FS" predict --model "$RUN_DIR/optimized/model.fse" --top 3 "$ASSETS/fire-smoke/smoke/smoke-image_100.jpg" "$ASSETS/hard-negatives/neutral/sunrise100.jpg" ;;
        *) fail "unknown stage $s" ;;
    esac
done
printf '\nmain job on %s (%s cores), load before %s, after %s\n' "$DATA_ROOTS" "$(nproc)" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${rows[@]}"
printf '%-10s %8s s\n' total "$total"
if [ -f "$LOG/train.log" ]; then
    printf '\ntraining stages (firesight train):\n'
    grep -E '^stage |^peak RSS|balanced accuracy|^BLAS' "$LOG/train.log" || true
fi
if [ -f "$RUN_DIR/eval/eval.json" ]; then
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("eval: test balanced accuracy %.1f%%, accuracy %.1f%%" % (100*j["balanced_accuracy"], 100*j["accuracy"]))' "$RUN_DIR/eval/eval.json" 2>/dev/null || true
fi
