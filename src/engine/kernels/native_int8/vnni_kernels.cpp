// AVX512-VNNI int8 kernels. Only the functions marked VNNI_TARGET use AVX512 instructions, so the
// library still runs on any x86-64; callers check cpu_has_vnni() first.
#include "vnni_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "firesight/common/error.h"

// GCC 12 flags the self-initialised __Y inside its own AVX512 headers as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define VNNI_INLINE VNNI_TARGET inline __attribute__((always_inline))

namespace firesight::engine::native {

bool cpu_has_vnni() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

Requant make_requant(Activation a, const Quantization& out) {
    const ref::Q8Bounds b = ref::q8_bounds(a, out);
    const std::int32_t zp = out.zero_point[0];
    // The same float bounds ref::requantize_fp32 clamps to.
    return {zp, static_cast<float>(b.lo - zp), static_cast<float>(b.hi - zp)};
}

namespace {

// bias - zero x sum(w), the zero point folded into the bias, in wrapping int32 like the vector adds
// that consume it (and the reference kernels' sums): a bias clamped near INT32_MAX by a degenerate
// calibration overflows here, which on int32 would be undefined behaviour.
std::int32_t folded_bias(std::int32_t bias, std::int32_t zero, std::int32_t sum) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(bias) - static_cast<std::uint32_t>(zero) * static_cast<std::uint32_t>(sum));
}

float layer_scale(const Quantization& xq, const std::vector<float>& w_scale, int o, const Quantization& yq) {
    // Evaluated in the reference kernels' order, in float, so the products match to the bit.
    return xq.scale[0] * w_scale[w_scale.size() == 1 ? 0 : static_cast<std::size_t>(o)] / yq.scale[0];
}

std::uint32_t load_u32(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// float(acc) * scale, clamped, rounded half to even (MXCSR's default mode, as std::nearbyint),
// plus the zero point: ref::requantize_fp32 on 16 lanes. The clamp keeps every lane inside the
// int8 range (or [0, 255] when `zp` carries the extra 128 of the u8 form), so truncating to a
// byte is exact.
VNNI_INLINE void store_requant(std::int8_t* y, __m512i acc, __m512 scale, __m512 lo, __m512 hi, __m512i zp, __mmask16 mask) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
    _mm512_mask_cvtepi32_storeu_epi8(y, mask, q);
}

__mmask16 lane_mask(int n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u); }
__mmask64 byte_mask(int n) {
    if (n <= 0) return 0;
    return n >= 64 ? ~0ULL : (1ULL << n) - 1ULL;
}

// MR rows x NV blocks of 16 output channels; rows past `mr` recompute the last row and are not
// stored, so one instantiation serves every row remainder.
template <int MR, int NV>
VNNI_TARGET void gemm_tile(const PackedGemm& p, const std::uint8_t* a, std::int64_t a_stride, int mr, int block, int o_left,
                           std::int8_t* y, std::int64_t y_stride) {
    const std::uint8_t* ar[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) ar[r] = a + static_cast<std::int64_t>(r < mr ? r : mr - 1) * a_stride;
    const int kb = p.Kp / 4;
    const std::int64_t panel = static_cast<std::int64_t>(kb) * 64;
    const std::int8_t* wb = p.weights.data() + static_cast<std::int64_t>(block) * panel;
    __m512i acc[MR][NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const __m512i b0 = _mm512_loadu_si512(p.bias.data() + (block + v) * 16);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) acc[r][v] = b0;
    }
    for (int k = 0; k < kb; ++k) {
        __m512i b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_si512(wb + v * panel + k * 64);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            const __m512i av = _mm512_set1_epi32(static_cast<int>(load_u32(ar[r] + 4 * k)));
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, b[v]);
        }
    }
    const __m512 lo = _mm512_set1_ps(p.rq.lo), hi = _mm512_set1_ps(p.rq.hi);
    const __m512i zp = _mm512_set1_epi32(p.rq.zero_point);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const __m512 scale = _mm512_loadu_ps(p.scale.data() + (block + v) * 16);
        const __mmask16 mask = lane_mask(o_left - 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r)
            if (r < mr) store_requant(y + r * y_stride + 16 * v, acc[r][v], scale, lo, hi, zp, mask);
    }
}

