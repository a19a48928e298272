#!/usr/bin/env bash
# The main job: set up and build, find the assets, then teach MobileNetV2 (imported from the
# TFLite asset) fire / smoke / neutral on fire-smoke, with the hard negatives (sunsets, fog,
# clouds, night lights) as a second data root; evaluate it on the held-out split (per source, and
# on copies degraded to thumbnail quality), write the report, compress it (firesight optimize:
# pruned, clustered and int8 variants measured with the runtime), and classify a few photos.
# Re-running trains again into the same run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RUN_DIR=${RUN_DIR:-runs/fire-smoke}
scripts/setup.sh
ASSETS=$(scripts/assets.sh | tail -n 1)
FS="$BUILD_DIR/apps/firesight/firesight"

# Wall seconds of each stage after the set-up, printed at the end: the main job's time with the
# install and build excluded (issue 14 asks for it under 10 minutes on a fresh machine).
times=()
job_start=$SECONDS
timed() {  # timed NAME COMMAND...
  local name=$1 t0=$SECONDS
  shift
  "$@"
  times+=("$name $((SECONDS - t0)) s")
}

printf '\n==> ImageNet check: the imported MobileNetV2 on the sample photos\n'
timed check "$FS" predict --model "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" --top 3 "$ASSETS"/imagenet-samples/*.{bmp,jpg}

DATA=(--data "$ASSETS/fire-smoke" --data "$ASSETS/hard-negatives")
printf '\n==> training fire / smoke / neutral on %s + %s (frozen backbone, then fine-tuning)\n' "$ASSETS/fire-smoke" "$ASSETS/hard-negatives"
timed train "$FS" train "${DATA[@]}" --out "$RUN_DIR" \
  --backbone "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" "$@"

printf '\n==> evaluating on the held-out test split (per source, and as thumbnails)\n'
timed eval "$FS" eval --model "$RUN_DIR" "${DATA[@]}" --split test --out "$RUN_DIR/eval"

printf '\n==> compressing: pruned / clustered / int8 variants, each measured with the runtime\n'
timed optimize "$FS" optimize --model "$RUN_DIR" "${DATA[@]}" --out "$RUN_DIR/optimized" --max-accuracy-drop 1.0

PHOTOS=("$ASSETS/fire-cair/fire/wildfire.jpg" "$ASSETS/fire-smoke/smoke/smoke-image_100.jpg"
        "$ASSETS/hard-negatives/neutral/sunrise100.jpg" "$ASSETS/fire-cair/neutral/08-Great Room.jpg")
printf '\n==> the chosen engine on a few photos, with the runtime alone\n'
timed predict-engine "$FS" predict --model "$RUN_DIR/optimized/model.fse" --top 3 "${PHOTOS[@]}"

printf '\n==> the libtorch model on the same photos and one ImageNet photo\n'
timed predict-libtorch "$FS" predict --model "$RUN_DIR" --top 3 "${PHOTOS[@]}" "$ASSETS/imagenet-samples/parrot.jpg"

joined=$(printf '%s, ' "${times[@]}")
printf '\n==> stage wall times: %s; the main job (set-up excluded) %s s\n' "${joined%, }" $((SECONDS - job_start))
printf '\n==> done. Reports: %s/report.html (training), %s/optimized/report.html (variants)\n' "$RUN_DIR" "$RUN_DIR"
