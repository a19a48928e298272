#!/usr/bin/env bash
# Which BLAS makes libtorch fastest on this machine. For each BLAS that Debian installed
# (openblas-pthread, openblas-openmp, the reference blas), times training (build/bench/train_bench:
# images/s of the cache and fine-tuning stages) and libtorch inference (the "libtorch eager" row
# of firesight bench), with the thread counts firesight sets. The BLAS is chosen per process with
# LD_LIBRARY_PATH, so the system's alternatives are not touched; each process prints the BLAS it
# really loaded. Install the candidates first: apt-get install libopenblas0-pthread libopenblas0-openmp
#   bench/blas_compare.sh [DATA=fire-cair assets] [FINETUNE_EPOCHS=1] [ROUNDS=1]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ASSETS=$(scripts/assets.sh 2>/dev/null | tail -n 1)
DATA=${1:-$ASSETS/fire-cair}
EPOCHS=${2:-1}
ROUNDS=${3:-1}
multiarch=$(gcc -print-multiarch)
model=$ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for v in ${BLAS_VARIANTS:-openblas-pthread openblas-openmp blas}; do
    dir=/usr/lib/$multiarch/$v
    if [ ! -e "$dir/libblas.so.3" ]; then echo "== $v: not installed, skipped"; continue; fi
    echo "== round $round: $v (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    LD_LIBRARY_PATH=$dir "$BUILD_DIR/bench/train_bench" "$DATA" --out "$out/run-$v" --epochs "$EPOCHS" 2>&1 |
      grep -E "^BLAS|^stage|^wall|^test|^peak" || true
    LD_LIBRARY_PATH=$dir "$BUILD_DIR/apps/firesight/firesight" bench --model "$model" --runs 30 --reference-runs 1 2>&1 |
      grep -E "^BLAS|libtorch" || true
  done
done