template <int MR, int NV>
void gemm_columns(const PackedGemm& p, const std::uint8_t* a, std::int64_t M, std::int64_t a_stride, int block, std::int8_t* y,
                  std::int64_t y_stride) {
    const int o_left = p.O - block * 16;
    for (std::int64_t m = 0; m < M; m += MR)
        gemm_tile<MR, NV>(p, a + m * a_stride, a_stride, static_cast<int>(std::min<std::int64_t>(MR, M - m)), block, o_left,
                          y + m * y_stride + block * 16, y_stride);
}

}  // namespace

PackedGemm pack_gemm(const std::int8_t* w, int O, int K, const std::vector<float>& w_scale, const std::int32_t* bias,
                     const Quantization& xq, const Quantization& yq, Activation act) {
    PackedGemm p;
    p.K = K;
    p.Kp = (K + 3) / 4 * 4;
    p.O = O;
    const int blocks = (O + 15) / 16;
    const int kb = p.Kp / 4;
    p.weights.assign(static_cast<std::size_t>(blocks) * static_cast<std::size_t>(kb) * 64, 0);
    p.bias.assign(static_cast<std::size_t>(blocks) * 16, 0);
    p.scale.assign(static_cast<std::size_t>(blocks) * 16, 0.f);
    const std::int32_t u8_zero = xq.zero_point[0] + 128;
    for (int o = 0; o < O; ++o) {
        std::int32_t sum = 0;
        for (int k = 0; k < K; ++k) {
            const std::int8_t v = w[static_cast<std::int64_t>(o) * K + k];
            sum += v;
            const std::size_t at = ((static_cast<std::size_t>(o / 16) * kb + static_cast<std::size_t>(k / 4)) * 16 +
                                    static_cast<std::size_t>(o % 16)) * 4 + static_cast<std::size_t>(k % 4);
            p.weights[at] = v;
        }
        p.bias[static_cast<std::size_t>(o)] = folded_bias(bias ? bias[o] : 0, u8_zero, sum);
        p.scale[static_cast<std::size_t>(o)] = layer_scale(xq, w_scale, o, yq);
    }
    p.rq = make_requant(act, yq);
    return p;
}

void gemm_u8s8(const PackedGemm& p, const std::uint8_t* a, std::int64_t M, std::int64_t a_stride, std::int8_t* y,
               std::int64_t y_stride) {
    gemm_u8s8_blocks(p, a, M, a_stride, y, y_stride, 0, gemm_blocks(p));
}

void gemm_u8s8_blocks(const PackedGemm& p, const std::uint8_t* a, std::int64_t M, std::int64_t a_stride, std::int8_t* y,
                      std::int64_t y_stride, int block_begin, int block_end) {
    // Every tile shape accumulates each output's int32 sum exactly and requantizes it lane by lane,
    // so how the blocks are grouped changes speed only, never a byte.
    for (int b = block_begin; b < block_end; b += 4) {
        switch (std::min(4, block_end - b)) {
            case 4: gemm_columns<6, 4>(p, a, M, a_stride, b, y, y_stride); break;
            case 3: gemm_columns<8, 3>(p, a, M, a_stride, b, y, y_stride); break;
            case 2: gemm_columns<12, 2>(p, a, M, a_stride, b, y, y_stride); break;
            default: gemm_columns<12, 1>(p, a, M, a_stride, b, y, y_stride); break;
        }
    }
}

VNNI_TARGET void to_u8_rows(const std::int8_t* x, std::int64_t M, int K, std::int64_t x_stride, std::uint8_t* a, int Kp) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (std::int64_t m = 0; m < M; ++m) {
        const std::int8_t* src = x + m * x_stride;
        std::uint8_t* dst = a + m * Kp;
        for (int j = 0; j < Kp; j += 64) {
            const __mmask64 valid = byte_mask(K - j);
            const __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(valid, src + j), flip);
            _mm512_mask_storeu_epi8(dst + j, byte_mask(Kp - j), _mm512_maskz_mov_epi8(valid, v));
        }
    }
}

