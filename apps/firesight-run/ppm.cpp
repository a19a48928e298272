#include "ppm.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "firesight/common/error.h"

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
    const double f = static_cast<double>(m.resize_shorter) / std::min(img.width, img.height);
    const int rw = std::max(m.size, static_cast<int>(std::lround(img.width * f)));
    const int rh = std::max(m.size, static_cast<int>(std::lround(img.height * f)));
    const int x0 = (rw - m.size) / 2, y0 = (rh - m.size) / 2;
    std::vector<float> out(static_cast<std::size_t>(m.size) * m.size * 3);
    for (int y = 0; y < m.size; ++y)
        for (int x = 0; x < m.size; ++x) {
            // Pixel centres map as in a half-pixel-aligned bilinear resize.
            const double sx = std::clamp((x + x0 + 0.5) * img.width / rw - 0.5, 0.0, img.width - 1.0);
            const double sy = std::clamp((y + y0 + 0.5) * img.height / rh - 0.5, 0.0, img.height - 1.0);
            const int ix = static_cast<int>(sx), iy = static_cast<int>(sy);
            const int ix1 = std::min(ix + 1, img.width - 1), iy1 = std::min(iy + 1, img.height - 1);
            const double fx = sx - ix, fy = sy - iy;
            for (int c = 0; c < 3; ++c) {
                auto px = [&](int xx, int yy) { return img.rgb[(static_cast<std::size_t>(yy) * img.width + xx) * 3 + c]; };
                const double v = (px(ix, iy) * (1 - fx) + px(ix1, iy) * fx) * (1 - fy) + (px(ix, iy1) * (1 - fx) + px(ix1, iy1) * fx) * fy;
                out[(static_cast<std::size_t>(y) * m.size + x) * 3 + c] = static_cast<float>((std::round(v) - m.mean) * m.scale);
            }
        }
    return out;
}

}  // namespace firesight::run
