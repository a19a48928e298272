// Reference int8 depthwise 2D convolution: filter [1,KH,KW,C*M] with a scale per output channel;
// output channel c*M+m reads input channel c.
#include "kernels.h"

namespace firesight::engine::ref {

void depthwise_conv2d_q8(const Op& op, Q8Tensor x, Q8Weights w, std::int8_t* y, const Shape& ys, const Quantization& yq) {
    const int N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3];
    const int OH = ys[1], OW = ys[2], O = ys[3];
    const int KH = w.filter_shape[1], KW = w.filter_shape[2], M = op.depth_multiplier;
    const std::int32_t xz = x.quant.zero_point[0];
    const Q8Requantization requantize = q8_requantization(op.activation, x.quant, w.filter_quant, yq, O);
    std::vector<std::int32_t> acc(static_cast<std::size_t>(O));
    for (int n = 0; n < N; ++n)
        for (int oy = 0; oy < OH; ++oy)
            for (int ox = 0; ox < OW; ++ox) {
                for (int o = 0; o < O; ++o) acc[static_cast<std::size_t>(o)] = w.bias ? w.bias[o] : 0;
                for (int ky = 0; ky < KH; ++ky) {
                    const int iy = oy * op.stride_h - op.pad_top + ky * op.dilation_h;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < KW; ++kx) {
                        const int ix = ox * op.stride_w - op.pad_left + kx * op.dilation_w;
                        if (ix < 0 || ix >= W) continue;
                        const std::int8_t* xp = x.data + ((static_cast<std::int64_t>(n) * H + iy) * W + ix) * C;
                        const std::int8_t* wp = w.filter + (static_cast<std::int64_t>(ky) * KW + kx) * O;
                        for (int o = 0; o < O; ++o) {
                            auto& a = acc[static_cast<std::size_t>(o)];
                            a = add_wrapping(a, (static_cast<std::int32_t>(xp[o / M]) - xz) * wp[o]);
                        }
                    }
                }
                std::int8_t* out = y + ((static_cast<std::int64_t>(n) * OH + oy) * OW + ox) * O;
                for (int o = 0; o < O; ++o) out[o] = requantize(acc[static_cast<std::size_t>(o)], o);
            }
}

}  // namespace firesight::engine::ref