void im2col_u8(const Op& op, const std::int8_t* x, const ref::Shape& xs, std::int32_t x_zero, int KH, int KW,
               const ref::Shape& ys, std::uint8_t* a, int Kp) {
    im2col_u8(op, x, xs, x_zero, KH, KW, ys, a, Kp, 0, static_cast<std::int64_t>(ys[0]) * ys[1] * ys[2]);
}

VNNI_TARGET void im2col_u8(const Op& op, const std::int8_t* x, const ref::Shape& xs, std::int32_t x_zero, int KH, int KW,
                           const ref::Shape& ys, std::uint8_t* a, int Kp, std::int64_t m_begin, std::int64_t m_end) {
    const int H = xs[1], W = xs[2], C = xs[3];
    const int OH = ys[1], OW = ys[2];
    const auto outside = static_cast<std::uint8_t>(x_zero + 128);
    const int K = KH * KW * C;
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    // With no dilation along x, a filter row's taps are KW*C contiguous input bytes: one masked
    // load-xor-store when they fit in 64 bytes.
    const bool row_copy = op.dilation_w == 1 && KW * C <= 64;
    const __mmask64 row_mask = byte_mask(KW * C);
    for (std::int64_t m = m_begin; m < m_end; ++m) {
        std::uint8_t* row = a + m * Kp;
        const int ox = static_cast<int>(m % OW), oy = static_cast<int>(m / OW % OH), n = static_cast<int>(m / OW / OH);
        std::uint8_t* d = row;
        const int ix0 = ox * op.stride_w - op.pad_left;
        const bool x_inside = ix0 >= 0 && ix0 + (KW - 1) * op.dilation_w < W;
        for (int ky = 0; ky < KH; ++ky) {
            const int iy = oy * op.stride_h - op.pad_top + ky * op.dilation_h;
            const std::int8_t* src_row = x + (static_cast<std::int64_t>(n) * H + iy) * W * C;
            if (row_copy && x_inside && iy >= 0 && iy < H) {
                const __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(row_mask, src_row + static_cast<std::int64_t>(ix0) * C), flip);
                _mm512_mask_storeu_epi8(d, row_mask, v);
                d += KW * C;
                continue;
            }
            for (int kx = 0; kx < KW; ++kx, d += C) {
                const int ix = ix0 + kx * op.dilation_w;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                    std::memset(d, outside, static_cast<std::size_t>(C));
                    continue;
                }
                const std::int8_t* s = src_row + static_cast<std::int64_t>(ix) * C;
                for (int c = 0; c < C; ++c) d[c] = static_cast<std::uint8_t>(s[c] ^ 0x80);
            }
        }
        for (int k = K; k < Kp; ++k) row[k] = 0;
    }
}

PackedDepthwise pack_depthwise(const std::int8_t* w, int KH, int KW, int C, const std::vector<float>& w_scale,
                               const std::int32_t* bias, const Quantization& xq, const Quantization& yq, Activation act) {
    PackedDepthwise p;
    p.KH = KH;
    p.KW = KW;
    p.C = C;
    p.Cp = (C + 15) / 16 * 16;
    p.x_zero = xq.zero_point[0];
    p.weights.assign(static_cast<std::size_t>(KH * KW) * static_cast<std::size_t>(p.Cp), 0);
    p.bias.assign(static_cast<std::size_t>(p.Cp), 0);
    p.scale.assign(static_cast<std::size_t>(p.Cp), 0.f);
    for (int c = 0; c < C; ++c) {
        std::int32_t sum = 0;
        for (int t = 0; t < KH * KW; ++t) {
            const std::int8_t v = w[static_cast<std::int64_t>(t) * C + c];
            sum += v;
            // Low 16 bits the weight, high 16 bits zero: vpdpwssd then adds x * w exactly, whatever
            // the sign-extension bits of x's lane hold.
            p.weights[static_cast<std::size_t>(t) * static_cast<std::size_t>(p.Cp) + static_cast<std::size_t>(c)] =
                static_cast<std::int32_t>(static_cast<std::uint16_t>(static_cast<std::int16_t>(v)));
        }
        p.bias[static_cast<std::size_t>(c)] = folded_bias(bias ? bias[c] : 0, p.x_zero, sum);
        p.scale[static_cast<std::size_t>(c)] = layer_scale(xq, w_scale, c, yq);
    }
    p.rq = make_requant(act, yq);
    return p;
}

