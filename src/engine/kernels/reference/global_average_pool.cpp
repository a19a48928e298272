// Reference global average pooling: the mean over H and W of each channel.
#include "kernels.h"

namespace firesight::engine::ref {

void global_average_pool(const float* x, const Shape& xs, float* y) {
    const std::int64_t N = xs[0], HW = static_cast<std::int64_t>(xs[1]) * xs[2], C = xs[3];
    // Accumulating in double keeps the oracle's error well below the float kernels' own.
    std::vector<double> acc(static_cast<std::size_t>(C));
    for (std::int64_t n = 0; n < N; ++n) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::int64_t p = 0; p < HW; ++p)
            for (std::int64_t c = 0; c < C; ++c) acc[static_cast<std::size_t>(c)] += x[(n * HW + p) * C + c];
        for (std::int64_t c = 0; c < C; ++c) y[n * C + c] = static_cast<float>(acc[static_cast<std::size_t>(c)] / static_cast<double>(HW));
    }
}

}  // namespace firesight::engine::ref
