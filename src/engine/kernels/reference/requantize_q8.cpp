// Requantization set-up shared by the int8 reference kernels: fused-activation bounds and the
// per-channel scales of layers with weights.
#include <cmath>
#include <limits>

#include "kernels.h"

namespace firesight::engine::ref {

Q8Bounds q8_bounds(Activation a, const Quantization& out) {
    const float inf = std::numeric_limits<float>::infinity();
    const float lo = a == Activation::None ? -inf : 0.f;
    const float hi = a == Activation::Relu6 ? 6.f : inf;
    const float scale = out.scale[0];
    const auto zp = static_cast<float>(out.zero_point[0]);
    auto q = [&](float bound) {
        return static_cast<std::int32_t>(std::lrintf(std::fmin(std::fmax(bound / scale + zp, -128.f), 127.f)));
    };
    return {q(lo), q(hi)};
}

Q8Requantization q8_requantization(Activation a, const Quantization& xq, const Quantization& wq, const Quantization& yq,
                                   std::int64_t channels) {
    Q8Requantization r;
    r.zero_point = yq.zero_point[0];
    r.bounds = q8_bounds(a, yq);
    r.scale.resize(static_cast<std::size_t>(channels));
    for (std::int64_t o = 0; o < channels; ++o)
        // In this order, in float: the products must match XNNPACK's to the bit.
        r.scale[static_cast<std::size_t>(o)] = xq.scale[0] * wq.scale[wq.scale.size() == 1 ? 0 : static_cast<std::size_t>(o)] / yq.scale[0];
    return r;
}

}  // namespace firesight::engine::ref
