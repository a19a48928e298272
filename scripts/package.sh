#!/usr/bin/env bash
# Debian packages of firesight, and the checks a maintainer would run on them:
#   1. cpack in build/: firesight-runtime, firesight (the full tool) and firesight-watch (amd64);
#      scripts/arm64.sh makes the arm64 ones the same way;
#   2. lintian on every package: an error fails; the warnings it accepts are listed with their
#      reasons in packaging/lintian-accepted (scripts/debian.sh: check_debs);
#   3. another CMake project builds against the staged runtime (tests/package/consumer:
#      find_package(firesight), firesight::runtime from C++ and from C) and runs, and Python's
#      ctypes drives the C API;
#   4. the packages installed with apt into a throwaway Debian 12 root (mmdebstrap: nothing from
#      this machine inside but the .deb files), where firesight-run classifies a photo with an
#      engine built here, the firesight program starts, and systemd-analyze verify (that root's
#      systemd) checks firesight-watch.service as installed, with the programs it names.
#   scripts/package.sh           (BUILD_DIR=build; SKIP_INSTALL_TEST=1 skips step 4)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
root=$PWD
step() { printf '\n==> %s\n' "$*"; }
source scripts/debian.sh
start=$(date +%s)

install_missing lintian mmdebstrap
[ -f "$BUILD_DIR/CMakeCache.txt" ] || scripts/setup.sh

step "packages ($BUILD_DIR/packages)"
rm -rf "$BUILD_DIR/packages"
# Debian 12 keeps systemd units in /lib/systemd/system (the default under a prefix is lib/...).
cmake -DFIRESIGHT_SYSTEMD_UNITDIR=/lib/systemd/system "$BUILD_DIR" >/dev/null
(cd "$BUILD_DIR" && cpack -G DEB >/dev/null)
mapfile -t debs < <(ls "$root/$BUILD_DIR"/packages/*.deb)
step "lintian"
check_debs "${debs[@]}"

step "another project builds against the staged runtime (find_package(firesight))"
stage=$root/$BUILD_DIR/package-test
rm -rf "$stage" && mkdir -p "$stage"
for d in "$BUILD_DIR"/packages/firesight-runtime_*.deb; do dpkg-deb -x "$d" "$stage/root"; done
FIRESIGHT_ASSETS=$(scripts/assets.sh | tail -n 1)
python3 scripts/compare-outputs.py make-inputs "$stage" "$FIRESIGHT_ASSETS/imagenet-samples" >/dev/null
"$BUILD_DIR/apps/firesight/firesight" build --model "$FIRESIGHT_ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" \
  --out "$stage/imagenet.fse" >/dev/null
cmake -S tests/package/consumer -B "$stage/consumer" -DCMAKE_PREFIX_PATH="$stage/root/usr" >/dev/null
cmake --build "$stage/consumer" >/dev/null
libdir=$(dirname "$(find "$stage/root" -name 'libfiresight_runtime.so.0' | head -n 1)")
LD_LIBRARY_PATH=$libdir "$stage/consumer/consumer_cpp" "$stage/imagenet.fse"
LD_LIBRARY_PATH=$libdir "$stage/consumer/consumer_c" "$stage/imagenet.fse"
LD_LIBRARY_PATH=$libdir python3 tests/package/consumer/consumer.py "$libdir/libfiresight_runtime.so.0" "$stage/imagenet.fse"

if [ "${SKIP_INSTALL_TEST:-0}" != 1 ]; then
  step "installing the packages into a throwaway Debian 12 root"
  # The hooks run in the new root: apt installs the packages (their dependencies come from
  # Debian), firesight-run classifies a photo, the full tool starts, and systemd, which the root
  # gets for this only (the packages do not need it), verifies the installed unit: any message fails.
  mmdebstrap --quiet --variant=apt --include=systemd \
    --customize-hook="copy-in ${debs[*]} $stage/imagenet.fse $stage/grace_hopper.ppm /tmp" \
    --customize-hook='chroot "$1" sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/*.deb >/dev/null"' \
    --customize-hook='chroot "$1" firesight-run --model /tmp/imagenet.fse /tmp/grace_hopper.ppm' \
    --customize-hook='chroot "$1" sh -c "firesight --help | head -n 1"' \
    --customize-hook='chroot "$1" sh -c "id firesight && ls -ld /var/lib/firesight && test -f /lib/systemd/system/firesight-watch.service && firesight-watch --help | head -n 1"' \
    --customize-hook='out=$(chroot "$1" systemd-analyze verify /lib/systemd/system/firesight-watch.service 2>&1); rc=$?
                      printf "%s\n" "$out"; [ $rc -eq 0 ] && [ -z "$out" ] && echo "systemd-analyze verify firesight-watch.service: ok"' \
    --customize-hook='chroot "$1" dpkg-query -W -f "installed: \${Package} \${Version} \${Architecture}\n" "firesight*"' \
    bookworm /dev/null
fi
printf '\n==> packages checked in %s s\n' $(( $(date +%s) - start ))
