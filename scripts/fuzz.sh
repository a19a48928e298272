#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + coverage, in build-fuzz/) and runs each one for
# SECONDS_EACH seconds, one after the other: the .tflite importer, the engine loader, the weight
# codec, the image decoder and the watcher's TOML config. Prints executions and the outcome per
# target; exits 1 if any target found a crash (its input is kept under build-fuzz/fuzz-artifacts/).
#   scripts/fuzz.sh [SECONDS_EACH=600]
# FUZZ_RUNTIME_ONLY=ON builds only the runtime's three targets (no OpenCV/toml11/libtorch needed;
# otherwise the whole tree is configured, but only the fuzz targets and their libraries are built).
# The corpora in build-fuzz/fuzz-corpus/ grow from run to run. docs/fuzzing.md has the results.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS_EACH must be a positive integer, got '$secs'" >&2; exit 2; }
BUILD_DIR=${BUILD_DIR:-build-fuzz}
runtime_only=${FUZZ_RUNTIME_ONLY:-OFF}
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIRESIGHT_FUZZ=ON -DFIRESIGHT_RUNTIME_ONLY="$runtime_only")
command -v ninja >/dev/null && opts+=(-G Ninja)
command -v ccache >/dev/null && opts+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
printf '==> configuring %s/ with clang\n' "$BUILD_DIR"
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" "${opts[@]}" >/dev/null

fuzzers=(fuzz_tflite_import fuzz_engine_loader fuzz_weight_codec)
[ "$runtime_only" = ON ] || fuzzers+=(fuzz_image_decode fuzz_watch_config)
printf '==> building %s\n' "${fuzzers[*]}"
cmake --build "$BUILD_DIR" --parallel "${JOBS:-2}" --target fuzz_write_seeds "${fuzzers[@]}"

dir=$BUILD_DIR/tests/fuzz
"$dir/fuzz_write_seeds" "$dir/seeds/engine" "$dir/seeds/tflite" "$dir/seeds/codec" "$dir/seeds/image"
declare -A seeds=([fuzz_tflite_import]=$dir/seeds/tflite [fuzz_engine_loader]=$dir/seeds/engine
                  [fuzz_weight_codec]=$dir/seeds/codec [fuzz_image_decode]=$dir/seeds/image
                  [fuzz_watch_config]=tests/fuzz/seeds/watch_config)
# OpenCV reserves a whole image (up to 2^30 pixels) before decoding it: allow that reservation,
# while -rss_limit_mb still bounds the memory really used (tests/fuzz/fuzz_image_decode.cpp).
declare -A extra=([fuzz_image_decode]=-malloc_limit_mb=4096)
failed=0
summary=()
for t in "${fuzzers[@]}"; do
  corpus=$BUILD_DIR/fuzz-corpus/$t artifacts=$BUILD_DIR/fuzz-artifacts/$t log=$BUILD_DIR/fuzz-$t.log
  mkdir -p "$corpus" "$artifacts"
  printf '==> %s for %s s (log: %s)\n' "$t" "$secs" "$log"
  # New inputs go to the first folder (the build's corpus), never to the committed seeds.
  rc=0
  "$dir/$t" "$corpus" "${seeds[$t]}" -max_total_time="$secs" -rss_limit_mb=2048 ${extra[$t]:-} -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
  if [ "$rc" = 0 ]; then
    outcome="no crash"
  else
    outcome="FOUND A CRASH (exit $rc): $(ls "$artifacts" | head -n 1)"
    failed=1
  fi
  summary+=("$(printf '%-20s %10s executions  %-10s corpus %5s files  %s' "$t" "${execs:-?}" "${cov:-}" "$(ls "$corpus" | wc -l)" "$outcome")")
done
printf '\n==> fuzzing summary (%s s each)\n' "$secs"
printf '%s\n' "${summary[@]}"
exit $failed
