// The weight codec: every encoding round-trips bit-exactly for f32 / i8 / i32 elements, the
// encoder picks the smallest, engine files with pruned and clustered weights shrink by exactly
// the encoding arithmetic and reload bit-exactly, and damaged encodings are refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>

#include "firesight/engine/session.h"
#include "firesight/engine/format.h"
#include "firesight/builder/quantize.h"
#include "firesight/common/error.h"
#include "firesight/engine/weight_codec.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

constexpr WeightEncoding kAll[] = {WeightEncoding::Dense, WeightEncoding::Palette, WeightEncoding::Sparse, WeightEncoding::SparsePalette};

// One test input: raw element bytes and the element size.
struct Elements {
    std::string name;
    std::size_t element_size = 4;
    std::vector<std::uint8_t> bytes;
    std::size_t count() const { return bytes.size() / element_size; }
};

template <class T>
Elements make(std::string name, const std::vector<T>& v) {
    Elements e{std::move(name), sizeof(T), {}};
    e.bytes.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(e.bytes.data(), v.data(), e.bytes.size());
    return e;
}

// Values drawn from `distinct` levels, with a share of exact zeros.
template <class T>
std::vector<T> levels(std::size_t n, std::size_t distinct, double zero_share, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> pick(0, distinct - 1);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<T> v(n);
    for (auto& x : v) {
        if (u(rng) < zero_share) {
            x = T(0);
            continue;
        }
        const auto level = pick(rng);
        if constexpr (std::is_same_v<T, float>)
            x = -0.99609375f + 0.0078125f * static_cast<float>(level);  // never exactly 0
        else if constexpr (std::is_same_v<T, std::int8_t>)
            x = static_cast<std::int8_t>(static_cast<int>(level) - 128 + (static_cast<int>(level) == 128 ? 1 : 0));
        else
            x = static_cast<T>(level) * 1000003 + 7;
    }
    return v;
}

std::vector<Elements> cases() {
    std::vector<Elements> c;
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.f, 0.1f);
    std::vector<float> random_f(1001);
    for (auto& x : random_f) x = nd(rng);
    c.push_back(make("f32 random", random_f));
    // Bit patterns that a float comparison would merge or lose: -0, NaN payloads, infinities, denormals.
    std::vector<float> odd = {0.f, -0.f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::denorm_min(), 1.f, 0.f, std::bit_cast<float>(0x7fc01234u),
                              std::bit_cast<float>(0xffc00001u)};
    c.push_back(make("f32 special bit patterns", odd));
    c.push_back(make("f32 all zeros", std::vector<float>(77, 0.f)));
    c.push_back(make("f32 no zeros, 16 levels", levels<float>(999, 16, 0.0, 1)));
    c.push_back(make("f32 one element", std::vector<float>{0.5f}));
    c.push_back(make("f32 one zero", std::vector<float>{0.f}));
    c.push_back(make("f32 256 distinct", levels<float>(3001, 256, 0.0, 2)));
    c.push_back(make("f32 257 distinct", [] {
        auto v = levels<float>(3001, 256, 0.0, 3);
        v[0] = 12345.f;  // a 257th value
        return v;
    }()));
    c.push_back(make("f32 256 nonzero distinct + zeros", levels<float>(4003, 256, 0.6, 4)));
    c.push_back(make("f32 pruned 90%", [&] {
        std::vector<float> v(5003);
        std::uniform_real_distribution<double> u(0, 1);
        for (auto& x : v) x = u(rng) < 0.9 ? 0.f : nd(rng) + 1.f;
        return v;
    }()));
    c.push_back(make("f32 pruned 75% + 16 levels", levels<float>(4097, 16, 0.75, 5)));
    for (std::size_t n : {1, 7, 9, 15, 17, 63})
        c.push_back(make("f32 n=" + std::to_string(n) + " 3 levels + zeros", levels<float>(n, 3, 0.5, 6 + static_cast<unsigned>(n))));
    c.push_back(make("i8 random", [&] {
        std::vector<std::int8_t> v(1003);
        std::uniform_int_distribution<int> d(-128, 127);
        for (auto& x : v) x = static_cast<std::int8_t>(d(rng));
        return v;
    }()));
    c.push_back(make("i8 all zeros", std::vector<std::int8_t>(9, 0)));
    c.push_back(make("i8 one element", std::vector<std::int8_t>{-128}));
    c.push_back(make("i8 16 levels, pruned 80%", levels<std::int8_t>(2051, 16, 0.8, 7)));
    c.push_back(make("i8 no zeros 255 levels", levels<std::int8_t>(3000, 255, 0.0, 8)));
    c.push_back(make("i32 random", [&] {
        std::vector<std::int32_t> v(511);
        std::uniform_int_distribution<std::int32_t> d(std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max());
        for (auto& x : v) x = d(rng);
        return v;
    }()));
    c.push_back(make("i32 8 levels, pruned 50%", levels<std::int32_t>(333, 8, 0.5, 9)));
    c.push_back(make("i32 one element", std::vector<std::int32_t>{-1}));
    return c;
}

