// How libtorch's OpenMP threads wait between parallel regions. libgomp's default is to spin for
// 300,000 iterations before sleeping; when another process holds one of the cores, the spinning
// thread burns its time slice waiting for a team-mate that is not running. On 2 shared cores at
// load 6, optimize's fine-tuning took 52 s wall and 46 s CPU by default against 15 s and 10 s with
// OMP_WAIT_POLICY=PASSIVE (docs/allocator.md, "OpenMP threads that wait"). libgomp reads the
// variable once, when it is loaded, before main(); so it can only be set for a new process image.
#pragma once

namespace firesight {

// When OMP_WAIT_POLICY is not set, sets it to PASSIVE and replaces the process by the same program
// with the same arguments (execv of /proc/self/exe); returns only when the variable was already set
// (the user's choice, or the second start) or the exec failed (then nothing changes). Call it first
// in main(), only for commands that compute with libtorch: the second start costs their load time.
void openmp_wait_passively(char** argv);

}  // namespace firesight
