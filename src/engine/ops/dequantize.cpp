// Dequantize: i8 -> f32 with the input tensor's quantization (one scale). Kernel:
// kernels/reference/dequantize.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    const Tensor* x = c.input(0);
    if (x->dtype != DType::I8 || x->quant.scale.size() != 1) c.fail("input must be i8 with one scale");
    return {c.shape_of(0), DType::F32};
}

void run(const RunContext& c) {
    const auto& q = c.input_tensor(0).quant;
    ref::dequantize(c.input<std::int8_t>(0), c.output<float>(), c.output_count(), q.scale[0], q.zero_point[0]);
}

}  // namespace

const OpDef kDequantize = {"Dequantize", infer, run, nullptr};

}  // namespace firesight::engine::ops
