#!/usr/bin/env bash
# The peers side by side in one sitting (issue 14, section 3): firesight's fp32 and int8 engines
# (XNNPACK and native-int8 backends), libtorch eager, OpenCV DNN and ONNX Runtime (npm
# onnxruntime-node) on firesight's own ONNX exports (fp32, and the int8 engine as QDQ), each at 1
# and 2 threads, in interleaved rounds, with the compute floor; then ONNX Runtime's classes against
# the engine's on the sample photos and on fire-smoke photos.
#
#   bench/peers.sh                      # RUNS=100 ROUNDS=5 PHOTOS_PER_CLASS=20 by default
#   RUNS=200 ROUNDS=8 bench/peers.sh
#
# Writes OUT (default build/peers): peers.json (firesight bench --json), peers.md (the table),
# uptime.txt (load before and after), ort-profile.txt (ONNX Runtime's kernel time per operator type
# on each export), the engines and their ONNX exports. onnxruntime-node is installed there once with
# `npm install --ignore-scripts` (its CPU binaries are in the package; nothing is committed).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ASSETS=${ASSETS:-../shared/assets}
MODEL=${MODEL:-$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite}
OUT=${OUT:-$BUILD/peers}
RUNS=${RUNS:-100}
ROUNDS=${ROUNDS:-5}
PHOTOS_PER_CLASS=${PHOTOS_PER_CLASS:-20}
ORT_VERSION=${ORT_VERSION:-1.30.0}
mkdir -p "$OUT"

nice -n 10 cmake --build "$BUILD" -j2 --target firesight int8_bench >/dev/null
if [ ! -d "$BUILD/ort-node/node_modules/onnxruntime-node" ]; then
    npm install --ignore-scripts --no-audit --no-fund --prefix "$BUILD/ort-node" "onnxruntime-node@$ORT_VERSION"
fi

# The int8 engine: min-max calibration on the sample photos, as int8_bench makes it (it saves the
# fp32 and int8 engines it measured).
if [ ! -f "$OUT/mobilenet_v2-int8.fse" ]; then
    "$BUILD/bench/int8_bench" "$MODEL" "$ASSETS/imagenet-samples" 5 1 "$OUT/mobilenet_v2" >"$OUT/int8_bench.txt"
fi
# The exports themselves, kept for other runtimes (TensorRT takes the fp32 one; its int8 needs
# zero zero-points, which firesight's activations do not have: docs/peers.md).
"$BUILD/apps/firesight/firesight" export --model "$OUT/mobilenet_v2-fp32.fse" --onnx "$OUT/mobilenet_v2-fp32.onnx"
"$BUILD/apps/firesight/firesight" export --model "$OUT/mobilenet_v2-int8.fse" --onnx "$OUT/mobilenet_v2-int8.onnx"
"$BUILD/apps/firesight/firesight" export --model "$OUT/mobilenet_v2-int8.fse" --onnx "$OUT/mobilenet_v2-int8-u8.onnx" --uint8-activations

photos=(--photos "$ASSETS/imagenet-samples")
for class in fire smoke neutral; do
    while IFS= read -r f; do photos+=(--photos "$f"); done < <(find "$ASSETS/fire-smoke/$class" -type f | sort | head -n "$PHOTOS_PER_CLASS")
done

{ echo "before: $(uptime)"; } >"$OUT/uptime.txt"
"$BUILD/apps/firesight/firesight" bench --peers --model "$MODEL" --int8 "$OUT/mobilenet_v2-int8.fse" --ort "$BUILD/ort-node" \
    --runs "$RUNS" --rounds "$ROUNDS" "${photos[@]}" --json >"$OUT/peers.json"
{ echo "after:  $(uptime)"; } >>"$OUT/uptime.txt"
cat "$OUT/uptime.txt"

# What ONNX Runtime made of each export: kernel time per operator type (its own profiler, 1 thread).
node -e 'const n=3*224*224,a=new Float32Array(n);for(let i=0;i<n;++i)a[i]=Math.sin(i)*0.9;require("fs").writeFileSync(process.argv[1],Buffer.from(a.buffer))' "$OUT/profile-input.f32"
for m in fp32 int8 int8-u8; do
    echo "$m: $(NODE_PATH="$BUILD/ort-node/node_modules" node bench/peers/ort_bench.js profile "$OUT/mobilenet_v2-$m.onnx" 1 "$OUT/profile-input.f32" 50)"
done >"$OUT/ort-profile.txt"
cat "$OUT/ort-profile.txt"

# The table (node is there anyway for onnxruntime).
node - "$OUT/peers.json" >"$OUT/peers.md" <<'JS'
const r = require(require('path').resolve(process.argv[2]));
const rows = ['| runtime | precision | threads | median ms | round medians ms | p90 ms | share of compute floor | load ms | peak RSS MB |',
              '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
for (const x of r.runtimes) {
  if (x.error) { rows.push(`| ${x.runtime} | ${x.precision} | ${x.threads} | error: ${x.error} | | | | | |`); continue; }
  const m = x.round_medians_ms;
  rows.push(`| ${x.runtime}${x.note ? ' (' + x.note + ')' : ''} | ${x.precision} | ${x.threads} | ${x.median_ms.toFixed(2)} | ` +
            `${Math.min(...m).toFixed(2)}–${Math.max(...m).toFixed(2)} | ${x.p90_ms.toFixed(2)} | ${(100 * x.floor_share).toFixed(0)}% | ` +
            `${x.load_ms.toFixed(0)} | ${x.peak_rss_mb.toFixed(0)} |`);
}
for (const f of r.compute_floors) rows.push(`| compute floor | fp32 / int8 | ${f.threads} | ${f.fp32_ms.toFixed(2)} / ${f.int8_ms.toFixed(2)} | | | | | |`);
rows.push('', `${(r.macs / 1e6).toFixed(1)} M MACs; floor: ${r.floor_assumes}; ${r.rounds} interleaved rounds.`);
for (const c of r.class_check || [])
  rows.push(`class check ${c.precision} (${c.onnx}): ONNX Runtime on the export vs the engine (${c.engine_backend}): same top-1 on ${c.same_top1} of ${c.photos} photos, max |prob diff| ${c.max_abs_prob_diff.toFixed(4)}`);
console.log(rows.join('\n'));
JS
cat "$OUT/peers.md"
