#include "firesight/engine/preprocess.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "firesight/common/error.h"

namespace firesight::engine {

std::vector<float> preprocess_rgb(const std::uint8_t* rgb, int width, int height, std::size_t stride, const Metadata& m) {
    if (!rgb || width <= 0 || height <= 0)
        throw Error("preprocess: empty image (" + std::to_string(width) + "x" + std::to_string(height) + ")");
    if (stride < static_cast<std::size_t>(width) * 3)
        throw Error("preprocess: row stride " + std::to_string(stride) + " is shorter than a row of " + std::to_string(width) +
                    " RGB pixels");
    const double f = static_cast<double>(m.resize_shorter) / std::min(width, height);
    const int rw = std::max(m.size, static_cast<int>(std::lround(width * f)));
    const int rh = std::max(m.size, static_cast<int>(std::lround(height * f)));
    const int x0 = (rw - m.size) / 2, y0 = (rh - m.size) / 2;
    std::vector<float> out(static_cast<std::size_t>(m.size) * m.size * 3);
    for (int y = 0; y < m.size; ++y)
        for (int x = 0; x < m.size; ++x) {
            // Pixel centres map as in a half-pixel-aligned bilinear resize.
            const double sx = std::clamp((x + x0 + 0.5) * width / rw - 0.5, 0.0, width - 1.0);
            const double sy = std::clamp((y + y0 + 0.5) * height / rh - 0.5, 0.0, height - 1.0);
            const int ix = static_cast<int>(sx), iy = static_cast<int>(sy);
            const int ix1 = std::min(ix + 1, width - 1), iy1 = std::min(iy + 1, height - 1);
            const double fx = sx - ix, fy = sy - iy;
            for (int c = 0; c < 3; ++c) {
                auto px = [&](int xx, int yy) { return rgb[static_cast<std::size_t>(yy) * stride + static_cast<std::size_t>(xx) * 3 + c]; };
                const double v = (px(ix, iy) * (1 - fx) + px(ix1, iy) * fx) * (1 - fy) + (px(ix, iy1) * (1 - fx) + px(ix1, iy1) * fx) * fy;
                out[(static_cast<std::size_t>(y) * m.size + x) * 3 + c] = static_cast<float>((std::round(v) - m.mean) * m.scale);
            }
        }
    return out;
}

}  // namespace firesight::engine
