// Decoding large JPEGs at a reduced size: the JPEG decoder scales by 1/2, 1/4 or 1/8 in the DCT,
// several times faster than decoding every pixel and shrinking afterwards. For the trainer, whose
// input is 224 px however large the photo.
#pragma once
#include <opencv2/core.hpp>

#include <cstddef>
#include <filesystem>
#include <string>

namespace firesight::data {

// Like decode_image (firesight/image.h), but a JPEG whose shorter side is at least 2, 4 or 8 times
// `min_shorter` is decoded at 1/2, 1/4 or 1/8 of its size, so the result's shorter side stays
// >= min_shorter. Other formats, and min_shorter <= 0, decode at full size.
cv::Mat decode_image(const std::filesystem::path& path, int min_shorter);
// decode_image_bytes with cv::imdecode flags of the caller's choice (same checks and errors).
cv::Mat decode_image_bytes(const void* data, std::size_t size, const std::string& name, int imread_flags);
// Width and height from a JPEG's frame header (SOFn), without decoding; an empty size when the
// bytes are no JPEG or the frame header is not within them.
cv::Size jpeg_size(const void* data, std::size_t size);

}  // namespace firesight::data
