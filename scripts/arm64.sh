#!/usr/bin/env bash
# Cross-builds firesight's runtime (FIRESIGHT_RUNTIME_ONLY=ON: engine library, firesight-run, the
# runtime tests) for arm64 and proves it there under qemu-user:
#   1. host packages: crossbuild-essential-arm64 (compiler, arm64 libc) and qemu-user-static;
#   2. build-arm64/sysroot: the arm64 libraries of scripts/arm64-sysroot.txt, fetched with a private
#      apt state (build-arm64/apt: the host's dpkg and apt lists are not touched) and unpacked with
#      dpkg-deb -x. Never install them into the host: libxnnpack-dev/libpthreadpool are not
#      multi-arch co-installable, and apt would remove the amd64 XNNPACK and libtorch to make room;
#   3. build-arm64/run-arm64 PROGRAM ARGS...: runs an arm64 program under qemu with those libraries;
#   4. cross-builds into build-arm64/ (cmake/toolchains/aarch64-linux-gnu.cmake) and runs every
#      runtime test there under qemu (ctest; about 70 s on 2 cores: the whole set, oracles included);
#   5. engines built on x86 (fp32, int8) run on x86 and under qemu on the same inputs: the same
#      bytes for int8, fp32 within 1e-5 (scripts/compare-outputs.py);
#   6. the arm64 Debian package (firesight-runtime) with cpack, checked by lintian.
#   scripts/arm64.sh [CTEST ARGS...]     (BUILD_DIR=build-arm64, HOST_BUILD_DIR=build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-arm64}
HOST_BUILD_DIR=${HOST_BUILD_DIR:-build}
root=$PWD
out=$root/$BUILD_DIR
sysroot=$out/sysroot
start=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
source scripts/debian.sh

step "host packages for cross-building and qemu"
install_missing crossbuild-essential-arm64 qemu-user-static lintian

step "arm64 libraries into $BUILD_DIR/sysroot"
mapfile -t arm_pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/arm64-sysroot.txt | grep -v '^$')
stamp=$sysroot/.packages
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${arm_pkgs[*]}" ]; then
  rm -rf "$sysroot" "$out/apt"
  mkdir -p "$sysroot" "$out/apt/state/lists/partial" "$out/apt/cache/archives/partial" "$out/apt/debs"
  apt_opts=(-q -o Dir::State="$out/apt/state" -o Dir::Cache="$out/apt/cache" -o Dir::State::status=/dev/null
            -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
            -o APT::Sandbox::User="$(id -un)")
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$out/apt/debs" && apt-get "${apt_opts[@]}" download "${arm_pkgs[@]}")
  for deb in "$out"/apt/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  printf '%s' "${arm_pkgs[*]}" > "$stamp"
fi

write_qemu_wrapper "$out/run-arm64" "$BUILD_DIR/sysroot" "$sysroot/usr/lib/aarch64-linux-gnu" scripts/arm64.sh

step "cross-building the runtime for arm64 ($BUILD_DIR/)"
FIRESIGHT_ASSETS=$(scripts/assets.sh | tail -n 1)
export FIRESIGHT_ASSETS
configure_arm64 "$out" "$sysroot"
cmake --build "$out" --parallel "${JOBS:-$(nproc)}"
readelf -h "$out/apps/firesight-run/firesight-run" | grep -q 'Machine:.*AArch64' ||
  { echo "arm64.sh: firesight-run is not an arm64 program" >&2; exit 1; }
built=$(date +%s)

step "runtime tests under qemu-aarch64"
ctest --test-dir "$out" --output-on-failure -j "$(nproc)" --timeout 900 "$@"

step "engines built on x86 run on arm64 with the same answers"
[ -x "$HOST_BUILD_DIR/apps/firesight/firesight" ] || scripts/setup.sh
parity=$out/parity
rm -rf "$parity" && mkdir -p "$parity"
python3 scripts/compare-outputs.py make-inputs "$parity" "$FIRESIGHT_ASSETS/imagenet-samples"
tflite=$FIRESIGHT_ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite
"$HOST_BUILD_DIR/apps/firesight/firesight" build --model "$tflite" --out "$parity/fp32.fse"
"$HOST_BUILD_DIR/apps/firesight/firesight" build --model "$tflite" --out "$parity/int8.fse" \
  --calibrate "$FIRESIGHT_ASSETS/imagenet-samples"
for engine in int8 fp32; do
  backends=(reference xnnpack)
  [ $engine = int8 ] && backends+=(native-int8)
  for backend in "${backends[@]}"; do
    for arch in x86 arm64; do
      run=("$HOST_BUILD_DIR/apps/firesight-run/firesight-run")
      [ $arch = arm64 ] && run=("$out/run-arm64" "$out/apps/firesight-run/firesight-run")
      "${run[@]}" --model "$parity/$engine.fse" --backend $backend --json "$parity"/*.ppm > "$parity/$engine-$backend-$arch.jsonl"
    done
    python3 scripts/compare-outputs.py compare "$parity/$engine-$backend-x86.jsonl" "$parity/$engine-$backend-arm64.jsonl" \
      --exact-if-int8 "$engine"
  done
done
step "arm64 packages ($BUILD_DIR/packages) and lintian"
rm -rf "$out/packages"
(cd "$out" && cpack -G DEB >/dev/null)
check_debs "$out"/packages/*.deb
printf '\n==> arm64: build %s s, tests, parity and packages %s s\n' $((built - start)) $(( $(date +%s) - built ))
