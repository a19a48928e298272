// Weight clustering for the compression stage: per-layer 1-D k-means, and the palette format
// (k centroids + indices packed at ceil(log2 k) bits each) that the engine stores and expands at load.
// Torch-free; centroid fine-tuning on a libtorch model is in compress_torch.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace firesight::compress {

enum class CentroidInit {
    Linear,   // evenly spaced from min to max: keeps the rare large weights representable
    Density,  // quantiles of the weights' distribution (CDF): more centroids where weights are dense
};

struct KMeansOptions {
    int k = 16;                // 2 .. 65536 (the engine uses 8 .. 256)
    CentroidInit init = CentroidInit::Density;
    int max_iterations = 30;
    double tolerance = 1e-7;   // stop when the squared error improves by less than this fraction
    // Exact zeros (from pruning) get a centroid fixed at 0 and the other k - 1 centroids cluster the
    // rest, so clustering never undoes sparsity.
    bool preserve_zeros = false;
};

struct Clustering {
    std::vector<float> centroids;         // ascending
    std::vector<std::uint16_t> indices;   // one per weight, into centroids
    std::vector<double> error_history;    // sum of squared errors after each assignment
    int zero_centroid = -1;               // index of the fixed zero centroid, or -1
    double squared_error() const { return error_history.empty() ? 0.0 : error_history.back(); }
    std::vector<float> values() const;    // centroids[indices]
};

// Initial centroids (ascending, may repeat on data with many ties).
std::vector<float> initial_centroids(std::span<const float> weights, int k, CentroidInit init);

// Lloyd's algorithm in 1-D: assignment by binary search on the midpoints between sorted centroids,
// so each iteration is O(n log k); deterministic (no random init, ties go to the lower centroid).
// The squared error never increases from one iteration to the next.
Clustering kmeans_1d(std::span<const float> weights, const KMeansOptions& opt);
// Same, from given initial centroids (any order; sorted first). opt.k and opt.init are ignored.
Clustering kmeans_1d(std::span<const float> weights, std::vector<float> initial, const KMeansOptions& opt);

// ---- palette format -------------------------------------------------------------------------
// Indices are a little-endian bit stream: index i occupies bits [i*b, (i+1)*b) counted from the
// least significant bit of byte 0; the last byte is zero-padded. b = palette_bits(k).
int palette_bits(std::size_t k);
std::size_t packed_size_bytes(std::size_t count, int bits);
std::vector<std::uint8_t> pack_indices(std::span<const std::uint16_t> indices, int bits);
// Throws firesight::Error when `packed` is shorter than packed_size_bytes(count, bits).
std::vector<std::uint16_t> unpack_indices(std::span<const std::uint8_t> packed, std::size_t count, int bits);

struct Palette {
    std::vector<float> centroids;
    std::size_t count = 0;              // number of weights
    int bits = 0;
    std::vector<std::uint8_t> packed;   // packed_size_bytes(count, bits) bytes
};
// Throws firesight::Error when an index is not below the number of centroids.
Palette make_palette(const Clustering& c);
// centroids[index] for every weight, checking every index against the palette size.
std::vector<float> expand_palette(const Palette& p);

}  // namespace firesight::compress
