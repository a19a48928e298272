// Relu6: min(max(x, 0), 6), float only (int8 graphs fuse it into the layer before). Kernel:
// kernels/reference/relu.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

void run(const RunContext& c) {
    ref::relu(c.input<float>(0), c.output<float>(), c.output_count(), 6.f);
    c.apply_activation();
}

}  // namespace

const OpDef kRelu6 = {"Relu6", infer_elementwise_f32, run, nullptr};

}  // namespace firesight::engine::ops
