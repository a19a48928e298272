# Shell functions shared by scripts/arm64.sh and scripts/package.sh (source it; bash).

# install_missing PKG...: apt-installs those of the Debian packages that are not installed yet
# (sudo when not root).
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  printf '\n==> installing %s\n' "${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# check_debs DEB...: prints each package's installed size and Depends, then runs lintian once on
# them all; an error fails (returns non-zero). The accepted warnings and why: packaging/lintian-accepted.
check_debs() {
  local d out rc=0
  for d in "$@"; do
    printf '%s\n' "$(basename "$d"): $(dpkg-deb -f "$d" Installed-Size) KiB installed; Depends: $(dpkg-deb -f "$d" Depends)"
  done
  out=$(lintian --fail-on error --suppress-tags-from-file packaging/lintian-accepted "$@" 2>&1) || rc=$?
  # CI runs as root, which lintian only advises against.
  printf '%s\n' "$out" | grep -v 'root privileges' || true
  ((rc == 0)) || { echo "lintian found errors (above)" >&2; return 1; }
}

# write_qemu_wrapper FILE SYSROOT_DESC LIBRARY_PATH WRITER: FILE runs an arm64 program under
# qemu-user with the arm64 libc of crossbuild-essential-arm64 and the libraries on LIBRARY_PATH
# (the sysroot SYSROOT_DESC, written by the script WRITER). Tests that start another program of the
# build put the wrapper before it (FIRESIGHT_TEST_EMULATOR, tests/test_util.h).
write_qemu_wrapper() {
  local file=$1 desc=$2 libs=$3 writer=$4
  cat > "$file" <<WRAP
#!/bin/sh
# Runs an arm64 program under qemu-user with the arm64 libc of crossbuild-essential-arm64 and the
# libraries of $desc (written by $writer).
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
export LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# Tests that start another program of this build put this wrapper before it (tests/test_util.h).
export FIRESIGHT_TEST_EMULATOR="$file"
exec qemu-aarch64-static "\$@"
WRAP
  chmod +x "$file"
}

# configure_arm64 OUT SYSROOT [CMAKE OPTIONS...]: configures (or, when already configured,
# re-runs) the arm64 cross-build in OUT with the repository's toolchain file, the libraries of
# SYSROOT, the qemu wrapper OUT/run-arm64 as the emulator and the runtime-only tree; extra options
# are added on the first configure.
configure_arm64() {
  local out=$1 sysroot=$2
  shift 2
  local opts=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" -DFIRESIGHT_ARM64_SYSROOT="$sysroot"
              -DCMAKE_CROSSCOMPILING_EMULATOR="$out/run-arm64" -DFIRESIGHT_RUNTIME_ONLY=ON -DCMAKE_BUILD_TYPE=Release "$@")
  command -v ninja >/dev/null && opts+=(-G Ninja)
  command -v ccache >/dev/null && opts+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  if [ ! -f "$out/CMakeCache.txt" ]; then
    cmake -S . -B "$out" "${opts[@]}" >/dev/null
  else
    cmake "$out" >/dev/null
  fi
}
