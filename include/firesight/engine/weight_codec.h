// Compact storage of one constant tensor's element bytes in the engine file: dense, palette
// (<= 256 distinct values + packed indices), sparse (bitmap + nonzeros) and sparse + palette.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace firesight::engine {

struct Graph;

// ---- bit packing (shared with the toolchain's clustering, firesight::compress) ---------------
// Indices are a little-endian bit stream: index i occupies bits [i*b, (i+1)*b) counted from the
// least significant bit of byte 0; the bits after the last index are zero. b = palette_bits(k).
int palette_bits(std::size_t k);  // ceil(log2 k); 0 for k = 1. Throws for k outside [1, 65536].
std::size_t packed_size_bytes(std::size_t count, int bits);
std::vector<std::uint8_t> pack_indices(std::span<const std::uint16_t> indices, int bits);
// Throws firesight::Error when `packed` is shorter than packed_size_bytes(count, bits).
std::vector<std::uint16_t> unpack_indices(std::span<const std::uint8_t> packed, std::size_t count, int bits);

// ---- one tensor's encodings (docs/engine-format.md has them byte by byte) --------------------
enum class WeightEncoding : std::uint8_t { Dense = 0, Palette = 1, Sparse = 2, SparsePalette = 3 };
const char* weight_encoding_name(WeightEncoding e);

constexpr std::size_t kMaxPaletteSize = 256;

// What the encoder learned about a tensor's elements; every encoding's size follows from it.
// An element is "zero" when all its bytes are zero (so -0.0f is a nonzero and survives exactly).
struct WeightStats {
    std::size_t count = 0, element_size = 0;
    std::size_t nonzeros = 0;
    std::size_t distinct = 0;           // distinct element values, counted up to kMaxPaletteSize + 1
    std::size_t distinct_nonzero = 0;   // distinct nonzero values, likewise
};
WeightStats weight_stats(const void* elements, std::size_t count, std::size_t element_size);
// Bytes of `e` for a tensor with these statistics; 0 when `e` cannot encode it (too many values).
std::uint64_t encoded_size(WeightEncoding e, const WeightStats& s);

struct EncodedWeights {
    WeightEncoding encoding = WeightEncoding::Dense;
    std::vector<std::uint8_t> bytes;
};
// The smallest encoding of `count` elements of `element_size` (1 or 4) bytes; on a tie the
// earlier of dense, palette, sparse, sparse + palette (dense can stay memory-mapped).
EncodedWeights encode_weights(const void* elements, std::size_t count, std::size_t element_size);
// The same with the encoding forced (for tests and benches). Throws when `e` cannot hold it.
EncodedWeights encode_weights_as(WeightEncoding e, const void* elements, std::size_t count, std::size_t element_size);

// Expands `size` encoded bytes into count * element_size bytes at `out`. Checks every count,
// size, bit and index against the tensor's `count`; throws firesight::Error starting with `what`
// (the file and tensor) and naming the field on anything inconsistent. Never reads past `size`.
void decode_weights(WeightEncoding e, const std::uint8_t* data, std::size_t size, std::size_t count,
                    std::size_t element_size, void* out, const std::string& what);

// Bytes the constants of `g` take in an engine file's weights section once encoded (without the
// 64-byte alignment padding between them).
std::uint64_t encoded_weight_bytes(const Graph& g);

}  // namespace firesight::engine
