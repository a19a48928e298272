# Cross-builds firesight's runtime for arm64 (Jetson, Raspberry Pi 4/5, Orange Pi) on an amd64
# Debian with Debian's own pieces; scripts/arm64.sh drives it:
#   - the compiler and arm64 libc from crossbuild-essential-arm64 (under /usr/aarch64-linux-gnu);
#   - the arm64 libraries (XNNPACK, pthreadpool, cpuinfo, GoogleTest; for the watcher OpenCV, SQLite,
#     libmosquitto, cpp-httplib: scripts/arm64-watch.sh) unpacked with dpkg-deb -x into
#     FIRESIGHT_ARM64_SYSROOT. They are never installed into the host: libxnnpack-dev and
#     libpthreadpool are not multi-arch co-installable, and installing the :arm64 ones removes the
#     amd64 XNNPACK and libtorch;
#   - architecture-independent packages (nlohmann-json, CLI11 headers) from the host.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

if(NOT FIRESIGHT_ARM64_SYSROOT)
  set(FIRESIGHT_ARM64_SYSROOT "$ENV{FIRESIGHT_ARM64_SYSROOT}")
endif()
if(NOT IS_DIRECTORY "${FIRESIGHT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "FIRESIGHT_ARM64_SYSROOT='${FIRESIGHT_ARM64_SYSROOT}' holds no arm64 libraries: "
                      "run scripts/arm64.sh, which fills build-arm64/sysroot")
endif()
# Try-compiles (CMake's compiler checks) must see the same setting.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FIRESIGHT_ARM64_SYSROOT)

# Libraries only from the arm64 folders; headers and CMake package files from there first, then
# from the host, where only architecture-independent ones can match (nlohmann-json, CLI11).
set(CMAKE_FIND_ROOT_PATH "${FIRESIGHT_ARM64_SYSROOT}" /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config (the watcher's SQLite, libmosquitto and cpp-httplib, scripts/arm64-watch.sh): the
# sysroot's arm64 .pc files only, their paths taken inside the sysroot.
set(ENV{PKG_CONFIG_LIBDIR} "${FIRESIGHT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${FIRESIGHT_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${FIRESIGHT_ARM64_SYSROOT}")

# Headers that differ per architecture (openssl/opensslconf.h, for cpp-httplib) are in the
# multiarch folder, which the cross compiler does not search in a folder of its own.
if(IS_DIRECTORY "${FIRESIGHT_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
  string(APPEND CMAKE_C_FLAGS_INIT " -isystem ${FIRESIGHT_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
  string(APPEND CMAKE_CXX_FLAGS_INIT " -isystem ${FIRESIGHT_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
endif()

# XNNPACK's shared library needs cpuinfo and pthreadpool (OpenCV's, for the watcher, a few hundred
# more): let the linker find them there too.
# A few of those live in /usr/lib itself, as on a board (GDAL's armadillo, ogdi, hdf4).
set(_fs_libdir "${FIRESIGHT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu:${FIRESIGHT_ARM64_SYSROOT}/usr/lib")
string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -Wl,-rpath-link,${_fs_libdir}")
string(APPEND CMAKE_SHARED_LINKER_FLAGS_INIT " -Wl,-rpath-link,${_fs_libdir}")

# Test programs (and GoogleTest's discovery of their tests) run under qemu-user with these
# libraries: build-arm64/run-arm64, written by scripts/arm64.sh.
if(NOT CMAKE_CROSSCOMPILING_EMULATOR AND EXISTS "$ENV{FIRESIGHT_ARM64_EMULATOR}")
  set(CMAKE_CROSSCOMPILING_EMULATOR "$ENV{FIRESIGHT_ARM64_EMULATOR}")
endif()
