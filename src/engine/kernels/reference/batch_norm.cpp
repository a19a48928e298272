// Reference inference-mode batch norm over the last (channel) axis.
#include <cmath>

#include "kernels.h"

namespace firesight::engine::ref {

void batch_norm(const Op& op, const float* x, const float* gamma, const float* beta, const float* mean,
                const float* var, float* y, std::int64_t rows, std::int64_t channels) {
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < channels; ++c) {
            const float inv = 1.0f / std::sqrt(var[c] + op.epsilon);
            y[r * channels + c] = activate((x[r * channels + c] - mean[c]) * inv * gamma[c] + beta[c], op.activation);
        }
}

}  // namespace firesight::engine::ref
