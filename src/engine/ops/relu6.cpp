// Relu6: min(max(x, 0), 6), float only (int8 graphs fuse it into the layer before). Kernel:
// kernels/reference/relu.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    c.need_f32(0);
    return {c.shape_of(0), DType::F32};
}

void run(const RunContext& c) {
    ref::relu(c.input<float>(0), c.output<float>(), c.output_count(), 6.f);
    c.apply_activation();
}

}  // namespace

const OpDef kRelu6 = {"Relu6", infer, run, nullptr};

}  // namespace firesight::engine::ops
