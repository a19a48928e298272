// What a backend provides to a Session: a graph compiled for one batch size, run on one input.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine {

class Executor {
public:
    virtual ~Executor() = default;
    // Prepares buffers (and whatever else the backend needs) for this batch size.
    virtual void plan(int batch) = 0;
    // Runs on `input` (graph input 0) and points `outputs` at the graph outputs' values.
    virtual void run(const float* input, std::vector<const float*>& outputs) = 0;
};

std::unique_ptr<Executor> make_reference_executor(const Graph& g);
// AVX512-VNNI kernels for int8 ops where the CPU has them, the reference kernels elsewhere. The
// large VNNI layers are split across `threads` threads (1: all on the caller's thread).
std::unique_ptr<Executor> make_native_int8_executor(const Graph& g, int threads = 1);
#ifdef FIRESIGHT_HAVE_XNNPACK
std::unique_ptr<Executor> make_xnnpack_executor(const Graph& g, int threads, bool sparse = true);
// Whether XNNPACK takes `op`; when not, `why` says what it lacks.
bool xnnpack_supports(const Graph& g, const Op& op, std::string& why);
#endif

}  // namespace firesight::engine
