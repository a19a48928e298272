#!/usr/bin/env bash
# Cross-builds firesight-watch (the watcher service: runtime + watcher + OpenCV, no libtorch) for
# arm64 and proves it there under qemu. Not run by CI: OpenCV's arm64 dependency closure is large
# (the script prints its size; docs/arm64.md). scripts/arm64.sh does the runtime alone.
#   1. host packages: crossbuild-essential-arm64, qemu-user-static, lintian, and mosquitto (the
#      MQTT tests start a broker; it runs natively on the host, the watcher under qemu talks to it);
#   2. $BUILD_DIR/sysroot: the packages of scripts/arm64-sysroot.txt and scripts/arm64-watch-sysroot.txt
#      and everything they depend on (apt-get install --download-only as arm64, under a private apt
#      state as in arm64.sh: the host's dpkg and apt lists are not touched, nothing is installed),
#      unpacked with dpkg-deb -x. Left out: what the cross toolchain has its own copy of (libc6,
#      libstdc++6, ...: the host's *-arm64-cross packages). Then what dpkg and the maintainer scripts
#      would do on a board: /lib merged into /usr/lib, absolute symlinks pointed inside the sysroot,
#      the BLAS and LAPACK alternatives;
#   3. $BUILD_DIR/run-arm64 PROGRAM ARGS...: runs an arm64 program under qemu with those libraries;
#   4. cross-builds FIRESIGHT_RUNTIME_ONLY=ON FIRESIGHT_WATCHER=ON into $BUILD_DIR (firesight-watch and
#      the watcher's tests only; the runtime's tests are arm64.sh's) and runs the watcher's tests
#      under qemu (ctest -L watch: decisions, pipeline, store, MQTT against a real broker, dashboard
#      with chromium, the service with signals, the packaging files);
#   5. firesight-watch --help, then a real watch run under qemu: an engine built on x86 by
#      $HOST_BUILD_DIR's firesight from the ImageNet MobileNetV2, a generated image folder (frames 0-9:
#      photos of a cat and a dragonfly, the chickadee on frames 3-6), "chickadee" as the alarm
#      class; the event log it writes (events.db) must hold suspected, alarm (on a chickadee frame,
#      with its snapshot) and cleared (after the chickadee), nothing else;
#   6. the arm64 firesight-watch package (cpack), checked by lintian; its Depends are stated by hand
#      (cmake/FiresightPackaging.cmake: dpkg-shlibdeps cannot look arm64 libraries up here), so they
#      are checked against the program: the package of every library firesight-watch needs
#      (readelf NEEDED, found among the arm64 packages downloaded), no other, each at a version
#      the downloaded arm64 package satisfies.
#   scripts/arm64-watch.sh [CTEST ARGS...]     (BUILD_DIR=build-arm64-watch, HOST_BUILD_DIR=build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-arm64-watch}
HOST_BUILD_DIR=${HOST_BUILD_DIR:-build}
root=$PWD
out=$root/$BUILD_DIR
sysroot=$out/sysroot
libdir=$sysroot/usr/lib/aarch64-linux-gnu
start=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
source scripts/debian.sh

step "host packages for cross-building, qemu and the MQTT tests"
install_missing crossbuild-essential-arm64 qemu-user-static lintian mosquitto

