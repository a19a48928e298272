// Reduced-size JPEG decoding: the frame size read from the header, and the scale decode_image
// picks for a wanted shorter side.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <fstream>

#include "firesight/common/error.h"
#include "firesight/data/reduced_decode.h"
#include "test_util.h"

using namespace firesight;

namespace {
std::vector<uchar> jpeg(int w, int h) {
    cv::Mat m(h, w, CV_8UC3);
    cv::randu(m, cv::Scalar::all(0), cv::Scalar::all(255));
    std::vector<uchar> out;
    cv::imencode(".jpg", m, out);
    return out;
}
}  // namespace

TEST(JpegSize, ReadsTheFrameHeader) {
    const auto j = jpeg(300, 200);
    EXPECT_EQ(data::jpeg_size(j.data(), j.size()), cv::Size(300, 200));
    const auto p = jpeg(64, 1000);
    EXPECT_EQ(data::jpeg_size(p.data(), p.size()), cv::Size(64, 1000));
    std::vector<uchar> png;
    cv::imencode(".png", cv::Mat(10, 10, CV_8UC3, cv::Scalar::all(3)), png);
    EXPECT_EQ(data::jpeg_size(png.data(), png.size()), cv::Size());
    // Cut before the frame header, or with a segment length running past the end: no size.
    for (std::size_t n : {0, 1, 2, 3, 4, 10, 20}) EXPECT_EQ(data::jpeg_size(j.data(), n), cv::Size()) << n;
    auto bad = jpeg(16, 16);  // a few hundred bytes
    ASSERT_EQ(data::jpeg_size(bad.data(), bad.size()), cv::Size(16, 16));
    bad[4] = 0xFF;  // first segment's length now exceeds the buffer
    EXPECT_EQ(data::jpeg_size(bad.data(), bad.size()), cv::Size());
}

TEST(JpegSize, DecodeImagePicksTheLargestReductionThatKeepsTheShorterSide) {
    test::TempDir d;
    const auto j = jpeg(1000, 600);
    std::ofstream(d / "big.jpg", std::ios::binary).write(reinterpret_cast<const char*>(j.data()), static_cast<std::streamsize>(j.size()));
    EXPECT_EQ(data::decode_image(d / "big.jpg", 0).size(), cv::Size(1000, 600));
    EXPECT_EQ(data::decode_image(d / "big.jpg", 256).size(), cv::Size(500, 300));  // 600 >= 2 x 256, < 4 x 256
    EXPECT_EQ(data::decode_image(d / "big.jpg", 150).size(), cv::Size(250, 150));  // exactly 4 x 150
    EXPECT_EQ(data::decode_image(d / "big.jpg", 50).size(), cv::Size(125, 75));    // 1/8 is the decoder's limit
    EXPECT_EQ(data::decode_image(d / "big.jpg", 301).size(), cv::Size(1000, 600));
    std::ofstream(d / "junk.jpg") << "not an image";
    EXPECT_THROW(data::decode_image(d / "junk.jpg", 100), Error);
}
