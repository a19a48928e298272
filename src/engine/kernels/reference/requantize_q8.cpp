// Fused-activation bounds of int8 ops, shared by the int8 reference kernels.
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

}  // namespace firesight::engine::ref
