// libFuzzer target: image decoding as predict, train, eval and watch do it
// (data::decode_image_bytes, then the inference preprocessing). Any input must be decoded or
// refused with firesight::Error; crashes and sanitizer reports in firesight's code are bugs.
// OpenCV itself is Debian's uninstrumented build: ASan checks firesight's side of the calls only.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "firesight/error.h"
#include "firesight/image.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // A few header bytes can claim a gigapixel image, which OpenCV (default limit 2^30 pixels)
    // would allocate; the fuzzer's 2 GB RSS limit would report that as a crash. Real photos are
    // far below 2^24 pixels. Set before OpenCV reads it at its first decode.
    setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "16777216", 0);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const cv::Mat bgr = firesight::data::decode_image_bytes(data, size, "fuzz.img");
        const firesight::data::Preprocess p{32, 40, 127.5f, 1.f / 127.5f};
        const cv::Mat x = firesight::data::preprocess(bgr, p);
        if (x.rows != p.size || x.cols != p.size || x.type() != CV_32FC3) std::abort();
    } catch (const firesight::Error&) {
    }
    return 0;
}