std::vector<std::uint8_t> decode(WeightEncoding e, const std::vector<std::uint8_t>& enc, std::size_t count, std::size_t es) {
    std::vector<std::uint8_t> out(count * es, 0xAB);
    decode_weights(e, enc.data(), enc.size(), count, es, out.data(), "t.fse: tensor 'w'");
    return out;
}

std::string decode_error(WeightEncoding e, const std::vector<std::uint8_t>& enc, std::size_t count, std::size_t es) {
    try {
        decode(e, enc, count, es);
    } catch (const Error& err) {
        return err.what();
    }
    return "";
}

TEST(WeightCodec, EveryEncodingRoundTripsBitExactly) {
    for (const auto& c : cases()) {
        const auto s = weight_stats(c.bytes.data(), c.count(), c.element_size);
        int feasible = 0;
        for (auto e : kAll) {
            const auto expected_size = encoded_size(e, s);
            if (expected_size == 0) {
                EXPECT_THROW(encode_weights_as(e, c.bytes.data(), c.count(), c.element_size), Error) << c.name << " " << weight_encoding_name(e);
                continue;
            }
            ++feasible;
            const auto enc = encode_weights_as(e, c.bytes.data(), c.count(), c.element_size);
            EXPECT_EQ(enc.bytes.size(), expected_size) << c.name << " " << weight_encoding_name(e);
            EXPECT_EQ(decode(e, enc.bytes, c.count(), c.element_size), c.bytes) << c.name << " " << weight_encoding_name(e);
        }
        EXPECT_GE(feasible, 2) << c.name;  // dense and sparse always work
    }
}

TEST(WeightCodec, PaletteStopsAt256DistinctValues) {
    const auto with256 = levels<float>(3001, 256, 0.0, 2);
    auto with257 = with256;
    with257[0] = 12345.f;
    const auto s256 = weight_stats(with256.data(), with256.size(), 4);
    const auto s257 = weight_stats(with257.data(), with257.size(), 4);
    EXPECT_EQ(s256.distinct, 256u);
    EXPECT_EQ(s257.distinct, 257u);
    EXPECT_EQ(encoded_size(WeightEncoding::Palette, s256), 4u + 256 * 4 + 3001);  // 8 bits an index
    EXPECT_EQ(encoded_size(WeightEncoding::Palette, s257), 0u);
    EXPECT_EQ(encode_weights(with256.data(), with256.size(), 4).encoding, WeightEncoding::Palette);
    EXPECT_EQ(encode_weights(with257.data(), with257.size(), 4).encoding, WeightEncoding::Dense);
}