namespace {

// One output row of a depthwise convolution with a KH x KW filter known at compile time (the 16
// channels' weights stay in registers across the row); KH = KW = 0 reads the filter size from `p`.
template <int KH, int KW>
VNNI_TARGET void depthwise_row(const Op& op, const PackedDepthwise& p, const std::int8_t* in, std::int64_t in_row, int C, int OW,
                               std::int8_t* out, std::int32_t out_offset) {
    const int kh = KH ? KH : p.KH, kw = KW ? KW : p.KW;
    constexpr int kFixed = KH * KW > 0 ? KH * KW : 1;
    const __m512 lo = _mm512_set1_ps(p.rq.lo), hi = _mm512_set1_ps(p.rq.hi);
    const __m512i zp = _mm512_set1_epi32(p.rq.zero_point + out_offset);
    const std::int64_t step = static_cast<std::int64_t>(op.stride_w) * C;
    for (int c = 0; c < C; c += 16) {
        const __mmask16 mask = lane_mask(C - c);
        const __m512i bias = _mm512_loadu_si512(p.bias.data() + c);
        const __m512 scale = _mm512_loadu_ps(p.scale.data() + c);
        __m512i w[kFixed];
        if constexpr (KH * KW > 0) {
#pragma GCC unroll 25
            for (int t = 0; t < KH * KW; ++t) w[t] = _mm512_loadu_si512(p.weights.data() + static_cast<std::int64_t>(t) * p.Cp + c);
        }
        const std::int8_t* base = in + c;
        for (int ox = 0; ox < OW; ++ox, base += step) {
            // Two accumulators halve the dependency chain; int32 sums are exact in any order.
            __m512i acc0 = bias, acc1 = _mm512_setzero_si512();
#pragma GCC unroll 5
            for (int ky = 0; ky < kh; ++ky) {
                const std::int8_t* r = base + static_cast<std::int64_t>(ky) * op.dilation_h * in_row;
#pragma GCC unroll 5
                for (int kx = 0; kx < kw; ++kx) {
                    const __m512i xv = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, r + static_cast<std::int64_t>(kx) * op.dilation_w * C));
                    const int t = ky * kw + kx;
                    const __m512i wv = KH * KW > 0 ? w[KH * KW > 0 ? t : 0]
                                                   : _mm512_loadu_si512(p.weights.data() + static_cast<std::int64_t>(t) * p.Cp + c);
                    if (t % 2 == 0)
                        acc0 = _mm512_dpwssd_epi32(acc0, xv, wv);
                    else
                        acc1 = _mm512_dpwssd_epi32(acc1, xv, wv);
                }
            }
            store_requant(out + static_cast<std::int64_t>(ox) * C + c, _mm512_add_epi32(acc0, acc1), scale, lo, hi, zp, mask);
        }
    }
}

// A 3x3 row with stride S and no horizontal dilation, 4 output pixels at a time: the 4 pixels
// share input columns, so each column is widened to int32 once per filter row instead of once
// per tap (the widening, not the multiply-add, is what bounds this kernel).
template <int S>
VNNI_TARGET void depthwise_row3x3(const Op& op, const PackedDepthwise& p, const std::int8_t* in, std::int64_t in_row, int C, int OW,
                                  std::int8_t* out, std::int32_t out_offset) {
    constexpr int G = 4, COLS = (G - 1) * S + 3;
    const __m512 lo = _mm512_set1_ps(p.rq.lo), hi = _mm512_set1_ps(p.rq.hi);
    const __m512i zp = _mm512_set1_epi32(p.rq.zero_point + out_offset);
    for (int c = 0; c < C; c += 16) {
        const __mmask16 mask = lane_mask(C - c);
        const __m512i bias = _mm512_loadu_si512(p.bias.data() + c);
        const __m512 scale = _mm512_loadu_ps(p.scale.data() + c);
        __m512i w[9];
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) w[t] = _mm512_loadu_si512(p.weights.data() + static_cast<std::int64_t>(t) * p.Cp + c);
        int ox = 0;
        for (; ox + G <= OW; ox += G) {
            __m512i acc[G];
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g) acc[g] = bias;
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ++ky) {
                const std::int8_t* r = in + static_cast<std::int64_t>(ky) * op.dilation_h * in_row + static_cast<std::int64_t>(ox) * S * C + c;
                __m512i col[COLS];
#pragma GCC unroll 12
                for (int j = 0; j < COLS; ++j) col[j] = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, r + static_cast<std::int64_t>(j) * C));
