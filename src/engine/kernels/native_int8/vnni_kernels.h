// AVX512-VNNI int8 kernels for the native-int8 backend: a packed u8 x s8 GEMM (1x1 and im2col
// convolutions, fully connected), depthwise convolution, addition and f32 -> int8 quantization,
// each computing exactly the bytes the int8 reference kernels compute.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/reference/kernels.h"

namespace firesight::engine::native {

// True when this CPU runs AVX512F/BW/VNNI; every kernel below needs it.
bool cpu_has_vnni();

// The fused activation and output quantization every int8 layer ends with.
struct Requant {
    std::int32_t zero_point = 0;
    float lo = 0.f, hi = 0.f;  // clamp bounds relative to the zero point: bounds.lo - zp, bounds.hi - zp
};
Requant make_requant(Activation a, const Quantization& out);

// A layer's weights packed for vpdpbusd: output channels in blocks of 16, each block holding for
// every 4 consecutive k the 4 weight bytes of its 16 channels (64 bytes). The activations enter as
// u8 = x + 128 (x ^ 0x80), so bias[o] - (x_zero + 128) * sum_k w[o,k] replaces the bias, which
// keeps the int32 sum equal to the reference's bias + sum (x - x_zero) * w.
struct PackedGemm {
    int K = 0, Kp = 0, O = 0;          // Kp: K rounded up to 4
    std::vector<std::int8_t> weights;  // [ceil(O/16)][Kp/4][16][4]
    std::vector<std::int32_t> bias;    // ceil(O/16)*16, folded as above
    std::vector<float> scale;          // per output channel: x_scale * w_scale[o] / y_scale
    Requant rq;
};
// `w` is [O][K] (OHWI flattened), `w_scale` one value or O values, `bias` may be null.
PackedGemm pack_gemm(const std::int8_t* w, int O, int K, const std::vector<float>& w_scale, const std::int32_t* bias,
                     const Quantization& xq, const Quantization& yq, Activation act);

// y[m, o] (row stride y_stride) for m < M, from u8 rows a[m] of p.Kp bytes (row stride a_stride).
void gemm_u8s8(const PackedGemm& p, const std::uint8_t* a, std::int64_t M, std::int64_t a_stride, std::int8_t* y,
               std::int64_t y_stride);
// The same for the output channels of blocks [block_begin, block_end) only (16 channels a block,
// the last one partial): a layer with few rows is split across threads this way. Each output
// byte is computed exactly as gemm_u8s8 computes it, whatever the range.
void gemm_u8s8_blocks(const PackedGemm& p, const std::uint8_t* a, std::int64_t M, std::int64_t a_stride, std::int8_t* y,
                      std::int64_t y_stride, int block_begin, int block_end);
inline int gemm_blocks(const PackedGemm& p) { return (p.O + 15) / 16; }

// Rows of K int8 values (row stride x_stride) to u8 rows of Kp bytes (x ^ 0x80, zero padding).
void to_u8_rows(const std::int8_t* x, std::int64_t M, int K, std::int64_t x_stride, std::uint8_t* a, int Kp);
// im2col for a groups == 1 convolution: one u8 row of Kp bytes per output pixel, k ordered
// (ky, kx, c) like the OHWI filter; taps outside the image read x_zero (contributing nothing).
void im2col_u8(const Op& op, const std::int8_t* x, const ref::Shape& xs, std::int32_t x_zero, int KH, int KW,
               const ref::Shape& ys, std::uint8_t* a, int Kp);
// Rows [m_begin, m_end) only (m counts output pixels over the batch), at a + m * Kp.
void im2col_u8(const Op& op, const std::int8_t* x, const ref::Shape& xs, std::int32_t x_zero, int KH, int KW,
               const ref::Shape& ys, std::uint8_t* a, int Kp, std::int64_t m_begin, std::int64_t m_end);

// Depthwise convolution with multiplier 1: weights widened to int32 lanes for vpdpwssd, the input
// copied into a buffer padded with its zero point so every tap is in bounds.
struct PackedDepthwise {
    int KH = 0, KW = 0, C = 0, Cp = 0;  // Cp: C rounded up to 16
    std::vector<std::int32_t> weights;  // [KH*KW][Cp], w & 0xffff
    std::vector<std::int32_t> bias;     // [Cp]: bias - x_zero * sum over taps of w
    std::vector<float> scale;           // [Cp]
    std::int32_t x_zero = 0;
    Requant rq;
};
PackedDepthwise pack_depthwise(const std::int8_t* w, int KH, int KW, int C, const std::vector<float>& w_scale,
                               const std::int32_t* bias, const Quantization& xq, const Quantization& yq, Activation act);
// `padded` must hold N*(H+pad_top+pad_bottom)*(W+pad_left+pad_right)*C bytes. With `u8_out` the
// output is written in the GEMM's u8 form (value + 128), for a 1x1 convolution to read directly.
void depthwise_q8(const Op& op, const PackedDepthwise& p, const std::int8_t* x, const ref::Shape& xs, std::int8_t* y,
                  const ref::Shape& ys, std::int8_t* padded, bool u8_out = false);
// depthwise_q8 in two steps that each split into row ranges, for threads: first rows
// [begin, end) of the padded input (depthwise_padded_rows of them), then, once all are written,
// output rows [begin, end) (N * OH of them).
std::int64_t depthwise_padded_rows(const Op& op, const ref::Shape& xs);
void depthwise_pad(const Op& op, const PackedDepthwise& p, const std::int8_t* x, const ref::Shape& xs, std::int8_t* padded,
                   std::int64_t begin, std::int64_t end);
void depthwise_rows(const Op& op, const PackedDepthwise& p, const ref::Shape& xs, std::int8_t* y, const ref::Shape& ys,
                    const std::int8_t* padded, bool u8_out, std::int64_t begin, std::int64_t end);

// Exactly ref::add_q8 and ref::quantize, vectorized.
void add_q8(const Op& op, const std::int8_t* a, const Quantization& aq, const std::int8_t* b, const Quantization& bq,
            std::int8_t* y, const Quantization& yq, std::int64_t n);
void quantize(const float* x, std::int8_t* y, std::int64_t n, float scale, std::int32_t zero_point);

}  // namespace firesight::engine::native
