// libfiresight_runtime.so is the static runtime library linked whole (src/engine/CMakeLists.txt);
// CMake wants at least one source of its own, and this is it.
