// libFuzzer target: the weight codec. Input: byte 0 picks the encoding, byte 1 the element size
// (1 or 4), bytes 2-3 the element count (u16), the rest is the encoded data. Decoding must either
// succeed or throw firesight::Error, never read outside the data; and the same bytes taken as
// elements must come back bit for bit through encode_weights (every encoding it can take).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "firesight/common/error.h"
#include "firesight/engine/weight_codec.h"

using namespace firesight::engine;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    const auto encoding = static_cast<WeightEncoding>(data[0] % 4);
    const std::size_t es = (data[1] & 1) ? 4 : 1;
    const std::size_t count = static_cast<std::size_t>(data[2]) | static_cast<std::size_t>(data[3]) << 8;
    const std::uint8_t* payload = data + 4;
    const std::size_t n = size - 4;
    // Copied to an exactly sized heap block so the sanitizer sees any read past its end.
    std::vector<std::uint8_t> encoded(payload, payload + n);
    std::vector<std::uint8_t> out(count * es + 1);
    try {
        decode_weights(encoding, encoded.data(), encoded.size(), count, es, out.data(), "fuzz");
    } catch (const firesight::Error&) {
    }
    const std::size_t elements = n / es;
    if (elements == 0) return 0;
    const auto stats = weight_stats(encoded.data(), elements, es);
    for (auto e : {WeightEncoding::Dense, WeightEncoding::Palette, WeightEncoding::Sparse, WeightEncoding::SparsePalette}) {
        if (encoded_size(e, stats) == 0) continue;
        const auto enc = encode_weights_as(e, encoded.data(), elements, es);
        if (enc.bytes.size() != encoded_size(e, stats)) std::abort();
        std::vector<std::uint8_t> back(elements * es);
        decode_weights(e, enc.bytes.data(), enc.bytes.size(), elements, es, back.data(), "fuzz round trip");
        if (std::memcmp(back.data(), encoded.data(), back.size()) != 0) std::abort();
    }
    return 0;
}
