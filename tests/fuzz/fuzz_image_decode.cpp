// libFuzzer target: image decoding as predict, train, eval and watch do it
// (data::decode_image_bytes, then the inference preprocessing). Any input must be decoded or
// refused with firesight::Error; crashes and sanitizer reports in firesight's code are bugs.
// OpenCV itself is Debian's uninstrumented build: ASan checks firesight's side of the calls only.
// Run it with -malloc_limit_mb=4096 (scripts/fuzz.sh does): OpenCV allows images up to 2^30
// pixels and reserves the whole image before decoding, so a 259-byte TIFF header claiming 854M
// pixels mallocs 2.5 GB, which libFuzzer would report as out of memory although the pages are
// never touched (peak RSS stayed at 440 MB) and the file is then refused. OpenCV reads its pixel
// limit (OPENCV_IO_MAX_IMAGE_PIXELS) once when it loads, too early for the fuzzer to lower it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "firesight/common/error.h"
#include "firesight/data/image.h"

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
