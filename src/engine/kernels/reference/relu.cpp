// Reference ReLU and ReLU6 (an upper bound of 6) as standalone ops.
#include "kernels.h"

namespace firesight::engine::ref {

void relu(const float* x, float* y, std::int64_t n, float upper) {
    for (std::int64_t i = 0; i < n; ++i) {
        const float v = std::max(x[i], 0.f);
        y[i] = upper >= 0.f ? std::min(v, upper) : v;
    }
}

}  // namespace firesight::engine::ref
