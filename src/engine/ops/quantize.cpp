// Quantize: f32 -> i8 with the output tensor's quantization (one scale), as XNNPACK's f32->qs8
// conversion computes it. Kernel: kernels/reference/quantize.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    c.need_f32(0);
    if (c.output.dtype != DType::I8 || c.output.quant.scale.size() != 1) c.fail("output must be i8 with one scale");
    return {c.shape_of(0), DType::I8};
}

void run(const RunContext& c) {
    const auto& q = c.output_tensor().quant;
    ref::quantize(c.input<float>(0), c.output<std::int8_t>(), c.output_count(), q.scale[0], q.zero_point[0]);
}

}  // namespace

const OpDef kQuantize = {"Quantize", infer, run, nullptr};

}  // namespace firesight::engine::ops
