// Just enough image handling for firesight-run without OpenCV: binary PPM (P6) decoding, then the
// engine's preprocessing (firesight/engine/preprocess.h).
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "firesight/engine/session.h"

namespace firesight::run {

struct RgbImage {
    int width = 0, height = 0;
    std::vector<std::uint8_t> rgb;  // row-major, 3 bytes per pixel
};

RgbImage decode_ppm(const std::vector<std::uint8_t>& bytes, const std::string& name);
// size x size x 3 floats, value = (pixel - mean) * scale.
std::vector<float> preprocess(const RgbImage& img, const engine::Metadata& m);

}  // namespace firesight::run
