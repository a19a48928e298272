// An engine's preprocessing on a plain RGB buffer, for programs without OpenCV (firesight-run, the
// C API): resize the shorter side to metadata.resize_shorter, crop the centre size x size, and
// normalise. Bilinear, so results differ slightly from OpenCV's area resize when downscaling.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "firesight/engine/types.h"

namespace firesight::engine {

// `rgb`: height rows of `stride` bytes, 3 bytes (R, G, B) per pixel. Returns the engine's input:
// size x size x 3 floats (NHWC without N), value = (pixel - mean) * scale. Throws firesight::Error
// on an empty image or a stride shorter than a row.
std::vector<float> preprocess_rgb(const std::uint8_t* rgb, int width, int height, std::size_t stride, const Metadata& m);

}  // namespace firesight::engine
