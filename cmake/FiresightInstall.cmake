# What `cmake --install` puts where (GNU layout), by component:
#   runtime  libfiresight_runtime.so.0, firesight-run, the runtime headers (C++ and C), a CMake
#            package (find_package(firesight) -> firesight::runtime) and a pkg-config file
#   tool     the firesight program (training, optimization, evaluation; libtorch and OpenCV)
# and the Debian packages made from them (cmake/FiresightPackaging.cmake).
include(CMakePackageConfigHelpers)
set(FIRESIGHT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/firesight)

install(TARGETS firesight_runtime_shared EXPORT firesightTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT runtime)
install(TARGETS firesight-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
# The runtime's public headers only: the engine API and the common headers it includes.
install(DIRECTORY include/firesight/engine include/firesight/common DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/firesight
        COMPONENT runtime)
install(FILES include/firesight_runtime.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT runtime)
install(EXPORT firesightTargets NAMESPACE firesight:: DESTINATION ${FIRESIGHT_CMAKE_DIR} COMPONENT runtime)
configure_package_config_file(cmake/firesightConfig.cmake.in ${PROJECT_BINARY_DIR}/firesightConfig.cmake
                              INSTALL_DESTINATION ${FIRESIGHT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/firesightConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/firesightConfig.cmake ${PROJECT_BINARY_DIR}/firesightConfigVersion.cmake
        DESTINATION ${FIRESIGHT_CMAKE_DIR} COMPONENT runtime)
# Relative to the .pc file, so the same file is right under /usr (the packages) and /usr/local.
file(RELATIVE_PATH FIRESIGHT_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" FIRESIGHT_PC_TO_PREFIX "${FIRESIGHT_PC_TO_PREFIX}")
configure_file(cmake/firesight-runtime.pc.in ${PROJECT_BINARY_DIR}/firesight-runtime.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/firesight-runtime.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT runtime)

if(TARGET firesight)
  install(TARGETS firesight RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tool)
endif()

# Manual pages (packaging/man), compressed as Debian installs them.
function(firesight_install_man page component)
  set(gz ${PROJECT_BINARY_DIR}/man/${page}.gz)
  file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/man)
  configure_file(${PROJECT_SOURCE_DIR}/packaging/man/${page} ${PROJECT_BINARY_DIR}/man/${page} COPYONLY)
  execute_process(COMMAND gzip -9nf ${PROJECT_BINARY_DIR}/man/${page})
  install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT ${component})
endfunction()
firesight_install_man(firesight-run.1 runtime)
if(TARGET firesight)
  firesight_install_man(firesight.1 tool)
endif()
if(TARGET firesight-watch)
  firesight_install_man(firesight-watch.1 watch)
endif()
