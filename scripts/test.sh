#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing and builds (scripts/setup.sh), finds the
# assets, then runs every test through ctest. Used by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
start=$(date +%s)
scripts/setup.sh
FIRESIGHT_ASSETS=$(scripts/assets.sh | tail -n 1)
export FIRESIGHT_ASSETS
# The test binaries were configured with the assets path; reconfigure if it moved.
cmake "$BUILD_DIR" >/dev/null
printf '\n==> running the tests (ctest, %s jobs)\n' "$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
printf '\n==> all tests passed in %s s (build included)\n' $(( $(date +%s) - start ))
