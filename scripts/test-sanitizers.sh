#!/usr/bin/env bash
# The runtime (FIRESIGHT_RUNTIME_ONLY=ON: engine, importer, firesight-run and their tests) built a
# second time with AddressSanitizer and UndefinedBehaviorSanitizer, and its tests run there. Any
# report stops the program and fails its test. Used by CI (.ci/run) after scripts/test.sh.
#   scripts/test-sanitizers.sh [CTEST ARGS...]      (BUILD_DIR=build-asan by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
start=$(date +%s)
FIRESIGHT_ASSETS=$(scripts/assets.sh | tail -n 1)
export FIRESIGHT_ASSETS
# The runtime alone: FIRESIGHT_WATCHER=OFF keeps the watcher service (OpenCV, SQLite, MQTT) out.
opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIRESIGHT_RUNTIME_ONLY=ON -DFIRESIGHT_SANITIZE=ON -DFIRESIGHT_WATCHER=OFF)
command -v ninja >/dev/null && opts+=(-G Ninja)
command -v ccache >/dev/null && opts+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
printf '\n==> configuring and building the sanitizer runtime (%s/)\n' "$BUILD_DIR"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${opts[@]}" >/dev/null
else
  cmake "$BUILD_DIR" -DFIRESIGHT_WATCHER=OFF >/dev/null  # picks up a moved assets folder
fi
cmake --build "$BUILD_DIR" --parallel "${JOBS:-$(nproc)}"
built=$(date +%s)
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
printf '\n==> running the runtime tests under ASan + UBSan (ctest, %s jobs)\n' "$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
end=$(date +%s)
printf '\n==> sanitizer tests passed: build %s s, tests %s s\n' $((built - start)) $((end - built))
