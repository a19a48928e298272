#!/usr/bin/env bash
# The main job: set up and build, find the assets, then teach MobileNetV2 (imported from the
# TFLite asset) to tell fire from neutral on fire-cair, evaluate it on the held-out split,
# write the report, compress it (firesight optimize: pruned, clustered and int8 variants measured
# with the runtime), and classify a few photos. Re-running trains again into the same run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RUN_DIR=${RUN_DIR:-runs/fire-cair}
scripts/setup.sh
ASSETS=$(scripts/assets.sh | tail -n 1)
FS="$BUILD_DIR/apps/firesight/firesight"

printf '\n==> ImageNet check: the imported MobileNetV2 on the sample photos\n'
"$FS" predict --model "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" --top 3 "$ASSETS"/imagenet-samples/*.{bmp,jpg}

printf '\n==> training fire / neutral on %s (frozen backbone, then fine-tuning)\n' "$ASSETS/fire-cair"
"$FS" train --data "$ASSETS/fire-cair" --out "$RUN_DIR" \
  --backbone "$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" "$@"

printf '\n==> evaluating on the held-out test split\n'
"$FS" eval --model "$RUN_DIR" --data "$ASSETS/fire-cair" --split test --out "$RUN_DIR/eval"

printf '\n==> compressing: pruned / clustered / int8 variants, each measured with the runtime\n'
"$FS" optimize --model "$RUN_DIR" --data "$ASSETS/fire-cair" --out "$RUN_DIR/optimized" --max-accuracy-drop 1.0

printf '\n==> the chosen engine on a photo, with the runtime alone\n'
"$FS" predict --model "$RUN_DIR/optimized/model.fse" "$ASSETS/fire-cair/fire/wildfire.jpg"

printf '\n==> predict on a few photos\n'
"$FS" predict --model "$RUN_DIR" "$ASSETS/fire-cair/fire/wildfire.jpg" "$ASSETS/fire-cair/fire/Fire-in-a-room.jpg" \
  "$ASSETS/fire-cair/neutral/08-Great Room.jpg" "$ASSETS/imagenet-samples/parrot.jpg"

printf '\n==> done. Reports: %s/report.html (training), %s/optimized/report.html (variants)\n' "$RUN_DIR" "$RUN_DIR"
