// What a backend provides to a Session: a graph compiled for one batch size, run on one input.
#pragma once
#include <cstddef>
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
// fuse_min_bytes: kNoFusion, or run f32 inverted-residual blocks whose expanded tensor (per image)
// has at least that many bytes fused in row strips (kernels/xnnpack/fused_block.h); 0 fuses every
// block it can.
constexpr std::size_t kNoFusion = static_cast<std::size_t>(-1);
std::unique_ptr<Executor> make_xnnpack_executor(const Graph& g, int threads, bool sparse = true,
                                                std::size_t fuse_min_bytes = kNoFusion);
// Whether XNNPACK takes `op`; when not, `why` says what it lacks.
bool xnnpack_supports(const Graph& g, const Op& op, std::string& why);
#endif

}  // namespace firesight::engine
