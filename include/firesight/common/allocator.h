// Allocator settings for the libtorch stages (train, eval, optimize). glibc hands every buffer over
// its mmap threshold back to the kernel when it is freed, so a loop that allocates the same large
// activation tensors batch after batch faults all their pages in again each time: most of the
// time of the cache stage went to the kernel (docs/allocator.md has the measurements).
#pragma once

namespace firesight {

// Keeps buffers up to 256 MB in the heap, trims the heap only past 1 GB, and limits glibc to two
// arenas (the machine this is made for has 2 cores), so freed memory is reused instead of being
// returned and faulted in again. Call it once, early, in a process that trains or evaluates with
// libtorch. Returns false where the C library refused (not glibc: nothing changes).
bool keep_freed_memory();

// Hands the memory that keep_freed_memory() keeps back to the kernel (malloc_trim): call it after
// a stage, before measuring how much memory the next one may use.
void release_freed_memory();

}  // namespace firesight
