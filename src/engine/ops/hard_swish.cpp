// HardSwish (MobileNetV3's activation): y = x * relu6(x + 3) / 6, float only; the quantizer leaves
// it in float between a Dequantize and a Quantize, as it does Relu. Kernel:
// kernels/reference/hard_swish.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    c.need_f32(0);
    return {c.shape_of(0), DType::F32};
}

void run(const RunContext& c) {
    ref::hard_swish(c.input<float>(0), c.output<float>(), c.output_count());
    c.apply_activation();
}

}  // namespace

const OpDef kHardSwish = {"HardSwish", infer, run, nullptr};

}  // namespace firesight::engine::ops