#pragma GCC unroll 4
                for (int g = 0; g < G; ++g)
#pragma GCC unroll 3
                    for (int kx = 0; kx < 3; ++kx) acc[g] = _mm512_dpwssd_epi32(acc[g], col[g * S + kx], w[ky * 3 + kx]);
            }
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g) store_requant(out + static_cast<std::int64_t>(ox + g) * C + c, acc[g], scale, lo, hi, zp, mask);
        }
        for (; ox < OW; ++ox) {
            __m512i acc = bias;
#pragma GCC unroll 3
            for (int ky = 0; ky < 3; ++ky) {
                const std::int8_t* r = in + static_cast<std::int64_t>(ky) * op.dilation_h * in_row + static_cast<std::int64_t>(ox) * S * C + c;
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; ++kx)
                    acc = _mm512_dpwssd_epi32(acc, _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, r + static_cast<std::int64_t>(kx) * C)),
                                              w[ky * 3 + kx]);
            }
            store_requant(out + static_cast<std::int64_t>(ox) * C + c, acc, scale, lo, hi, zp, mask);
        }
    }
}

}  // namespace

void depthwise_q8(const Op& op, const PackedDepthwise& p, const std::int8_t* x, const ref::Shape& xs, std::int8_t* y,
                  const ref::Shape& ys, std::int8_t* padded, bool u8_out) {
    depthwise_pad(op, p, x, xs, padded, 0, depthwise_padded_rows(op, xs));
    depthwise_rows(op, p, xs, y, ys, padded, u8_out, 0, static_cast<std::int64_t>(ys[0]) * ys[1]);
}

std::int64_t depthwise_padded_rows(const Op& op, const ref::Shape& xs) {
    return static_cast<std::int64_t>(xs[0]) * (xs[1] + op.pad_top + op.pad_bottom);
}

void depthwise_pad(const Op& op, const PackedDepthwise& p, const std::int8_t* x, const ref::Shape& xs, std::int8_t* padded,
                   std::int64_t begin, std::int64_t end) {
    const int H = xs[1], W = xs[2], C = xs[3];
    const int PH = H + op.pad_top + op.pad_bottom, PW = W + op.pad_left + op.pad_right;
    const std::int64_t in_row = static_cast<std::int64_t>(PW) * C;
    // Taps in the padding read the zero point, which the folded bias cancels, as the reference
    // skips them. Only the border is filled; the interior is copied.
    const auto zero = static_cast<int>(static_cast<std::int8_t>(p.x_zero));
    for (std::int64_t r = begin; r < end; ++r) {
        std::int8_t* row = padded + r * in_row;
        const std::int64_t n = r / PH;
        const int iy = static_cast<int>(r % PH) - op.pad_top;
        if (iy < 0 || iy >= H) {
            std::memset(row, zero, static_cast<std::size_t>(in_row));
            continue;
        }
        std::memset(row, zero, static_cast<std::size_t>(op.pad_left) * C);
        std::memcpy(row + static_cast<std::int64_t>(op.pad_left) * C, x + (n * H + iy) * W * C, static_cast<std::size_t>(W) * C);
        std::memset(row + static_cast<std::int64_t>(op.pad_left + W) * C, zero, static_cast<std::size_t>(op.pad_right) * C);
    }
}

