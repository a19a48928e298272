// Encoder and checked decoder of constant tensors' element bytes (see weight_codec.h and
// docs/engine-format.md). Elements are compared as bit patterns, so every encoding round-trips
// bit-exactly, NaN payloads and -0.0f included.
#include "firesight/engine/weight_codec.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_set>

#include "firesight/engine/ir.h"
#include "firesight/common/error.h"

namespace firesight::engine {

int palette_bits(std::size_t k) {
    if (k < 1 || k > 65536) throw Error("palette: " + std::to_string(k) + " centroids is not in [1, 65536]");
    int b = 0;
    while ((std::size_t{1} << b) < k) ++b;
    return b;
}

std::size_t packed_size_bytes(std::size_t count, int bits) { return (count * static_cast<std::size_t>(bits) + 7) / 8; }

std::vector<std::uint8_t> pack_indices(std::span<const std::uint16_t> indices, int bits) {
    if (bits < 0 || bits > 16) throw Error("palette: " + std::to_string(bits) + " bits per index is not in [0, 16]");
    std::vector<std::uint8_t> out(packed_size_bytes(indices.size(), bits), 0);
    const std::uint32_t limit = 1u << bits;
    std::size_t bit = 0;
    for (std::size_t i = 0; i < indices.size(); ++i, bit += static_cast<std::size_t>(bits)) {
        const std::uint32_t v = indices[i];
        if (v >= limit)
            throw Error("palette: index " + std::to_string(v) + " at " + std::to_string(i) + " does not fit in " + std::to_string(bits) + " bits");
        // An index spans at most 3 bytes (16 bits starting at any bit offset).
        const std::uint32_t shifted = v << (bit % 8);
        for (std::size_t byte = bit / 8, s = 0; s < 24 && byte < out.size(); ++byte, s += 8)
            out[byte] |= static_cast<std::uint8_t>(shifted >> s);
    }
    return out;
}

std::vector<std::uint16_t> unpack_indices(std::span<const std::uint8_t> packed, std::size_t count, int bits) {
    if (bits < 0 || bits > 16) throw Error("palette: " + std::to_string(bits) + " bits per index is not in [0, 16]");
    const std::size_t need = packed_size_bytes(count, bits);
    if (packed.size() < need)
        throw Error("palette: " + std::to_string(count) + " indices of " + std::to_string(bits) + " bits need " + std::to_string(need) +
                    " bytes, only " + std::to_string(packed.size()) + " given");
    std::vector<std::uint16_t> out(count, 0);
    const std::uint32_t mask = (1u << bits) - 1;
    std::size_t bit = 0;
    for (std::size_t i = 0; i < count; ++i, bit += static_cast<std::size_t>(bits)) {
        std::uint32_t window = 0;
        for (std::size_t byte = bit / 8, s = 0; s < 24 && byte < need; ++byte, s += 8)
            window |= static_cast<std::uint32_t>(packed[byte]) << s;
        out[i] = static_cast<std::uint16_t>((window >> (bit % 8)) & mask);
    }
    return out;
}

const char* weight_encoding_name(WeightEncoding e) {
    switch (e) {
        case WeightEncoding::Dense: return "dense";
        case WeightEncoding::Palette: return "palette";
        case WeightEncoding::Sparse: return "sparse";
        case WeightEncoding::SparsePalette: return "sparse+palette";
    }
    return "unknown";
}

namespace {

void check_element_size(std::size_t element_size) {
    if (element_size != 1 && element_size != 4)
        throw Error("weight codec: element size " + std::to_string(element_size) + " is not 1 or 4");
}

// Element i as an integer bit pattern, whatever the element size.
std::uint32_t element(const std::uint8_t* p, std::size_t i, std::size_t element_size) {
    if (element_size == 1) return p[i];
    std::uint32_t v;
    std::memcpy(&v, p + i * 4, 4);
    return v;
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    std::uint8_t b[4];
    std::memcpy(b, &v, 4);
    out.insert(out.end(), b, b + 4);
}

void put_element(std::vector<std::uint8_t>& out, std::uint32_t v, std::size_t element_size) {
    std::uint8_t b[4];
    std::memcpy(b, &v, 4);
    out.insert(out.end(), b, b + element_size);
}

constexpr std::size_t kU32 = 4;
std::size_t bitmap_bytes(std::size_t count) { return (count + 7) / 8; }

// The distinct values of `p` (all or only the nonzero ones), ascending, or empty when there are
// more than kMaxPaletteSize.
std::vector<std::uint32_t> palette_of(const std::uint8_t* p, std::size_t count, std::size_t element_size, bool nonzero_only) {
    std::unordered_set<std::uint32_t> seen;
    for (std::size_t i = 0; i < count; ++i) {
        const auto v = element(p, i, element_size);
        if (nonzero_only && v == 0) continue;
        if (seen.insert(v).second && seen.size() > kMaxPaletteSize) return {};
    }
    std::vector<std::uint32_t> pal(seen.begin(), seen.end());
    std::sort(pal.begin(), pal.end());
    return pal;
}

std::uint16_t index_in(const std::vector<std::uint32_t>& pal, std::uint32_t v) {
    return static_cast<std::uint16_t>(std::lower_bound(pal.begin(), pal.end(), v) - pal.begin());
}

void append_palette_and_indices(std::vector<std::uint8_t>& out, const std::uint8_t* p, std::size_t count, std::size_t element_size,
                                const std::vector<std::uint32_t>& pal, bool nonzero_only) {
    for (auto v : pal) put_element(out, v, element_size);
    std::vector<std::uint16_t> idx;
    idx.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto v = element(p, i, element_size);
        if (nonzero_only && v == 0) continue;
        idx.push_back(index_in(pal, v));
    }
    const auto packed = pack_indices(idx, palette_bits(pal.size()));
    out.insert(out.end(), packed.begin(), packed.end());
}

void append_bitmap(std::vector<std::uint8_t>& out, const std::uint8_t* p, std::size_t count, std::size_t element_size) {
    const std::size_t start = out.size();
    out.resize(start + bitmap_bytes(count), 0);
    for (std::size_t i = 0; i < count; ++i)
        if (element(p, i, element_size) != 0) out[start + i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
}

// A bounds-checked cursor over one tensor's encoded bytes; failures name the tensor and field.
class Cursor {
public:
    Cursor(const std::uint8_t* p, std::size_t n, const std::string& what, WeightEncoding e) : p_(p), n_(n), what_(what), e_(e) {}
    std::uint32_t u32(const char* field) {
        const auto* b = take(kU32, field);
        std::uint32_t v;
        std::memcpy(&v, b, 4);
        return v;
    }
    const std::uint8_t* take(std::uint64_t k, const char* field) {
        if (k > n_ - pos_)
            fail(std::string(field) + " needs " + std::to_string(k) + " bytes at byte " + std::to_string(pos_) + " but only " +
                 std::to_string(n_ - pos_) + " remain (truncated)");
        const auto* b = p_ + pos_;
        pos_ += static_cast<std::size_t>(k);
        return b;
    }
    void expect_end() const {
        if (pos_ != n_) fail(std::to_string(n_ - pos_) + " unexpected bytes after the encoded values (weight_bytes is too large)");
    }
    [[noreturn]] void fail(const std::string& msg) const {
        throw Error(what_ + ": " + weight_encoding_name(e_) + " weights: " + msg);
    }

private:
    const std::uint8_t* p_;
    std::size_t n_, pos_ = 0;
    const std::string& what_;
    WeightEncoding e_;
};

std::uint32_t palette_size(Cursor& c, std::size_t max_k, const char* field) {
    const auto k = c.u32(field);
    if (k < 1 || k > kMaxPaletteSize || k > max_k)
        c.fail(std::string(field) + " is " + std::to_string(k) + ", must be 1.." + std::to_string(std::min(kMaxPaletteSize, max_k)));
    return k;
}

// Reads the packed palette indices of `n` elements and calls emit(i, palette entry pointer) for
// each, checking every index against k and that the bits after the last index are zero.
template <class Emit>
void read_indices(Cursor& c, const std::uint8_t* palette, std::size_t k, std::size_t n, std::size_t element_size, Emit emit) {
    const int bits = palette_bits(k);
    const std::size_t bytes = packed_size_bytes(n, bits);
    const auto* packed = c.take(bytes, "indices");
    const std::uint32_t mask = (1u << bits) - 1;
    std::size_t bit = 0;
    for (std::size_t i = 0; i < n; ++i, bit += static_cast<std::size_t>(bits)) {
        std::uint32_t window = 0;
        for (std::size_t byte = bit / 8, s = 0; s < 24 && byte < bytes; ++byte, s += 8) window |= static_cast<std::uint32_t>(packed[byte]) << s;
        const std::uint32_t index = (window >> (bit % 8)) & mask;
        if (index >= k)
            c.fail("index " + std::to_string(index) + " of value " + std::to_string(i) + " is past the palette of " + std::to_string(k) + " values");
        emit(i, palette + index * element_size);
    }
    const std::size_t used = n * static_cast<std::size_t>(bits);
    if (used % 8 != 0 && (packed[bytes - 1] >> (used % 8)) != 0) c.fail("indices: the padding bits after the last index are not zero");
}

// The bitmap's set bits, checked against the stated nonzero count and zero padding.
const std::uint8_t* read_bitmap(Cursor& c, std::size_t count, std::size_t nonzeros) {
    const auto* bitmap = c.take(bitmap_bytes(count), "bitmap");
    std::size_t set = 0;
    for (std::size_t b = 0; b < bitmap_bytes(count); ++b) set += static_cast<std::size_t>(std::popcount(bitmap[b]));
    if (count % 8 != 0 && (bitmap[count / 8] >> (count % 8)) != 0) c.fail("bitmap: the padding bits after the last element are not zero");
    if (set != nonzeros)
        c.fail("bitmap has " + std::to_string(set) + " nonzero elements but nonzero_count says " + std::to_string(nonzeros));
    return bitmap;
}

}  // namespace

WeightStats weight_stats(const void* elements, std::size_t count, std::size_t element_size) {
    check_element_size(element_size);
    const auto* p = static_cast<const std::uint8_t*>(elements);
    WeightStats s;
    s.count = count;
    s.element_size = element_size;
    std::unordered_set<std::uint32_t> seen;
    bool zero_seen = false;
    for (std::size_t i = 0; i < count; ++i) {
        const auto v = element(p, i, element_size);
        if (v == 0) {
            zero_seen = true;
            continue;
        }
        ++s.nonzeros;
        if (seen.size() <= kMaxPaletteSize) seen.insert(v);
    }
    s.distinct_nonzero = seen.size();
    s.distinct = std::min(seen.size() + (zero_seen ? 1 : 0), kMaxPaletteSize + 1);
    return s;
}

std::uint64_t encoded_size(WeightEncoding e, const WeightStats& s) {
    const std::uint64_t n = s.count, es = s.element_size;
    switch (e) {
        case WeightEncoding::Dense:
            return n * es;
        case WeightEncoding::Palette:
            if (s.distinct < 1 || s.distinct > kMaxPaletteSize) return 0;
            return kU32 + s.distinct * es + packed_size_bytes(s.count, palette_bits(s.distinct));
        case WeightEncoding::Sparse:
            return kU32 + bitmap_bytes(s.count) + s.nonzeros * es;
        case WeightEncoding::SparsePalette:
            if (s.distinct_nonzero < 1 || s.distinct_nonzero > kMaxPaletteSize) return 0;
            return 2 * kU32 + bitmap_bytes(s.count) + s.distinct_nonzero * es +
                   packed_size_bytes(s.nonzeros, palette_bits(s.distinct_nonzero));
    }
    return 0;
}

EncodedWeights encode_weights_as(WeightEncoding e, const void* elements, std::size_t count, std::size_t element_size) {
    check_element_size(element_size);
    const auto* p = static_cast<const std::uint8_t*>(elements);
    EncodedWeights out;
    out.encoding = e;
    auto& b = out.bytes;
    switch (e) {
        case WeightEncoding::Dense:
            b.assign(p, p + count * element_size);
            break;
        case WeightEncoding::Palette: {
            const auto pal = palette_of(p, count, element_size, false);
            if (pal.empty()) throw Error("weight codec: more than 256 distinct values (or none) cannot be stored as a palette");
            put_u32(b, static_cast<std::uint32_t>(pal.size()));
            append_palette_and_indices(b, p, count, element_size, pal, false);
            break;
        }
        case WeightEncoding::Sparse: {
            std::size_t nz = 0;
            for (std::size_t i = 0; i < count; ++i) nz += element(p, i, element_size) != 0;
            put_u32(b, static_cast<std::uint32_t>(nz));
            append_bitmap(b, p, count, element_size);
            for (std::size_t i = 0; i < count; ++i)
                if (const auto v = element(p, i, element_size); v != 0) put_element(b, v, element_size);
            break;
        }
        case WeightEncoding::SparsePalette: {
            const auto pal = palette_of(p, count, element_size, true);
            if (pal.empty()) throw Error("weight codec: no nonzeros, or more than 256 distinct ones, cannot be stored as sparse + palette");
            std::size_t nz = 0;
            for (std::size_t i = 0; i < count; ++i) nz += element(p, i, element_size) != 0;
            put_u32(b, static_cast<std::uint32_t>(nz));
            put_u32(b, static_cast<std::uint32_t>(pal.size()));
            append_bitmap(b, p, count, element_size);
            append_palette_and_indices(b, p, count, element_size, pal, true);
            break;
        }
    }
    return out;
}

EncodedWeights encode_weights(const void* elements, std::size_t count, std::size_t element_size) {
    const auto s = weight_stats(elements, count, element_size);
    WeightEncoding best = WeightEncoding::Dense;
    std::uint64_t best_size = encoded_size(best, s);
    for (auto e : {WeightEncoding::Palette, WeightEncoding::Sparse, WeightEncoding::SparsePalette}) {
        const auto size = encoded_size(e, s);
        if (size != 0 && size < best_size) best = e, best_size = size;
    }
    auto out = encode_weights_as(best, elements, count, element_size);
    if (out.bytes.size() != best_size)  // the arithmetic above and the writer must agree
        throw Error("weight codec: internal error: " + std::string(weight_encoding_name(best)) + " wrote " +
                    std::to_string(out.bytes.size()) + " bytes, expected " + std::to_string(best_size));
    return out;
}

void decode_weights(WeightEncoding e, const std::uint8_t* data, std::size_t size, std::size_t count, std::size_t element_size, void* out,
                    const std::string& what) {
    check_element_size(element_size);
    auto* o = static_cast<std::uint8_t*>(out);
    Cursor c(data, size, what, e);
    switch (e) {
        case WeightEncoding::Dense: {
            std::memcpy(o, c.take(static_cast<std::uint64_t>(count) * element_size, "values"), count * element_size);
            break;
        }
        case WeightEncoding::Palette: {
            const auto k = palette_size(c, count, "palette_size");
            const auto* palette = c.take(static_cast<std::uint64_t>(k) * element_size, "palette");
            read_indices(c, palette, k, count, element_size,
                         [&](std::size_t i, const std::uint8_t* v) { std::memcpy(o + i * element_size, v, element_size); });
            break;
        }
        case WeightEncoding::Sparse: {
            const auto nz = c.u32("nonzero_count");
            if (nz > count) c.fail("nonzero_count " + std::to_string(nz) + " is more than the tensor's " + std::to_string(count) + " elements");
            const auto* bitmap = read_bitmap(c, count, nz);
            const auto* values = c.take(static_cast<std::uint64_t>(nz) * element_size, "values");
            std::memset(o, 0, count * element_size);
            for (std::size_t i = 0, j = 0; i < count; ++i)
                if (bitmap[i / 8] & (1u << (i % 8))) std::memcpy(o + i * element_size, values + element_size * j++, element_size);
            break;
        }
        case WeightEncoding::SparsePalette: {
            const auto nz = c.u32("nonzero_count");
            if (nz < 1 || nz > count)
                c.fail("nonzero_count " + std::to_string(nz) + " is not in 1.." + std::to_string(count) + " (the tensor's elements)");
            const auto k = palette_size(c, nz, "palette_size");
            const auto* bitmap = read_bitmap(c, count, nz);
            const auto* palette = c.take(static_cast<std::uint64_t>(k) * element_size, "palette");
            // The positions of the nonzeros, in order, so the j-th index lands on the j-th set bit.
            std::vector<std::uint32_t> where;
            where.reserve(nz);
            for (std::size_t i = 0; i < count; ++i)
                if (bitmap[i / 8] & (1u << (i % 8))) where.push_back(static_cast<std::uint32_t>(i));
            std::memset(o, 0, count * element_size);
            read_indices(c, palette, k, nz, element_size,
                         [&](std::size_t j, const std::uint8_t* v) { std::memcpy(o + std::size_t{where[j]} * element_size, v, element_size); });
            break;
        }
        default:
            throw Error(what + ": weight encoding " + std::to_string(static_cast<int>(e)) + " is unknown");
    }
    c.expect_end();
}

std::uint64_t encoded_weight_bytes(const Graph& g) {
    std::uint64_t total = 0;
    for (const auto& t : g.tensors) {
        if (!t.constant) continue;
        const auto n = static_cast<std::size_t>(t.element_count());
        const auto s = weight_stats(t.bytes(), n, dtype_size(t.dtype));
        std::uint64_t best = encoded_size(WeightEncoding::Dense, s);
        for (auto e : {WeightEncoding::Palette, WeightEncoding::Sparse, WeightEncoding::SparsePalette})
            if (const auto size = encoded_size(e, s); size != 0 && size < best) best = size;
        total += best;
    }
    return total;
}

}  // namespace firesight::engine
