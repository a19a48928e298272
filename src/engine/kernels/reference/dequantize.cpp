// Reference int8 dequantization: x = scale * (q - zero_point).
#include "kernels.h"

namespace firesight::engine::ref {

void dequantize(const std::int8_t* x, float* y, std::int64_t n, float scale, std::int32_t zero_point) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = scale * static_cast<float>(static_cast<std::int32_t>(x[i]) - zero_point);
}

}  // namespace firesight::engine::ref
