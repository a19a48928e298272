#include "firesight/common/allocator.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace firesight {

bool keep_freed_memory() {
    if (std::getenv("FIRESIGHT_MALLOC_DEFAULTS")) return false;  // for bench/allocator_compare.sh
#if defined(__GLIBC__)
    bool ok = mallopt(M_MMAP_THRESHOLD, 256 << 20) == 1;
    ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 && ok;
    ok = mallopt(M_ARENA_MAX, 2) == 1 && ok;
    return ok;
#else
    return false;
#endif
}

void release_freed_memory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

}  // namespace firesight
