#include <string>

#include "firesight/compress/cluster.h"
#include "firesight/common/error.h"
#include "firesight/engine/weight_codec.h"

namespace firesight::compress {

// One implementation of the bit packing: the engine's loader expands palettes with it, so it
// lives in the runtime library and the toolchain forwards to it.
int palette_bits(std::size_t k) { return engine::palette_bits(k); }

std::size_t packed_size_bytes(std::size_t count, int bits) { return engine::packed_size_bytes(count, bits); }

std::vector<std::uint8_t> pack_indices(std::span<const std::uint16_t> indices, int bits) { return engine::pack_indices(indices, bits); }

std::vector<std::uint16_t> unpack_indices(std::span<const std::uint8_t> packed, std::size_t count, int bits) {
    return engine::unpack_indices(packed, count, bits);
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
