// Softmax over the last axis, with beta; float only. Kernel: kernels/reference/softmax.cpp.
#include <cmath>

#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    c.need_f32(0);
    if (!(c.op.beta > 0.f) || !std::isfinite(c.op.beta)) c.fail("beta must be positive");
    return {c.shape_of(0), DType::F32};
}

void run(const RunContext& c) {
    const std::int64_t cols = c.output_shape().back();
    ref::softmax(c.input<float>(0), c.output<float>(), c.output_count() / cols, cols, c.op.beta);
    c.apply_activation();
}

}  // namespace

const OpDef kSoftmax = {"Softmax", infer, run, nullptr};

}  // namespace firesight::engine::ops
