#include <string>

#include "firesight/cluster.h"
#include "firesight/error.h"

namespace firesight::compress {

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
        if (v >= limit) throw Error("palette: index " + std::to_string(v) + " at " + std::to_string(i) + " does not fit in " + std::to_string(bits) + " bits");
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
        for (std::size_t byte = bit / 8, s = 0; s < 24 && byte < packed.size(); ++byte, s += 8)
            window |= static_cast<std::uint32_t>(packed[byte]) << s;
        out[i] = static_cast<std::uint16_t>((window >> (bit % 8)) & mask);
    }
    return out;
}

Palette make_palette(const Clustering& c) {
    Palette p;
    p.centroids = c.centroids;
    p.count = c.indices.size();
    p.bits = palette_bits(c.centroids.size());
    for (std::size_t i = 0; i < c.indices.size(); ++i)
        if (c.indices[i] >= c.centroids.size())
            throw Error("palette: index " + std::to_string(c.indices[i]) + " of weight " + std::to_string(i) + " is past the " +
                        std::to_string(c.centroids.size()) + " centroids");
    p.packed = pack_indices(c.indices, p.bits);
    return p;
}

std::vector<float> expand_palette(const Palette& p) {
    if (p.centroids.empty()) throw Error("palette: no centroids");
    if (p.bits != palette_bits(p.centroids.size()))
        throw Error("palette: " + std::to_string(p.bits) + " bits per index does not match " + std::to_string(p.centroids.size()) + " centroids");
    const auto idx = unpack_indices(p.packed, p.count, p.bits);
    std::vector<float> out(p.count);
    for (std::size_t i = 0; i < p.count; ++i) {
        if (idx[i] >= p.centroids.size())
            throw Error("palette: index " + std::to_string(idx[i]) + " of weight " + std::to_string(i) + " is past the " +
                        std::to_string(p.centroids.size()) + " centroids");
        out[i] = p.centroids[idx[i]];
    }
    return out;
}

}  // namespace firesight::compress
