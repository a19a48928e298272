// Reference affine quantization to int8, as XNNPACK's f32->qs8 conversion computes it:
// q = round_half_even(clamp(x * (1 / scale), -128 - zero_point, 127 - zero_point)) + zero_point.
// Multiplying by the float reciprocal (not dividing) is what makes ties land where XNNPACK's do.
#include <cmath>

#include "kernels.h"

namespace firesight::engine::ref {

void quantize(const float* x, std::int8_t* y, std::int64_t n, float scale, std::int32_t zero_point) {
    const float inv = 1.0f / scale;
    const auto lo = static_cast<float>(-128 - zero_point), hi = static_cast<float>(127 - zero_point);
    for (std::int64_t i = 0; i < n; ++i) {
        const float v = std::min(std::max(x[i] * inv, lo), hi);
        y[i] = static_cast<std::int8_t>(static_cast<std::int32_t>(std::nearbyint(v)) + zero_point);
    }
}

}  // namespace firesight::engine::ref