void depthwise_rows(const Op& op, const PackedDepthwise& p, const ref::Shape& xs, std::int8_t* y, const ref::Shape& ys,
                    const std::int8_t* padded, bool u8_out, std::int64_t begin, std::int64_t end) {
    const std::int32_t out_offset = u8_out ? 128 : 0;
    const int H = xs[1], W = xs[2], C = xs[3];
    const int OH = ys[1], OW = ys[2];
    const int PH = H + op.pad_top + op.pad_bottom, PW = W + op.pad_left + op.pad_right;
    const std::int64_t in_row = static_cast<std::int64_t>(PW) * C;
    for (std::int64_t r = begin; r < end; ++r) {
        const std::int64_t n = r / OH, oy = r % OH;
        const std::int8_t* in = padded + (n * PH + oy * op.stride_h) * in_row;
        std::int8_t* out = y + r * OW * C;
        if (p.KH == 3 && p.KW == 3 && op.dilation_w == 1 && op.stride_w == 1)
            depthwise_row3x3<1>(op, p, in, in_row, C, OW, out, out_offset);
        else if (p.KH == 3 && p.KW == 3 && op.dilation_w == 1 && op.stride_w == 2)
            depthwise_row3x3<2>(op, p, in, in_row, C, OW, out, out_offset);
        else if (p.KH == 3 && p.KW == 3)
            depthwise_row<3, 3>(op, p, in, in_row, C, OW, out, out_offset);
        else
            depthwise_row<0, 0>(op, p, in, in_row, C, OW, out, out_offset);
    }
}

VNNI_TARGET void add_q8(const Op& op, const std::int8_t* a, const Quantization& aq, const std::int8_t* b, const Quantization& bq,
                        std::int8_t* y, const Quantization& yq, std::int64_t n) {
    const ref::Q8AddParams p = ref::q8_add_params(op.activation, aq, bq, yq);  // exactly ref::add_q8's
    const __m512i va = _mm512_set1_epi32(p.a_mult), vb = _mm512_set1_epi32(p.b_mult);
    const __m512i vbias = _mm512_set1_epi32(p.bias + p.rounding), vzp = _mm512_set1_epi32(p.zero_point);
    const __m512i vshift = _mm512_set1_epi32(p.shift);
    const __m512i vlo = _mm512_set1_epi32(p.bounds.lo), vhi = _mm512_set1_epi32(p.bounds.hi);
    for (std::int64_t i = 0; i < n; i += 16) {
        const __mmask16 mask = lane_mask(static_cast<int>(std::min<std::int64_t>(16, n - i)));
        const __m512i x = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, a + i));
        const __m512i z = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, b + i));
        // bias + rounding + a*am + b*bm: int32 addition is associative (mod 2^32), so the sum is
        // the reference's (acc + rounding) whatever the order.
        __m512i acc = _mm512_add_epi32(vbias, _mm512_add_epi32(_mm512_mullo_epi32(x, va), _mm512_mullo_epi32(z, vb)));
        acc = _mm512_add_epi32(_mm512_srav_epi32(acc, vshift), vzp);
        acc = _mm512_min_epi32(_mm512_max_epi32(acc, vlo), vhi);
        _mm512_mask_cvtsepi32_storeu_epi8(y + i, mask, acc);
    }
}

VNNI_TARGET void quantize(const float* x, std::int8_t* y, std::int64_t n, float scale, std::int32_t zero_point) {
    const __m512 inv = _mm512_set1_ps(1.0f / scale);
    const __m512 lo = _mm512_set1_ps(static_cast<float>(-128 - zero_point)), hi = _mm512_set1_ps(static_cast<float>(127 - zero_point));
    const __m512i zp = _mm512_set1_epi32(zero_point);
    for (std::int64_t i = 0; i < n; i += 16) {
        const __mmask16 mask = lane_mask(static_cast<int>(std::min<std::int64_t>(16, n - i)));
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + i), inv);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm512_mask_cvtsepi32_storeu_epi8(y + i, mask, _mm512_add_epi32(_mm512_cvtps_epi32(v), zp));
    }
}

}  // namespace firesight::engine::native
