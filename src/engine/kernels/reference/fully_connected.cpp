// Reference fully connected layer: y[n,o] = bias[o] + sum_i x[n,i] * w[o,i].
#include "kernels.h"

namespace firesight::engine::ref {

void fully_connected(const Op& op, const float* x, const Shape& xs, const float* w, const Shape& ws,
                     const float* bias, float* y) {
    const std::int64_t N = xs[0], O = ws[0], I = ws[1];
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t o = 0; o < O; ++o) {
            float acc = bias ? bias[o] : 0.f;
            for (std::int64_t i = 0; i < I; ++i) acc += x[n * I + i] * w[o * I + i];
            y[n * O + o] = activate(acc, op.activation);
        }
}

}  // namespace firesight::engine::ref
