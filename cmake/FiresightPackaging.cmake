# Debian packages with CPack (`cpack -G DEB` in a build folder; scripts/package.sh drives it and
# runs lintian): one per install component (cmake/FiresightInstall.cmake).
#   firesight-runtime  the runtime: library, firesight-run, headers, CMake and pkg-config files;
#                      depends only on libc, libstdc++ and XNNPACK/pthreadpool (amd64, arm64)
#   firesight          the full tool (amd64; libtorch and OpenCV from Debian)
#   firesight-watch    the watcher as a service (when built)
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_PACKAGE_NAME firesight)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(FIRESIGHT_PACKAGE_MAINTAINER "firesight authors <firesight@example.org>" CACHE STRING
    "Maintainer field of the Debian packages (set it to yours when you publish them)")
set(CPACK_PACKAGE_CONTACT "${FIRESIGHT_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "on-device fire and smoke recognition")
set(CPACK_PACKAGE_INSTALL_DIRECTORY /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_STRIP_FILES ON)

if(CMAKE_CROSSCOMPILING)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
    set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
  else()
    message(FATAL_ERROR "packaging: no Debian architecture known for ${CMAKE_SYSTEM_PROCESSOR}")
  endif()
  # dpkg-shlibdeps looks libraries up in the host's dpkg database, which holds no arm64 ones:
  # the same packages by name, as dpkg-shlibdeps gives them on amd64.
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS
      "libc6 (>= 2.34), libgcc-s1 (>= 3.4), libpthreadpool0 (>= 0.0~git20200423.6acde9c), libstdc++6 (>= 12), libxnnpack0 (>= 0.0~git20220216.ae108ef)")
  # firesight-watch adds OpenCV's four modules, cpp-httplib, libmosquitto and SQLite.
  # scripts/arm64-watch.sh checks these names against the libraries the arm64 program needs and the
  # versions against the arm64 packages it downloaded.
  set(_fs_watch_arm64_libs
      "libc6 (>= 2.34), libcpp-httplib0.11 (>= 0.11.4+ds), libgcc-s1 (>= 3.4), libmosquitto1 (>= 1.2), libopencv-core406 (>= 4.6.0+dfsg), libopencv-imgcodecs406 (>= 4.6.0+dfsg), libopencv-imgproc406 (>= 4.6.0+dfsg), libopencv-videoio406 (>= 4.6.0+dfsg), libpthreadpool0 (>= 0.0~git20200423.6acde9c), libsqlite3-0 (>= 3.5.9), libstdc++6 (>= 12), libxnnpack0 (>= 0.0~git20220216.ae108ef)")
else()
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
# A shlibs file for libfiresight_runtime.so.0, so packages linking it get the right dependency.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME firesight-runtime)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "firesight runtime: run fire and smoke engine files on a CPU
Loads firesight engine files (.fse) and classifies images with them on
XNNPACK (fp32, int8), firesight's own int8 kernels or the reference kernels.
Holds libfiresight_runtime.so (C API in firesight_runtime.h, C++ API in
firesight/engine/), the firesight-run command, and what another program needs
to use it (find_package(firesight), pkg-config firesight-runtime).")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# The library goes into ld.so's folders: libc's ldconfig trigger refreshes its cache.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/deb/runtime/triggers)

set(CPACK_DEBIAN_TOOL_PACKAGE_NAME firesight)
set(CPACK_DEBIAN_TOOL_DESCRIPTION "on-device fire and smoke recognition: train, compress, watch
Fine-tunes an ImageNet MobileNetV2 on fire / smoke / neutral photos,
compresses it into a small engine (pruning, clustering, int8 with
calibration), evaluates it, and watches cameras with it.")

set(CPACK_DEBIAN_WATCH_PACKAGE_NAME firesight-watch)
set(CPACK_DEBIAN_WATCH_PACKAGE_SECTION video)
# The maintainer scripts make the user and enable the unit (packaging/deb/watch, docs/deploy.md):
# they need adduser and deb-systemd-helper. The unit reloads with /bin/kill, which is procps's (not
# essential: a minimal Debian root lacks it, and `systemd-analyze verify` there says so).
set(_fs_watch_scripts ${PROJECT_SOURCE_DIR}/packaging/deb/watch)
set(CPACK_DEBIAN_WATCH_PACKAGE_CONTROL_EXTRA
    "${_fs_watch_scripts}/postinst;${_fs_watch_scripts}/prerm;${_fs_watch_scripts}/postrm;${_fs_watch_scripts}/conffiles")
set(CPACK_DEBIAN_WATCH_PACKAGE_DEPENDS "adduser, init-system-helpers (>= 1.52), procps")
if(CMAKE_CROSSCOMPILING)
  string(APPEND CPACK_DEBIAN_WATCH_PACKAGE_DEPENDS ", ${_fs_watch_arm64_libs}")
endif()
set(CPACK_DEBIAN_WATCH_DESCRIPTION "firesight watcher service: fire and smoke alarms from cameras
Watches cameras, streams or folders with a firesight engine file, raises
alarms that do not flicker, stores events and sends them by MQTT; runs as a
systemd service.")

# Every package gets its copyright file and a Debian changelog (Debian policy 12.5, 12.7).
set(_fs_changelog ${PROJECT_BINARY_DIR}/packaging/changelog.Debian)
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/packaging)
string(TIMESTAMP _fs_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(_fs_components runtime)
if(TARGET firesight)
  list(APPEND _fs_components tool)
endif()
if(TARGET firesight-watch)
  list(APPEND _fs_components watch)
endif()
set(CPACK_COMPONENTS_ALL ${_fs_components})
foreach(component ${_fs_components})
  string(TOUPPER ${component} _up)
  set(_pkg ${CPACK_DEBIAN_${_up}_PACKAGE_NAME})
  file(WRITE ${_fs_changelog}.${component}
       "${_pkg} (${PROJECT_VERSION}-1) unstable; urgency=medium\n\n  * Built from the firesight source tree.\n\n -- ${CPACK_PACKAGE_CONTACT}  ${_fs_date}\n")
  execute_process(COMMAND gzip -9nf ${_fs_changelog}.${component})
  install(FILES ${_fs_changelog}.${component}.gz DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${_pkg} RENAME changelog.Debian.gz
          COMPONENT ${component})
  install(FILES packaging/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${_pkg} COMPONENT ${component})
endforeach()

include(CPack)
