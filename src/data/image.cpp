#include "firesight/data/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cctype>
#include <cstring>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/data/reduced_decode.h"

namespace firesight::data {

namespace {

// The formats firesight reads (those calibration and dataset folders list), told by their first
// bytes. Anything else never reaches cv::imdecode: Debian's OpenCV also hands bytes to GDAL, GDCM
// (DICOM), OpenJPEG and more, and a crafted DICOM file made GDCM abort the whole process on an
// assert (found by tests/fuzz/fuzz_image_decode).
bool supported_format(const unsigned char* p, std::size_t n) {
    auto starts = [&](const char* magic, std::size_t k) { return n >= k && std::memcmp(p, magic, k) == 0; };
    // OpenCV tries its DICOM decoder on any file with "DICM" at byte 128, whatever comes first.
    if (n >= 132 && std::memcmp(p + 128, "DICM", 4) == 0) return false;
    return starts("\xFF\xD8\xFF", 3)                                            // JPEG
           || starts("\x89PNG\r\n\x1A\n", 8)                                  // PNG
           || starts("BM", 2)                                                   // BMP
           || (starts("RIFF", 4) && n >= 12 && std::memcmp(p + 8, "WEBP", 4) == 0)  // WebP
           || starts("II*\0", 4) || starts("MM\0*", 4)                           // TIFF
           || (n >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '6' && std::isspace(p[2]));  // PBM, PGM, PPM
}

}  // namespace

cv::Mat decode_image_bytes(const void* data, std::size_t size, const std::string& name, int flags) {
    if (size == 0) throw Error(name + ": empty file, not an image");
    if (!supported_format(static_cast<const unsigned char*>(data), size))
        throw Error(name + ": not a decodable image (JPEG, PNG, BMP, WebP, TIFF or PPM/PGM)");
    const cv::Mat buf(1, static_cast<int>(size), CV_8UC1, const_cast<void*>(data));
    cv::Mat img;
    try {
        img = cv::imdecode(buf, flags);
    } catch (const cv::Exception& e) {
        throw Error(name + ": cannot decode image: " + e.what());
    }
    if (img.empty()) throw Error(name + ": not a decodable image (JPEG, PNG, BMP, WebP, TIFF or PPM/PGM)");
    if (img.rows < 8 || img.cols < 8)
        throw Error(name + ": image is " + std::to_string(img.cols) + "x" + std::to_string(img.rows) + ", too small");
    return img;
}

cv::Mat decode_image_bytes(const void* data, std::size_t size, const std::string& name) {
    return decode_image_bytes(data, size, name, cv::IMREAD_COLOR);
}

cv::Mat decode_image(const std::filesystem::path& path, int min_shorter) {
    const auto bytes = read_file_bytes(path);
    int flags = cv::IMREAD_COLOR;
    if (min_shorter > 0) {
        const auto s = jpeg_size(bytes.data(), bytes.size());
        const int shorter = std::min(s.width, s.height);
        if (shorter >= 8 * min_shorter) flags = cv::IMREAD_REDUCED_COLOR_8;
        else if (shorter >= 4 * min_shorter) flags = cv::IMREAD_REDUCED_COLOR_4;
        else if (shorter >= 2 * min_shorter) flags = cv::IMREAD_REDUCED_COLOR_2;
    }
    return decode_image_bytes(bytes.data(), bytes.size(), path.string(), flags);
}

cv::Mat decode_image(const std::filesystem::path& path) {
    // Reading the bytes ourselves (rather than cv::imread) decodes by content, so a PNG named
    // .jpg loads, and names with spaces, quotes or ';' need no care.
    const auto bytes = read_file_bytes(path);
    return decode_image_bytes(bytes.data(), bytes.size(), path.string());
}

namespace {
// Where resize_and_crop resizes an image of this size to, and the crop it keeps of that.
struct ResizeCrop {
    double factor = 1.0;
    cv::Size resized;
    cv::Rect crop;
};
ResizeCrop resize_crop_geometry(cv::Size image, const Preprocess& p) {
    const double f = static_cast<double>(p.resize_shorter) / std::min(image.height, image.width);
    const int w = std::max(p.size, static_cast<int>(std::lround(image.width * f)));
    const int h = std::max(p.size, static_cast<int>(std::lround(image.height * f)));
    return {f, cv::Size(w, h), cv::Rect((w - p.size) / 2, (h - p.size) / 2, p.size, p.size)};
}
}  // namespace

cv::Mat resize_and_crop(const cv::Mat& bgr, const Preprocess& p) {
    if (bgr.empty() || bgr.type() != CV_8UC3) throw Error("preprocess: expected an 8-bit 3-channel image");
    const auto g = resize_crop_geometry(bgr.size(), p);
    cv::Mat resized;
    cv::resize(bgr, resized, g.resized, 0, 0, g.factor < 1.0 ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::Mat rgb;
    cv::cvtColor(resized(g.crop), rgb, cv::COLOR_BGR2RGB);
    return rgb;
}

cv::Rect model_view(cv::Size image, const Preprocess& p) {
    if (image.width <= 0 || image.height <= 0) throw Error("model_view: empty image");
    const auto g = resize_crop_geometry(image, p);
    const double sx = static_cast<double>(image.width) / g.resized.width, sy = static_cast<double>(image.height) / g.resized.height;
    const int x0 = static_cast<int>(std::lround(g.crop.x * sx)), y0 = static_cast<int>(std::lround(g.crop.y * sy));
    const int x1 = static_cast<int>(std::lround(g.crop.br().x * sx)), y1 = static_cast<int>(std::lround(g.crop.br().y * sy));
    return cv::Rect(x0, y0, std::max(1, x1 - x0), std::max(1, y1 - y0)) & cv::Rect(cv::Point(0, 0), image);
}

cv::Mat preprocess(const cv::Mat& bgr, const Preprocess& p) {
    cv::Mat out;
    resize_and_crop(bgr, p).convertTo(out, CV_32FC3, p.scale, -p.mean * p.scale);
    return out;
}

}  // namespace firesight::data
