// Reference softmax over the last axis, shifted by the row maximum so exp never overflows.
#include <cmath>

#include "kernels.h"

namespace firesight::engine::ref {

void softmax(const float* x, float* y, std::int64_t rows, std::int64_t cols, float beta) {
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* in = x + r * cols;
        float* out = y + r * cols;
        float mx = in[0];
        for (std::int64_t c = 1; c < cols; ++c) mx = std::max(mx, in[c]);
        double sum = 0.0;
        for (std::int64_t c = 0; c < cols; ++c) {
            out[c] = std::exp(beta * (in[c] - mx));
            sum += out[c];
        }
        for (std::int64_t c = 0; c < cols; ++c) out[c] = static_cast<float>(out[c] / sum);
    }
}

}  // namespace firesight::engine::ref
