// The builder's graph passes: batch norm folding, activation fusion and clean-ups. Build time
// only: the runtime executes what they produce.
#pragma once
#include <string>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// Each pass returns how many changes it made.
int fold_batch_norm(Graph& g);        // BatchNorm after a conv/depthwise/fc with constant weights
int fuse_activations(Graph& g);       // Relu/Relu6 into the op that produces their only input
int remove_identities(Graph& g);      // Identity ops and reshapes to the same shape
int fold_constants(Graph& g);         // ops whose inputs are all constant
int remove_dead(Graph& g);            // ops and tensors the outputs do not need
// All of the above until nothing changes. Returns a summary line for logs.
std::string optimize(Graph& g);

// TensorFlow's SAME padding along one axis of `in` pixels (the odd pixel goes after).
struct SamePadding {
    int before = 0, after = 0;
};
SamePadding same_padding(int in, int kernel, int stride, int dilation);

// Rebuilds a graph for another square input size (NHWC input 0): every (depthwise) convolution
// whose explicit padding is TF SAME for the current size gets SAME padding for the new one, and
// unpadded (VALID) ones stay unpadded; every activation's declared shape follows. Metadata size
// becomes `size` and resize_shorter scales with it. Throws firesight::Error when a convolution's
// padding is neither, or an op's shape cannot follow (a reshape of the spatial dimensions).
// Why: XNNPACK's sparse path needs symmetric stride-2 padding, which SAME gives only at sizes
// 32k + 1 for MobileNetV2 (225, not 224): docs/arm64.md.
void set_input_size(Graph& g, int size);

// The graph cut after `tensor`: that tensor (dequantized to f32 right after its producer when it is
// int8) is the only output, and what it does not need is removed. For running a network's prefix
// (optimize's int8 prefix cache) or timing one block after another (bench/block_profile).
Graph cut_after(const Graph& full, std::int32_t tensor);

}  // namespace firesight::engine
