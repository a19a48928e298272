#include "ppm.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "firesight/common/error.h"
#include "firesight/engine/preprocess.h"

namespace firesight::run {

RgbImage decode_ppm(const std::vector<std::uint8_t>& b, const std::string& name) {
    std::size_t pos = 0;
    auto skip_space = [&] {
        while (pos < b.size()) {
            if (b[pos] == '#') {
                while (pos < b.size() && b[pos] != '\n') ++pos;
            } else if (std::isspace(b[pos])) {
                ++pos;
            } else {
                break;
            }
        }
    };
    auto number = [&](const char* field) {
        skip_space();
        long v = 0;
        std::size_t digits = 0;
        while (pos < b.size() && std::isdigit(b[pos]) && digits < 9) v = v * 10 + (b[pos++] - '0'), ++digits;
        if (digits == 0 || v <= 0) throw Error(name + ": PPM " + field + " is missing or not a positive number");
        return v;
    };
    if (b.size() < 2 || b[0] != 'P' || b[1] != '6') throw Error(name + ": not a binary PPM (P6) image");
    pos = 2;
    RgbImage img;
    const long w = number("width"), h = number("height"), maxval = number("maxval");
    if (maxval != 255) throw Error(name + ": PPM maxval " + std::to_string(maxval) + " is not supported (only 255)");
    if (w > 16384 || h > 16384) throw Error(name + ": PPM is larger than 16384 pixels on a side");
    if (pos >= b.size() || !std::isspace(b[pos])) throw Error(name + ": PPM header is malformed");
    ++pos;
    const std::size_t need = static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3;
    if (b.size() - pos < need) throw Error(name + ": PPM pixel data is truncated");
    img.width = static_cast<int>(w);
    img.height = static_cast<int>(h);
    img.rgb.assign(b.begin() + static_cast<long>(pos), b.begin() + static_cast<long>(pos + need));
    return img;
}

std::vector<float> preprocess(const RgbImage& img, const engine::Metadata& m) {
    return engine::preprocess_rgb(img.rgb.data(), img.width, img.height, static_cast<std::size_t>(img.width) * 3, m);
}

}  // namespace firesight::run
