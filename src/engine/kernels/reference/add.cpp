// Reference elementwise addition of two same-shaped tensors, with a fused activation.
#include "kernels.h"

namespace firesight::engine::ref {

void add(const Op& op, const float* a, const float* b, float* y, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = activate(a[i] + b[i], op.activation);
}

}  // namespace firesight::engine::ref