step "arm64 libraries with their dependencies into $BUILD_DIR/sysroot"
mapfile -t arm_pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/arm64-sysroot.txt scripts/arm64-watch-sysroot.txt | grep -v '^$')
stamp=$sysroot/.packages
# Every downloaded package's shared libraries: "package version file-name" (step 6 reads it).
index=$out/apt/libraries.txt
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${arm_pkgs[*]}" ]; then
  rm -rf "$sysroot" "$out/apt"
  mkdir -p "$sysroot" "$out/apt/state/lists/partial" "$out/apt/cache/archives/partial"
  apt_opts=(-q -o Dir::State="$out/apt/state" -o Dir::Cache="$out/apt/cache" -o Dir::State::status=/dev/null
            -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
            -o APT::Sandbox::User="$(id -un)")
  apt-get "${apt_opts[@]}" update >/dev/null
  # With an empty status file apt sees nothing installed: it downloads the whole closure.
  apt-get "${apt_opts[@]}" install -y --download-only --no-install-recommends "${arm_pkgs[@]}" >/dev/null
  : > "$index"
  skipped=()
  for deb in "$out"/apt/cache/archives/*.deb; do
    pkg=$(dpkg-deb -f "$deb" Package) ver=$(dpkg-deb -f "$deb" Version)
    dpkg-deb -c "$deb" | awk -v p="$pkg" -v v="$ver" '$1 !~ /^d/ && $6 ~ /\.so(\.|$)/ { n = split($6, a, "/"); print p, v, a[n] }' >> "$index"
    if dpkg-query -W -f='${Status}' "$pkg-arm64-cross" 2>/dev/null | grep -q 'install ok installed'; then
      skipped+=("$pkg")
      continue
    fi
    dpkg-deb -x "$deb" "$sysroot"
  done
  echo "$(ls "$out"/apt/cache/archives/*.deb | wc -l) packages downloaded; not unpacked (the cross toolchain's own): ${skipped[*]}"
  # Debian 12 has a merged /usr: what a package puts in /lib is in /usr/lib.
  for d in lib bin sbin; do
    if [ -d "$sysroot/$d" ] && [ ! -L "$sysroot/$d" ]; then
      mkdir -p "$sysroot/usr/$d" && cp -a "$sysroot/$d/." "$sysroot/usr/$d/" && rm -rf "${sysroot:?}/$d"
      ln -s "usr/$d" "$sysroot/$d"
    fi
  done
  # Absolute symlinks (libz.so -> /lib/aarch64-linux-gnu/libz.so.1.2.13) would point into the host.
  find "$sysroot" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    ln -sfn "$(realpath -s -m --relative-to="$(dirname "$link")" "$sysroot$(readlink "$link")")" "$link"
  done
  # update-alternatives in libblas3's and liblapack3's postinst: libblas.so.3 -> blas/libblas.so.3.
  for alt in blas lapack; do
    for f in "$libdir/$alt"/lib*.so*; do
      if [ -e "$f" ] && [ ! -e "$libdir/${f##*/}" ]; then ln -s "$alt/${f##*/}" "$libdir/${f##*/}"; fi
    done
  done
  printf '%s' "${arm_pkgs[*]}" > "$stamp"
fi
echo "sysroot: $(ls "$out"/apt/cache/archives/*.deb | wc -l) arm64 packages, $(du -sm "$out/apt/cache/archives" | cut -f1) MiB" \
     "downloaded, $(du -sm "$sysroot" | cut -f1) MiB unpacked"

write_qemu_wrapper "$out/run-arm64" "$BUILD_DIR/sysroot" "$libdir:$sysroot/usr/lib" scripts/arm64-watch.sh

step "cross-building firesight-watch for arm64 ($BUILD_DIR/)"
FIRESIGHT_ASSETS=$(scripts/assets.sh | tail -n 1)
export FIRESIGHT_ASSETS
configure_arm64 "$out" "$sysroot" -DFIRESIGHT_WATCHER=ON -DFIRESIGHT_SYSTEMD_UNITDIR=/lib/systemd/system
grep -q "^OpenCV_DIR:PATH=$sysroot/" "$out/CMakeCache.txt" ||
  { echo "arm64-watch.sh: OpenCV was not found in the arm64 sysroot: $(grep '^OpenCV_DIR' "$out/CMakeCache.txt")" >&2; exit 1; }
watch_tests=(watch_decision_test watch_pipeline_test watch_notify_test watch_dashboard_test watch_service_test)
cmake --build "$out" --parallel "${JOBS:-$(nproc)}" --target firesight-watch "${watch_tests[@]}"
watch=$out/apps/firesight-watch/firesight-watch
readelf -h "$watch" | grep -q 'Machine:.*AArch64' || { echo "arm64-watch.sh: firesight-watch is not an arm64 program" >&2; exit 1; }
built=$(date +%s)

step "the watcher's tests under qemu-aarch64"
ctest --test-dir "$out" --output-on-failure -j "$(nproc)" --timeout 900 -L watch "$@"

step "firesight-watch under qemu: --help, and a watch run with an engine built on x86"
"$out/run-arm64" "$watch" --help | head -n 1
[ -x "$HOST_BUILD_DIR/apps/firesight/firesight" ] || scripts/setup.sh
run=$out/watch-run
rm -rf "$run" && mkdir -p "$run/frames"
"$HOST_BUILD_DIR/apps/firesight/firesight" build --model "$FIRESIGHT_ASSETS/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite" \
  --out "$run/imagenet.fse" >/dev/null
# Frames 03-06 are the chickadee; the others a cat and a dragonfly.
samples=$FIRESIGHT_ASSETS/imagenet-samples
i=0
for s in cat dragonfly cat bird bird bird bird cat dragonfly cat; do
  cp "$samples/$s.bmp" "$run/frames/$(printf '%02d' $i)-$s.bmp"
  i=$((i + 1))
done
cat > "$run/watch.toml" <<TOML
model = "$run/imagenet.fse"
fps = 0
data_dir = "$run/data"
[sources]
feeder = "$run/frames"
[decision]
alarm_classes = ["chickadee"]
enter = 0.6
exit = 0.3
k = 2
n = 3
clear_frames = 2
min_alarm_seconds = 0
TOML
timeout 600 "$out/run-arm64" "$watch" --config "$run/watch.toml" --duration 300 | tee "$run/watch.log"
python3 - "$run/data" <<'PY'
import os, sqlite3, sys
data = sys.argv[1]
db = sqlite3.connect(os.path.join(data, "events.db"))
rows = db.execute("SELECT kind, from_state, to_state, class, round(score, 3), frame, snapshot FROM events "
                  "WHERE source = 'feeder' ORDER BY id").fetchall()
for r in rows:
    print("event:", *r)
alarms = [r for r in rows if r[0] == "state" and r[2] == "alarm"]
assert len(alarms) == 1, f"expected one alarm, got {len(alarms)}"
kind, _, _, cls, score, frame, snapshot = alarms[0]
assert cls == "chickadee" and score >= 0.6, alarms[0]
assert 3 <= frame <= 6, f"the alarm is on frame {frame}, not on a chickadee frame (3-6)"
assert snapshot and os.path.isfile(os.path.join(data, "snapshots", snapshot)), f"no snapshot file {snapshot}"
states = [(r[2], r[5]) for r in rows if r[0] == "state"]
assert [s for s, _ in states] == ["suspected", "alarm", "cleared"], f"states {states}"
assert states[-1][1] >= 7, f"the alarm cleared on frame {states[-1][1]}, while the chickadee was still there"
print(f"watch run: alarm on chickadee at frame {frame} (smoothed score {score}), cleared at frame {states[-1][1]}; snapshot {snapshot}")
PY

step "arm64 firesight-watch package ($BUILD_DIR/packages) and lintian"
rm -rf "$out/packages"
(cd "$out" && cpack -G DEB -D CPACK_COMPONENTS_ALL=watch >/dev/null)
deb=$(ls "$out"/packages/firesight-watch_*_arm64.deb)
check_debs "$deb"
# The Depends stated by hand against the program: every library it needs comes from a package
# named there, each named library package is needed, and the arm64 package downloaded satisfies
# the stated version.
python3 - "$deb" "$index" "$watch" <<'PY'
import re, subprocess, sys
deb, index, program = sys.argv[1:4]
depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True, check=True).stdout.strip()
stated = {}
for d in depends.split(","):
    m = re.fullmatch(r"\s*([a-z0-9.+-]+)(?:\s*\(>=\s*([^)]+)\))?\s*", d)
    assert m, f"cannot read the dependency {d!r}"
    stated[m.group(1)] = m.group(2)
