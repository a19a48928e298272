// Reference HardSwish: y = x * min(max(x + 3, 0), 6) / 6.
#include "kernels.h"

namespace firesight::engine::ref {

void hard_swish(const float* x, float* y, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * std::min(std::max(x[i] + 3.f, 0.f), 6.f) / 6.f;
}

}  // namespace firesight::engine::ref
