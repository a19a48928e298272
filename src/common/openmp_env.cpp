#include "firesight/common/openmp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace firesight {

void openmp_wait_passively(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY")) return;
    if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 0) != 0) return;
    ::execv("/proc/self/exe", argv);
    // No /proc (a bare chroot): run on with libgomp's default; the variable set above then only
    // reaches the processes this one starts.
}

}  // namespace firesight
