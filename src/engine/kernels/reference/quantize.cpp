// Reference affine quantization to int8: q = clamp(round(x / scale) + zero_point, -128, 127).
#include <cmath>

#include "kernels.h"

namespace firesight::engine::ref {

void quantize(const float* x, std::int8_t* y, std::int64_t n, float scale, std::int32_t zero_point) {
    for (std::int64_t i = 0; i < n; ++i) {
        const float q = std::nearbyint(x[i] / scale) + static_cast<float>(zero_point);
        y[i] = static_cast<std::int8_t>(std::clamp(q, -128.f, 127.f));
    }
}

}  // namespace firesight::engine::ref
