// Where each tensor of a graph lives while an op-by-op executor (reference, native-int8) runs it
// at one batch size: its shape, and a pointer into the engine's constants or into shared storage.
#pragma once
#include <cstdint>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine::detail {

struct BufferPlan {
    std::vector<std::vector<std::int32_t>> shapes;  // per tensor, at the planned batch size
    // Per tensor: a constant's bytes, else a place in `storage`. Graph inputs get nullptr: the
    // executor points them at the caller's input.
    std::vector<void*> data;
    // Buffers shared by activations whose lifetimes (from the op writing one to the last op
    // reading it) do not overlap, in floats so that f32 and i32 values are aligned. No op's
    // output shares a buffer with its inputs, and graph outputs keep theirs to themselves.
    std::vector<std::vector<float>> storage;
};

BufferPlan plan_buffers(const Graph& g, int batch);

}  // namespace firesight::engine::detail
