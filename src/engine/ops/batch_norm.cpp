// BatchNorm: x, gamma, beta, mean, variance (per channel, the last axis), epsilon; float only (the
// optimiser folds it into the convolution before). Kernel: kernels/reference/batch_norm.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    c.need_f32(0);
    const Shape& x = c.shape_of(0);
    if (x.empty()) c.fail("input has rank 0");
    for (std::size_t k = 1; k <= 4; ++k) c.need_const(k, x.back(), "batch norm parameter");
    if (!(c.op.epsilon >= 0.f)) c.fail("epsilon must be non-negative");
    return {x, DType::F32};
}

void run(const RunContext& c) {
    const std::int64_t channels = c.output_shape().back();
    ref::batch_norm(c.op, c.input<float>(0), c.input<float>(1), c.input<float>(2), c.input<float>(3), c.input<float>(4),
                    c.output<float>(), c.output_count() / channels, channels);
}

}  // namespace

const OpDef kBatchNorm = {"BatchNorm", infer, run, nullptr};

}  // namespace firesight::engine::ops
