// Where each tensor of a graph lives while an op-by-op executor (reference, native-int8) runs it
// at one batch size: its shape, and a pointer into the engine's constants or into owned storage.
#pragma once
#include <cstdint>
#include <vector>

#include "firesight/engine_ir.h"

namespace firesight::engine::detail {

struct BufferPlan {
    std::vector<std::vector<std::int32_t>> shapes;  // per tensor, at the planned batch size
    std::vector<void*> data;                        // per tensor: constants' bytes, else storage
    // One buffer per non-constant tensor, in floats so that f32 and i32 values are aligned. The
    // graph input's buffer is replaced by the caller's pointer at run time.
    std::vector<std::vector<float>> storage;
};

BufferPlan plan_buffers(const Graph& g, int batch);

}  // namespace firesight::engine::detail
