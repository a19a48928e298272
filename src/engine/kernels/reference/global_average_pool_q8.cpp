// Reference int8 global average pooling: the int32 sum over H*W of (x - x_zero), requantized with
// scale input_scale / (output_scale * (H*W)) as XNNPACK evaluates it.
#include "kernels.h"

namespace firesight::engine::ref {

void global_average_pool_q8(const Op& op, Q8Tensor x, std::int8_t* y, const Quantization& yq) {
    const std::int64_t N = x.shape[0], HW = static_cast<std::int64_t>(x.shape[1]) * x.shape[2], C = x.shape[3];
    const float scale = x.quant.scale[0] / (yq.scale[0] * static_cast<float>(HW));
    const auto init = static_cast<std::int32_t>(-HW * x.quant.zero_point[0]);
    const Q8Bounds bounds = q8_bounds(op.activation, yq);
    std::vector<std::int32_t> acc(static_cast<std::size_t>(C));
    for (std::int64_t n = 0; n < N; ++n) {
        std::fill(acc.begin(), acc.end(), init);
        for (std::int64_t p = 0; p < HW; ++p)
            for (std::int64_t c = 0; c < C; ++c) {
                auto& a = acc[static_cast<std::size_t>(c)];
                a = add_wrapping(a, x.data[(n * HW + p) * C + c]);
            }
        for (std::int64_t c = 0; c < C; ++c)
            y[n * C + c] = requantize_fp32(acc[static_cast<std::size_t>(c)], scale, yq.zero_point[0], bounds);
    }
}

}  // namespace firesight::engine::ref
