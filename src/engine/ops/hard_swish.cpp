// HardSwish (MobileNetV3's activation): y = x * relu6(x + 3) / 6, float only; the quantizer leaves
// it in float between a Dequantize and a Quantize, as it does Relu. Its reference kernel is here.
#include <algorithm>

#include "op_def.h"

namespace firesight::engine::ops {
namespace {

void run(const RunContext& c) {
    const float* x = c.input<float>(0);
    float* y = c.output<float>();
    const std::int64_t n = c.output_count();
    for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * std::min(std::max(x[i] + 3.f, 0.f), 6.f) / 6.f;
    c.apply_activation();
}

}  // namespace

const OpDef kHardSwish = {"HardSwish", infer_elementwise_f32, run, nullptr};

}  // namespace firesight::engine::ops
