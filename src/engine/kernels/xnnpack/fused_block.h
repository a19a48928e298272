// An inverted-residual block (1x1 expand -> 3x3 depthwise -> 1x1 project [-> add the block's input])
// run in strips of output rows with XNNPACK's f32 operators, so the expanded tensor never exists
// whole: each strip's expanded rows stay in cache between the three convolutions
// (bench/fused_block_bench.cpp, docs/fused-blocks.md).
#pragma once
#include <pthreadpool.h>
#include <xnnpack.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// The clamp XNNPACK applies for a fused activation.
std::pair<float, float> activation_bounds(Activation a);

// Where a block is in the graph: four consecutive ops (add = -1 without a residual).
struct FusedBlockOps {
    int expand = -1, depthwise = -1, project = -1, add = -1;
    std::int32_t in_tensor = -1, out_tensor = -1;  // the block's input and output
    int last() const { return add >= 0 ? add : project; }
};

// The blocks of an f32 graph that can run fused: consecutive ops expand (1x1, stride 1, unpadded,
// ungrouped) -> depthwise 3x3 (multiplier 1, undilated, stride 1 or 2) -> project (1x1 as the
// expand) [-> add of the project's output and the expand's input], each intermediate read only by
// the next op and not a graph output, and an expanded tensor of at least `min_expanded_bytes`.
std::vector<FusedBlockOps> find_fused_blocks(const Graph& g, const std::vector<std::vector<std::int32_t>>& shapes,
                                             std::size_t min_expanded_bytes);

class FusedBlock {
public:
    // `workers` threads' worth of operators and strip buffers; run() splits the strips between them.
    FusedBlock(const Graph& g, const std::vector<std::vector<std::int32_t>>& shapes, const FusedBlockOps& ops, int workers);
    ~FusedBlock();
    FusedBlock(const FusedBlock&) = delete;
    FusedBlock& operator=(const FusedBlock&) = delete;
    // in: [batch, h, w, cin], out: [batch, ho, wo, cout]; pool may be null (one worker).
    void run(const float* in, float* out, pthreadpool_t pool);

    struct Shape {
        int batch, h, w, cin, e, cout, ho, wo, stride, pad_top;
        bool residual;
        float add_lo, add_hi;
    };
    class Worker;

private:
    static void task(void* self, std::size_t i);
    Shape s_;
    std::vector<std::unique_ptr<Worker>> workers_;
    const float* in_ = nullptr;
    float* out_ = nullptr;
};

}  // namespace firesight::engine