TEST(WeightCodec, EncoderPicksTheSmallest) {
    for (const auto& c : cases()) {
        const auto s = weight_stats(c.bytes.data(), c.count(), c.element_size);
        std::uint64_t smallest = encoded_size(WeightEncoding::Dense, s);
        for (auto e : kAll)
            if (const auto z = encoded_size(e, s); z != 0) smallest = std::min(smallest, z);
        const auto enc = encode_weights(c.bytes.data(), c.count(), c.element_size);
        EXPECT_EQ(enc.bytes.size(), smallest) << c.name;
        EXPECT_EQ(decode(enc.encoding, enc.bytes, c.count(), c.element_size), c.bytes) << c.name;
    }
    // The arithmetic on known tensors (f32): sizes from docs/engine-format.md.
    const auto pick = [](const std::vector<float>& v) { return encode_weights(v.data(), v.size(), 4); };
    std::vector<float> random(1000);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& x : random) x = nd(rng) + 10.f;
    EXPECT_EQ(pick(random).encoding, WeightEncoding::Dense);
    EXPECT_EQ(pick(random).bytes.size(), 4000u);
    // 16 levels, no zeros: 4 + 16*4 + 1000*4/8.
    const auto k16 = levels<float>(1000, 16, 0.0, 2);
    ASSERT_EQ(weight_stats(k16.data(), k16.size(), 4).distinct, 16u);
    EXPECT_EQ(pick(k16).encoding, WeightEncoding::Palette);
    EXPECT_EQ(pick(k16).bytes.size(), 4u + 64 + 500);
    // 90% zeros, all nonzeros distinct: 4 + 1000/8 + nnz*4.
    std::vector<float> sparse(1000, 0.f);
    for (std::size_t i = 0; i < 1000; i += 10) sparse[i] = 1.f + static_cast<float>(i);
    EXPECT_EQ(pick(sparse).encoding, WeightEncoding::Sparse);
    EXPECT_EQ(pick(sparse).bytes.size(), 4u + 125 + 100 * 4);
    // 90% zeros, 4 nonzero levels: 8 + 125 + 4*4 + 100*2/8.
    for (std::size_t i = 0; i < 1000; i += 10) sparse[i] = static_cast<float>(1 + (i / 10) % 4);
    EXPECT_EQ(pick(sparse).encoding, WeightEncoding::SparsePalette);
    EXPECT_EQ(pick(sparse).bytes.size(), 8u + 125 + 16 + 25);
    // All zeros: a palette of one value and no index bits at all.
    std::vector<float> zeros(1000, 0.f);
    EXPECT_EQ(pick(zeros).encoding, WeightEncoding::Palette);
    EXPECT_EQ(pick(zeros).bytes.size(), 8u);
    // Tiny tensors stay dense (headers cost more than they save).
    EXPECT_EQ(pick({1.f, 2.f}).encoding, WeightEncoding::Dense);  // 8 bytes vs 13 and 13
    EXPECT_EQ(pick({0.f, 0.f}).encoding, WeightEncoding::Sparse);  // 4 + 1 bytes vs 8
}

// A palette-encoded 3-level tensor (2-bit indices), for the corruption tests.
std::vector<std::uint8_t> palette3(std::size_t n) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 3) + 0.5f;
    return encode_weights_as(WeightEncoding::Palette, v.data(), n, 4).bytes;
}

