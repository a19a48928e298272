// Reference depthwise 2D convolution: filter [1,KH,KW,C*M], output channel c*M+m reads input c.
#include "kernels.h"

namespace firesight::engine::ref {

void depthwise_conv2d(const Op& op, const float* x, const Shape& xs, const float* w, const Shape& ws,
                      const float* bias, float* y, const Shape& ys) {
    const int N = xs[0], H = xs[1], W = xs[2], C = xs[3];
    const int OH = ys[1], OW = ys[2], O = ys[3];
    const int KH = ws[1], KW = ws[2], M = op.depth_multiplier;
    std::vector<float> acc(static_cast<std::size_t>(O));
    for (int n = 0; n < N; ++n)
        for (int oy = 0; oy < OH; ++oy)
            for (int ox = 0; ox < OW; ++ox) {
                for (int o = 0; o < O; ++o) acc[static_cast<std::size_t>(o)] = bias ? bias[o] : 0.f;
                for (int ky = 0; ky < KH; ++ky) {
                    const int iy = oy * op.stride_h - op.pad_top + ky * op.dilation_h;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < KW; ++kx) {
                        const int ix = ox * op.stride_w - op.pad_left + kx * op.dilation_w;
                        if (ix < 0 || ix >= W) continue;
                        const float* xp = x + ((static_cast<std::int64_t>(n) * H + iy) * W + ix) * C;
                        const float* wp = w + (static_cast<std::int64_t>(ky) * KW + kx) * O;
                        for (int o = 0; o < O; ++o) acc[static_cast<std::size_t>(o)] += xp[o / M] * wp[o];
                    }
                }
                float* out = y + ((static_cast<std::int64_t>(n) * OH + oy) * OW + ox) * O;
                for (int o = 0; o < O; ++o) out[o] = activate(acc[static_cast<std::size_t>(o)], op.activation);
            }
}

}  // namespace firesight::engine::ref
