// Image decoding and the inference preprocessing shared by predict, eval, train and watch:
// decode by content (JPEG, PNG, BMP, whatever the file name says), BGR -> RGB, resize the
// shorter side, centre crop, normalise as the model expects.
#pragma once
#include <opencv2/core.hpp>

#include <filesystem>
#include <string>

namespace firesight::data {

// Decodes an image file by its content. Throws firesight::Error naming the file and the reason
// (missing, empty, not an image) instead of returning an empty matrix.
cv::Mat decode_image(const std::filesystem::path& path);
cv::Mat decode_image_bytes(const void* data, std::size_t size, const std::string& name);

struct Preprocess {
    int size = 224;           // output is size x size
    int resize_shorter = 224; // the shorter side is resized to this, then centre-cropped
    float mean = 127.5f;      // value = (pixel - mean) * scale, per RGB channel
    float scale = 1.0f / 127.5f;
};

// BGR 8-bit image in, RGB 8-bit size x size crop out.
cv::Mat resize_and_crop(const cv::Mat& bgr, const Preprocess& p);
// The part of an image of this size that resize_and_crop keeps (the model's view), in image pixels.
cv::Rect model_view(cv::Size image, const Preprocess& p);
// BGR 8-bit image in, RGB float32 HWC (size x size x 3) normalised out.
cv::Mat preprocess(const cv::Mat& bgr, const Preprocess& p);

}  // namespace firesight::data