TEST(WeightCodec, RefusesIndexPastThePalette) {
    auto enc = palette3(10);  // u32 k=3, 12 bytes palette, 3 bytes of 2-bit indices
    ASSERT_EQ(enc.size(), 4u + 12 + 3);
    enc[16] |= 0x0C;  // index 1 becomes 3
    const auto msg = decode_error(WeightEncoding::Palette, enc, 10, 4);
    EXPECT_NE(msg.find("t.fse: tensor 'w'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("index 3 of value 1 is past the palette of 3 values"), std::string::npos) << msg;
}

TEST(WeightCodec, RefusesBadPaletteSizeTruncationAndTrailingBytes) {
    const auto good = palette3(10);
    auto enc = good;
    enc[0] = 0;
    EXPECT_NE(decode_error(WeightEncoding::Palette, enc, 10, 4).find("palette_size is 0"), std::string::npos);
    enc = good;
    std::uint32_t big = 300;
    std::memcpy(enc.data(), &big, 4);
    EXPECT_NE(decode_error(WeightEncoding::Palette, enc, 10, 4).find("palette_size is 300"), std::string::npos);
    enc = good;
    enc[0] = 11;  // more palette entries than the tensor has elements
    EXPECT_NE(decode_error(WeightEncoding::Palette, enc, 10, 4).find("palette_size is 11"), std::string::npos);
    for (std::size_t cut = 0; cut < good.size(); ++cut) {
        const std::vector<std::uint8_t> part(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
        const auto msg = decode_error(WeightEncoding::Palette, part, 10, 4);
        EXPECT_NE(msg.find("truncated"), std::string::npos) << "cut " << cut << ": " << msg;
        EXPECT_NE(msg.find("tensor 'w'"), std::string::npos) << msg;
    }
    enc = good;
    enc.push_back(0);
    EXPECT_NE(decode_error(WeightEncoding::Palette, enc, 10, 4).find("unexpected bytes"), std::string::npos);
    enc = good;
    enc.back() |= 0x80;  // 10 indices x 2 bits = 20 bits: bits 20..23 are padding
    EXPECT_NE(decode_error(WeightEncoding::Palette, enc, 10, 4).find("padding bits"), std::string::npos);
    // The same bytes read as a tensor of another size do not fit either.
    EXPECT_FALSE(decode_error(WeightEncoding::Palette, good, 13, 4).empty());  // 26 bits need 4 bytes
    EXPECT_FALSE(decode_error(WeightEncoding::Palette, good, 10, 1).empty());
}

TEST(WeightCodec, RefusesBitmapThatDisagreesWithTheNonzeroCount) {
    std::vector<float> v(20, 0.f);
    v[3] = 1.f, v[11] = 2.f, v[19] = 3.f;
    for (auto e : {WeightEncoding::Sparse, WeightEncoding::SparsePalette}) {
        const auto good = encode_weights_as(e, v.data(), v.size(), 4).bytes;
        auto enc = good;
        enc[e == WeightEncoding::Sparse ? 4 : 8] |= 0x01;  // one more set bit in the bitmap
        auto msg = decode_error(e, enc, 20, 4);
        EXPECT_NE(msg.find("bitmap has 4 nonzero elements but nonzero_count says 3"), std::string::npos) << msg;
        enc = good;
        enc[0] = 2;  // the count says fewer (sparse + palette: fewer than its 3 palette values)
        msg = decode_error(e, enc, 20, 4);
        EXPECT_NE(msg.find(e == WeightEncoding::Sparse ? "nonzero_count says 2" : "palette_size is 3, must be 1..2"), std::string::npos)
            << msg;
        enc = good;
        enc[0] = 21;  // more than the tensor has
        EXPECT_NE(decode_error(e, enc, 20, 4).find("nonzero_count 21"), std::string::npos);
        enc = good;
        enc[(e == WeightEncoding::Sparse ? 4 : 8) + 2] |= 0x80;  // bit 23 of a 20-element bitmap
        EXPECT_NE(decode_error(e, enc, 20, 4).find("padding bits after the last element"), std::string::npos);
        for (std::size_t cut = 0; cut < good.size(); ++cut) {
            const std::vector<std::uint8_t> part(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
            EXPECT_NE(decode_error(e, part, 20, 4).find("truncated"), std::string::npos) << weight_encoding_name(e) << " cut " << cut;
        }
    }
}

// Decodes `enc` as `e` twice, into buffers filled with different bytes: a decode that succeeds
// must write every output byte (the two results agree). Returns the result, or nothing and the
// refusal message in *refusal.
std::optional<std::vector<std::uint8_t>> decode_or_refusal(WeightEncoding e, const std::vector<std::uint8_t>& enc, const Elements& c,
                                            std::string* refusal) {
    std::vector<std::uint8_t> a(c.bytes.size(), 0xAA), b(c.bytes.size(), 0x55);
    try {
        decode_weights(e, enc.data(), enc.size(), c.count(), c.element_size, a.data(), "damaged " + c.name);
    } catch (const Error& err) {
        *refusal = err.what();
        return std::nullopt;
    }
    decode_weights(e, enc.data(), enc.size(), c.count(), c.element_size, b.data(), "damaged " + c.name);
    EXPECT_EQ(a, b) << c.name << " as " << weight_encoding_name(e) << ": the decoder left output bytes unwritten";
    return a;
}

// Every bit flipped, somewhere, in every encoding of every test tensor, decoded as each encoding.
// Decoded as its own encoding, a damaged stream is refused or gives a different tensor: no flip
// is silently ignored (every field, value and padding bit counts). Whatever decodes round-trips
// through the encoder bit for bit; every refusal names the tensor and says why. Under the
// sanitizer build this also shows that nothing reads out of bounds.
TEST(WeightCodec, RandomDamageIsDecodedOrRefusedNeverCrashes) {
    std::mt19937 rng(11);
    std::size_t decoded = 0, refused = 0;
    for (const auto& c : cases()) {
        const auto s = weight_stats(c.bytes.data(), c.count(), c.element_size);
        for (auto e : kAll) {
            if (encoded_size(e, s) == 0) continue;
            const auto good = encode_weights_as(e, c.bytes.data(), c.count(), c.element_size).bytes;
            std::string refusal;
            ASSERT_EQ(decode_or_refusal(e, good, c, &refusal), std::optional(c.bytes)) << c.name << " " << weight_encoding_name(e) << refusal;
            if (good.empty()) continue;
            std::uniform_int_distribution<std::size_t> at(0, good.size() - 1);
            for (int k = 0; k < 40; ++k) {
                auto enc = good;
                const auto where = at(rng);
                enc[where] ^= static_cast<std::uint8_t>(1u << (k % 8));
                for (auto other : kAll) {
                    const auto what = c.name + " " + weight_encoding_name(e) + " decoded as " + weight_encoding_name(other) +
                                      ", bit " + std::to_string(k % 8) + " of byte " + std::to_string(where);
                    const auto decoded_or = decode_or_refusal(other, enc, c, &refusal);
                    if (!decoded_or) {
                        ++refused;
                        EXPECT_EQ(refusal.rfind("damaged " + c.name + ": ", 0), 0u) << what << ": " << refusal;
                        EXPECT_GT(refusal.size(), ("damaged " + c.name + ": ").size()) << what;
                        continue;
                    }
                    ++decoded;
                    const auto& out = *decoded_or;
                    if (other == e) EXPECT_NE(out, c.bytes) << what << ": the damage was ignored";
                    const auto again = encode_weights(out.data(), c.count(), c.element_size);
                    std::vector<std::uint8_t> back(out.size());
                    decode_weights(again.encoding, again.bytes.data(), again.bytes.size(), c.count(), c.element_size, back.data(), what);
                    EXPECT_EQ(back, out) << what;
                }
            }
        }
    }
    // Both outcomes happen (a dense stream of the right length always decodes; a flipped bitmap
    // bit always breaks the nonzero count), so neither path above goes unexercised.
    EXPECT_GT(decoded, 0u);
    EXPECT_GT(refused, 0u);
}

TEST(WeightCodec, BitPackingRoundTripsAtEveryWidth) {
    std::mt19937 rng(3);
    for (int bits = 0; bits <= 16; ++bits)
        for (std::size_t n : {0, 1, 7, 8, 9, 100, 257}) {
            std::vector<std::uint16_t> idx(n);
            std::uniform_int_distribution<std::uint32_t> d(0, (1u << bits) - 1);
            for (auto& i : idx) i = static_cast<std::uint16_t>(d(rng));
            const auto packed = pack_indices(idx, bits);
            EXPECT_EQ(packed.size(), (n * static_cast<std::size_t>(bits) + 7) / 8);
            EXPECT_EQ(unpack_indices(packed, n, bits), idx) << bits << " bits, n=" << n;
        }
    EXPECT_EQ(palette_bits(1), 0);
    EXPECT_EQ(palette_bits(2), 1);
    EXPECT_EQ(palette_bits(16), 4);
    EXPECT_EQ(palette_bits(17), 5);
    EXPECT_EQ(palette_bits(256), 8);
}

// ---- in the engine file -----------------------------------------------------------------------

// Magnitude-prunes a constant to `sparsity` (smallest |w| become 0) and snaps the rest to `k`
// evenly spaced levels (k = 0: no clustering), like the optimize pipeline would.
void prune_and_cluster(Tensor& t, double sparsity, int k) {
    auto& v = t.owned;
    std::vector<float> mag(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) mag[i] = std::fabs(v[i]);
    auto sorted = mag;
    std::sort(sorted.begin(), sorted.end());
    const auto cut = static_cast<std::size_t>(sparsity * static_cast<double>(v.size()));
    const float threshold = cut == 0 ? -1.f : sorted[cut - 1];
    float lo = 0, hi = 0;
    for (auto x : v) lo = std::min(lo, x), hi = std::max(hi, x);
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (mag[i] <= threshold) {
            v[i] = 0.f;
            continue;
        }
        if (k > 0) {
            const float step = (hi - lo) / static_cast<float>(k - 1);
            float q = lo + step * std::round((v[i] - lo) / step);
            if (q == 0.f) q = step * 0.5f;  // keep it a nonzero so the sparsity stays exact
            v[i] = q;
        }
    }
}

// The engine's input must be an RGB image (the loader checks it against the metadata), so a
// reshape without weights turns the 16x16x3 image into the 6x8x16 the layers below are sized for;
// ops[1..3] are then the compressed layers and the constants stay in the order the tests expect.
constexpr std::size_t kCompressibleInput = 16 * 16 * 3;
Graph compressible_graph() {
    GraphMaker m(9);
    auto x = m.reshape(m.input({1, 16, 16, 3}), {1, 6, 8, 16});
    auto a = m.conv(x, 96, 1, 1, {0, 0, 0, 0}, Activation::Relu6);   // 96x16 weights
    auto d = m.depthwise(a, 3, 1, {1, 1, 1, 1}, Activation::Relu6);  // 9x96
    auto b = m.conv(d, 32, 1, 1, {0, 0, 0, 0});                        // 32x96
    auto logits = m.fc(m.pool(b), 5);                                  // 5x32
    m.g.outputs = {m.softmax(logits), logits};
    m.g.metadata.class_names = {"a", "b", "c", "d", "e"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 16;
    auto& g = m.g;
    prune_and_cluster(g.tensors[static_cast<std::size_t>(g.ops[1].inputs[1])], 0.75, 16);  // sparse + palette
    prune_and_cluster(g.tensors[static_cast<std::size_t>(g.ops[2].inputs[1])], 0.0, 16);   // palette
    prune_and_cluster(g.tensors[static_cast<std::size_t>(g.ops[3].inputs[1])], 0.9, 0);    // sparse
    return g;
}

std::uint64_t section_size(const std::string& file, int i) {
    std::uint64_t v;
    std::memcpy(&v, file.data() + 64 + static_cast<std::size_t>(i) * 32 + 16, 8);
    return v;
}

TEST(WeightCodecEngine, PrunedAndClusteredEngineIsSmallerByTheArithmeticAndReloadsBitExactly) {
    const Graph g = compressible_graph();
    // What each constant should cost, from its own statistics, and what it costs dense.
    std::uint64_t expected = 0, dense = 0, sum = 0;
    std::vector<WeightEncoding> expected_encoding;
    for (const auto& t : g.tensors) {
        if (!t.constant) continue;
        const auto n = static_cast<std::size_t>(t.element_count());
        const auto s = weight_stats(t.data(), n, 4);
        std::uint64_t best = 4 * n;
        auto enc = WeightEncoding::Dense;
        for (auto e : kAll)
            if (const auto z = encoded_size(e, s); z != 0 && z < best) best = z, enc = e;
        expected_encoding.push_back(enc);
        expected = (expected + 63) / 64 * 64 + best;
        dense = (dense + 63) / 64 * 64 + 4 * n;
        sum += best;
    }
    // The layer-by-layer arithmetic, written out: 96x16 at 75% zeros and 16 levels (15 nonzero
    // levels: 4-bit indices), 9x96 at 16 levels, 32x96 at 90% zeros, the rest dense.
    const auto& w0 = g.tensors[static_cast<std::size_t>(g.ops[1].inputs[1])];
    const auto s0 = weight_stats(w0.data(), 1536, 4);
    EXPECT_EQ(s0.nonzeros, 384u);
    EXPECT_LE(s0.distinct_nonzero, 16u);
    EXPECT_EQ(encoded_size(WeightEncoding::SparsePalette, s0),
              8 + 1536 / 8 + s0.distinct_nonzero * 4 + (384 * static_cast<std::size_t>(palette_bits(s0.distinct_nonzero)) + 7) / 8);
    const auto& w2 = g.tensors[static_cast<std::size_t>(g.ops[3].inputs[1])];
    const auto s2 = weight_stats(w2.data(), 3072, 4);
    EXPECT_EQ(s2.nonzeros, 308u);  // 3072 - floor(0.9 * 3072)
    EXPECT_EQ(encoded_size(WeightEncoding::Sparse, s2), 4 + 3072 / 8 + 308 * 4);
    EXPECT_EQ(expected_encoding[0], WeightEncoding::SparsePalette);
    EXPECT_EQ(expected_encoding[2], WeightEncoding::Palette);
    EXPECT_EQ(expected_encoding[4], WeightEncoding::Sparse);

    const std::string bytes = serialize(g);
    EXPECT_EQ(section_size(bytes, 1), expected);
    EXPECT_EQ(encoded_weight_bytes(g), sum);
    EXPECT_LT(expected * 3, dense) << "encoded " << expected << " vs dense " << dense;

    test::TempDir dir;
    save_engine(g, dir / "c.fse");
    const auto e = Engine::load(dir / "c.fse");
    const Graph& back = e->graph();
    ASSERT_EQ(back.tensors.size(), g.tensors.size());
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        if (!g.tensors[i].constant) continue;
        const auto n = static_cast<std::size_t>(g.tensors[i].element_count());
        EXPECT_EQ(std::memcmp(back.tensors[i].data(), g.tensors[i].data(), n * 4), 0) << g.tensors[i].name;
    }
    GraphMaker m;
    const auto input = m.random(kCompressibleInput);
    EXPECT_EQ(testing::reference_output(g, input, 1), testing::reference_output(back, input, 1));
    EXPECT_EQ(serialize(back), bytes);
}

TEST(WeightCodecEngine, FileWithDamagedEncodingIsRefusedNamingTheTensor) {
    const Graph g = compressible_graph();
    std::string bytes = serialize(g);
    std::uint64_t weights_at;
    std::memcpy(&weights_at, bytes.data() + 64 + 32 + 8, 8);
    // The first constant (sparse + palette) starts the weights section: make its nonzero count lie.
    bytes[weights_at] = static_cast<char>(bytes[weights_at] + 1);
    // Reseal the weights section's crc and the header so the codec's own checks are reached.
    const auto crc_at = 64 + 32 + 24;
    const std::uint32_t crc = crc32(bytes.data() + weights_at, section_size(bytes, 1));
    std::memcpy(bytes.data() + crc_at, &crc, 4);
    const std::string covered = bytes.substr(0, 24) + bytes.substr(64, 96);
    const std::uint32_t hcrc = crc32(covered.data(), covered.size());
    std::memcpy(bytes.data() + 24, &hcrc, 4);
    try {
        parse_engine(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), nullptr, "bad.fse");
        FAIL() << "accepted";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bad.fse"), std::string::npos) << msg;
        EXPECT_NE(msg.find(g.tensors[static_cast<std::size_t>(g.ops[1].inputs[1])].name), std::string::npos) << msg;
        EXPECT_NE(msg.find("sparse+palette"), std::string::npos) << msg;
        EXPECT_NE(msg.find("nonzero_count"), std::string::npos) << msg;
    }
}

TEST(WeightCodecEngine, Int8EngineKeepsI8AndI32ConstantsBitExactAndPaletteSized) {
    Graph g = compressible_graph();
    // Calibration ranges from one reference run on random inputs.
    GraphMaker m(17);
    const auto input = m.random(kCompressibleInput * 4);
    quantize_int8(g, testing::minmax_ranges(g, {input}, 4));
    std::uint64_t expected = 0;
    int i8_encoded = 0, i32 = 0;
    for (const auto& t : g.tensors) {
        if (!t.constant) continue;
        const auto n = static_cast<std::size_t>(t.element_count());
        const auto s = weight_stats(t.bytes(), n, dtype_size(t.dtype));
        std::uint64_t best = n * dtype_size(t.dtype);
        auto enc = WeightEncoding::Dense;
        for (auto e : kAll)
            if (const auto z = encoded_size(e, s); z != 0 && z < best) best = z, enc = e;
        expected = (expected + 63) / 64 * 64 + best;
        i8_encoded += t.dtype == DType::I8 && enc != WeightEncoding::Dense;
        i32 += t.dtype == DType::I32;
    }
    // The clustered / pruned filters stay compact as int8 (one scale per clustered tensor keeps
    // their levels distinct int8 values), and the biases are i32.
    EXPECT_GE(i8_encoded, 3);
    EXPECT_GE(i32, 3);
    const std::string bytes = serialize(g);
    EXPECT_EQ(section_size(bytes, 1), expected);
    auto owner = std::make_shared<std::string>(bytes);
    const Graph back = parse_engine(reinterpret_cast<const std::uint8_t*>(owner->data()), owner->size(), owner, "q.fse");
    ASSERT_EQ(back.tensors.size(), g.tensors.size());
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& a = g.tensors[i];
        if (!a.constant) continue;
        EXPECT_EQ(back.tensors[i].dtype, a.dtype) << a.name;
        EXPECT_EQ(back.tensors[i].quant.scale, a.quant.scale) << a.name;
        const auto nbytes = static_cast<std::size_t>(a.element_count()) * dtype_size(a.dtype);
        EXPECT_EQ(std::memcmp(back.tensors[i].bytes(), a.bytes(), nbytes), 0) << a.name;
    }
    const auto one = m.random(kCompressibleInput);
    EXPECT_EQ(testing::reference_output(g, one, 1), testing::reference_output(back, one, 1));
    EXPECT_EQ(serialize(back), bytes);
}

// A palette of one value takes 8 bytes whatever the element count: a file must not be able to
// make the loader allocate gigabytes with it.
TEST(WeightCodecEngine, RefusesEncodedConstantsThatWouldExpandBeyondTheBudget) {
    GraphMaker m(2);
    auto x = m.input({1, 2, 2, 3});
    auto c = m.conv(x, 64, 1, 1, {0, 0, 0, 0});
    m.g.outputs = {m.pool(c)};
    m.g.metadata.size = m.g.metadata.resize_shorter = 2;
    auto& bias = m.g.tensors[static_cast<std::size_t>(m.g.ops[0].inputs[2])];
    std::fill(bias.owned.begin(), bias.owned.end(), 0.f);  // 64 zeros: a palette of one value
    std::string bytes = serialize(m.g);
    EXPECT_NO_THROW(parse_engine(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), nullptr, "ok.fse"));
    // Find the bias record (name, dtype, flags, rank 1, reserved, dims[0] = 64) and claim 2^24 elements.
    const std::string needle = bias.name + std::string("\0\1\1\0", 4);
    const auto at = bytes.find(needle);
    ASSERT_NE(at, std::string::npos);
    std::int32_t dim;
    std::memcpy(&dim, bytes.data() + at + needle.size(), 4);
    ASSERT_EQ(dim, 64);
    dim = 1 << 24;  // 64 MiB of f32
    std::memcpy(bytes.data() + at + needle.size(), &dim, 4);
    std::uint64_t goff, gsize;
    std::memcpy(&goff, bytes.data() + 64 + 8, 8);
    std::memcpy(&gsize, bytes.data() + 64 + 16, 8);
    const std::uint32_t crc = crc32(bytes.data() + goff, gsize);
    std::memcpy(bytes.data() + 64 + 24, &crc, 4);
    const std::string covered = bytes.substr(0, 24) + bytes.substr(64, 96);
    const std::uint32_t hcrc = crc32(covered.data(), covered.size());
    std::memcpy(bytes.data() + 24, &hcrc, 4);
    try {
        parse_engine(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), nullptr, "bomb.fse");
        FAIL() << "accepted";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bomb.fse"), std::string::npos) << msg;
        EXPECT_NE(msg.find("'" + bias.name + "' would expand"), std::string::npos) << msg;
    }
}

