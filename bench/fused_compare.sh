#!/usr/bin/env bash
# Whole MobileNetV2 fp32, the xnnpack backend against xnnpack-fused (its large inverted-residual
# blocks fused: docs/fused-blocks.md) and, given ONNX (the engine's ONNX export, `firesight export`)
# and onnxruntime-node under ORT (as bench/peers.sh installs it), ONNX Runtime on the same model, in
# interleaved rounds, each a fresh process, so load from other work lands on all alike.
#
#   bench/fused_compare.sh [ENGINE.fse]     # ROUNDS=10 RUNS=100 THREADS="1 2" ONNX= ORT=build/ort-node
#
# Without ENGINE it makes the fp32 engine as int8_bench does (OUT/mnv2-fp32.fse, OUT default
# build/fused). Prints, per backend and thread count, the median of the round medians, the lowest
# and highest round median and the lowest single run, with `uptime` before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/fused}
ROUNDS=${ROUNDS:-10}
RUNS=${RUNS:-100}
THREADS=${THREADS:-"1 2"}
RUN=${FIRESIGHT_RUN:-$BUILD/apps/firesight-run/firesight-run}
ONNX=${ONNX:-}
ORT=${ORT:-$BUILD/ort-node}
mkdir -p "$OUT"
engine=${1:-$OUT/mnv2-fp32.fse}
if [ ! -f "$engine" ]; then
    "$BUILD/bench/int8_bench" ../shared/assets/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite \
        ../shared/assets/imagenet-samples 5 1 "$OUT/mnv2" >/dev/null
    engine=$OUT/mnv2-fp32.fse
fi
if [ -n "$ONNX" ]; then  # ONNX Runtime's input: NCHW float32, the same pattern firesight-run --bench feeds (NHWC)
    node -e 'const s=224,a=new Float32Array(3*s*s);for(let i=0;i<s*s*3;++i){const c=i%3,p=(i-c)/3;a[c*s*s+p]=Math.sin(0.37*(i%1009));}
             require("fs").writeFileSync(process.argv[1],Buffer.from(a.buffer))' "$OUT/ort-input.f32"
fi
echo "before: $(uptime)"
: >"$OUT/fused_compare.jsonl"
for round in $(seq "$ROUNDS"); do
    for t in $THREADS; do
        for backend in xnnpack xnnpack-fused; do
            "$RUN" -m "$engine" --backend "$backend" --threads "$t" --bench "$RUNS" --json 2>/dev/null >>"$OUT/fused_compare.jsonl"
        done
        if [ -n "$ONNX" ]; then
            NODE_PATH="$ORT/node_modules" node bench/peers/ort_bench.js time "$ONNX" "$t" "$OUT/ort-input.f32" "$RUNS" $((RUNS / 10)) |
                python3 -c 'import json,statistics,sys; r=json.load(sys.stdin); s=r["samples"]
print(json.dumps({"backend":"onnxruntime","threads":int(sys.argv[1]),"runs":len(s),"latency_median_ms":statistics.median(s),"latency_min_ms":min(s)}))' "$t" \
                >>"$OUT/fused_compare.jsonl"
        fi
    done
done
echo "after:  $(uptime)"
python3 - "$OUT/fused_compare.jsonl" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["threads"], r["backend"]), []).append(r)
print("| backend | threads | median of round medians ms | round medians ms | min ms | rounds x runs |")
print("| --- | --- | --- | --- | --- | --- |")
for (t, b), rs in sorted(rows.items()):
    med = [r["latency_median_ms"] for r in rs]
    print(f"| {b} | {t} | {statistics.median(med):.2f} | {min(med):.2f}-{max(med):.2f} | "
          f"{min(r['latency_min_ms'] for r in rs):.2f} | {len(rs)} x {rs[0]['runs']} |")
PY
