// The frame size of a JPEG, read from its SOFn header without decoding, so that large photos can
// be decoded at a reduced scale (decode_image with min_shorter). The bytes are untrusted: every
// length is checked against the buffer.
#include <cstdint>

#include "firesight/data/reduced_decode.h"

namespace firesight::data {

cv::Size jpeg_size(const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    if (size < 4 || p[0] != 0xFF || p[1] != 0xD8) return {};
    std::size_t i = 2;
    while (i + 4 <= size) {
        if (p[i] != 0xFF) return {};  // not at a marker: not a well-formed header
        const std::uint8_t marker = p[i + 1];
        if (marker == 0xFF) {  // fill byte
            ++i;
            continue;
        }
        if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
            i += 2;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) return {};  // end of image or start of scan before any frame header
        const std::size_t len = (static_cast<std::size_t>(p[i + 2]) << 8) | p[i + 3];
        if (len < 2 || i + 2 + len > size) return {};
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): length, precision, height, width.
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            if (len < 7) return {};
            const int h = (p[i + 5] << 8) | p[i + 6], w = (p[i + 7] << 8) | p[i + 8];
            return {w, h};
        }
        i += 2 + len;
    }
    return {};
}

}  // namespace firesight::data