// Rewrites a version 2 file whose constants are all dense into the version 1 layout (no
// encoding bytes in the tensor records), as firesight 0.1 wrote it.
std::string as_version1(const std::string& v2) {
    std::string b = v2;
    std::uint64_t goff, gsize;
    std::memcpy(&goff, b.data() + 64 + 8, 8);
    std::memcpy(&gsize, b.data() + 64 + 16, 8);
    const std::string graph = b.substr(goff, gsize);
    std::string out;
    std::size_t p = 0;
    auto copy = [&](std::size_t n) {
        out += graph.substr(p, n);
        p += n;
    };
    auto u32 = [&](std::size_t at) {
        std::uint32_t v;
        std::memcpy(&v, graph.data() + at, 4);
        return v;
    };
    const auto tensors = u32(0);
    copy(4);
    for (std::uint32_t t = 0; t < tensors; ++t) {
        copy(4 + u32(p));  // name
        const bool constant = graph[p + 1] == 1;
        const auto rank = static_cast<std::uint8_t>(graph[p + 2]);
        copy(4 + 4u * rank);
        copy(4 + 8u * u32(p) + 4);  // quant_count, scales, zero points, axis
        if (constant) {
            copy(16);
            EXPECT_EQ(graph[p], 0) << "only dense constants have a version 1 form";
            p += 4;
        }
    }
    out += graph.substr(p);
    std::memcpy(b.data() + goff, out.data(), out.size());
    std::fill(b.begin() + static_cast<std::ptrdiff_t>(goff + out.size()), b.begin() + static_cast<std::ptrdiff_t>(goff + gsize), '\0');
    const std::uint64_t new_size = out.size();
    std::memcpy(b.data() + 64 + 16, &new_size, 8);
    const std::uint32_t version = 1;
    std::memcpy(b.data() + 8, &version, 4);
    const std::uint32_t gcrc = crc32(out.data(), out.size());
    std::memcpy(b.data() + 64 + 24, &gcrc, 4);
    const std::string covered = b.substr(0, 24) + b.substr(64, 96);
    const std::uint32_t hcrc = crc32(covered.data(), covered.size());
    std::memcpy(b.data() + 24, &hcrc, 4);
    return b;
}

TEST(WeightCodecEngine, ReadsVersion1Files) {
    GraphMaker m(4);
    auto x = m.input({1, 5, 5, 3});
    auto c = m.conv(x, 8, 3, 1, {1, 1, 1, 1}, Activation::Relu);
    auto logits = m.fc(m.pool(c), 3);
    m.g.outputs = {m.softmax(logits), logits};
    m.g.metadata.size = m.g.metadata.resize_shorter = 5;
    const std::string v2 = serialize(m.g);
    const std::string v1 = as_version1(v2);
    ASSERT_NE(v1, v2);
    auto owner = std::make_shared<std::string>(v1);
    const Graph back = parse_engine(reinterpret_cast<const std::uint8_t*>(owner->data()), owner->size(), owner, "v1.fse");
    const auto input = m.random(75);
    EXPECT_EQ(testing::reference_output(m.g, input, 1), testing::reference_output(back, input, 1));
    EXPECT_EQ(serialize(back), v2);  // written back as version 2
}

}  // namespace
}  // namespace firesight::engine