owners = {}
for line in open(index):
    pkg, ver, name = line.split()
    owners.setdefault(name, set()).add((pkg, ver))
needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]",
                    subprocess.run(["readelf", "-d", program], capture_output=True, text=True, check=True).stdout)
from_libs = {}
for soname in needed:
    found = owners.get(soname, set())
    assert len(found) == 1, f"{soname}: {len(found)} arm64 packages hold it: {sorted(found)}"
    pkg, ver = found.pop()
    from_libs[pkg] = ver
    print(f"  {soname:28} {pkg} {ver}")
missing = sorted(set(from_libs) - set(stated))
extra = sorted(p for p in stated if p not in from_libs and p not in ("adduser", "init-system-helpers", "procps"))
assert not missing, f"Depends lacks {missing}"
assert not extra, f"Depends names {extra}, which firesight-watch does not link"
for pkg, ver in from_libs.items():
    if stated[pkg]:
        ok = subprocess.run(["dpkg", "--compare-versions", ver, "ge", stated[pkg]]).returncode == 0
        assert ok, f"{pkg}: Depends wants >= {stated[pkg]}, the arm64 package is {ver}"
print(f"Depends: the {len(from_libs)} library packages of firesight-watch's {len(needed)} NEEDED entries, versions satisfied")
PY
printf '\n==> arm64 watch: sysroot and build %s s, tests, watch run and package %s s\n' $((built - start)) $(( $(date +%s) - built ))
