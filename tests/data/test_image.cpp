#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "firesight/common/error.h"
#include "firesight/data/image.h"
#include "test_util.h"

using namespace firesight;

TEST(Preprocess, KnownPixelMapsToKnownValue) {
    // A uniform BGR image (B=0, G=128, R=255): after BGR->RGB and (x - 127.5) / 127.5,
    // channel 0 (R) is 1.0, channel 1 (G) is 0.5/127.5 and channel 2 (B) is -1.0.
    cv::Mat img(300, 400, CV_8UC3, cv::Scalar(0, 128, 255));
    const cv::Mat x = data::preprocess(img, {});
    ASSERT_EQ(x.rows, 224);
    ASSERT_EQ(x.cols, 224);
    ASSERT_EQ(x.type(), CV_32FC3);
    const auto v = x.at<cv::Vec3f>(100, 100);
    EXPECT_FLOAT_EQ(v[0], 1.0f);
    EXPECT_NEAR(v[1], 0.5f / 127.5f, 1e-6);
    EXPECT_FLOAT_EQ(v[2], -1.0f);
    // The quantized model's convention (mean 128, scale 1/128): 0 maps to -1.
    data::Preprocess q;
    q.mean = 128.f;
    q.scale = 1.f / 128.f;
    EXPECT_FLOAT_EQ(data::preprocess(img, q).at<cv::Vec3f>(0, 0)[2], -1.0f);
}

TEST(Preprocess, ShorterSideThenCentreCrop) {
    // 200 x 100 (w x h): the shorter side (100) goes to 224, so width becomes 448 and the
    // centre 224 columns are kept. A left half red / right half blue image keeps both halves.
    cv::Mat img(100, 200, CV_8UC3, cv::Scalar(0, 0, 255));
    img(cv::Rect(100, 0, 100, 100)).setTo(cv::Scalar(255, 0, 0));
    const cv::Mat rgb = data::resize_and_crop(img, {});
    ASSERT_EQ(rgb.size(), cv::Size(224, 224));
    EXPECT_EQ(rgb.at<cv::Vec3b>(112, 10)[0], 255);   // red on the left (R channel first)
    EXPECT_EQ(rgb.at<cv::Vec3b>(112, 213)[2], 255);  // blue on the right
}

TEST(Decode, ByContentNotByName) {
    test::TempDir dir;
    cv::Mat img(32, 48, CV_8UC3, cv::Scalar(10, 20, 30));
    // A PNG saved under a .jpg name with awkward characters still decodes.
    std::vector<std::uint8_t> png;
    cv::imencode(".png", img, png);
    const auto path = dir / "kjl;'& x.jpg";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), static_cast<long>(png.size()));
    const cv::Mat back = data::decode_image(path);
    EXPECT_EQ(back.size(), img.size());
    EXPECT_EQ(back.at<cv::Vec3b>(5, 5), cv::Vec3b(10, 20, 30));
}

TEST(Decode, NotAnImageIsAClearError) {
    test::TempDir dir;
    const auto path = dir / "notes.jpg";
    std::ofstream(path) << "this is text, not a picture";
    try {
        data::decode_image(path);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not a decodable image"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("notes.jpg"), std::string::npos);
    }
    std::ofstream(dir / "empty.png");
    EXPECT_THROW(data::decode_image(dir / "empty.png"), Error);
    EXPECT_THROW(data::decode_image(dir / "missing.png"), Error);
}

// Only JPEG, PNG, BMP, WebP, TIFF and PPM/PGM reach OpenCV: a DICOM file (128 bytes, "DICM", a
// broken element) once made GDCM abort the process from inside cv::imdecode (fuzz_image_decode).
TEST(Decode, OnlyTheSupportedFormatsReachTheDecoders) {
    std::string dicom(128, '\0');
    dicom += "DICM";
    dicom += std::string("\x02\x00\x00\x00\xff\xff\xff\xff", 8);
    try {
        data::decode_image_bytes(dicom.data(), dicom.size(), "scan.dcm");
        FAIL() << "decoded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("scan.dcm: not a decodable image (JPEG, PNG, BMP, WebP, TIFF or PPM/PGM)"), std::string::npos)
            << e.what();
    }
    // A valid-looking first line does not let a DICOM preamble through either (fuzz_image_decode).
    for (const char* head : {"P1\n", "BM", "\xFF\xD8\xFF"}) {
        std::string disguised = dicom;
        disguised.replace(0, std::strlen(head), head);
        EXPECT_THROW(data::decode_image_bytes(disguised.data(), disguised.size(), "scan.dcm"), Error) << head;
    }
    cv::Mat img(12, 16, CV_8UC3, cv::Scalar(0, 100, 200));
    for (const char* ext : {".jpg", ".png", ".bmp", ".webp", ".tiff", ".ppm", ".pgm"}) {
        std::vector<std::uint8_t> bytes;
        cv::Mat src = std::string(ext) == ".pgm" ? cv::Mat(12, 16, CV_8UC1, cv::Scalar(77)) : img;
        ASSERT_TRUE(cv::imencode(ext, src, bytes)) << ext;
        const auto back = data::decode_image_bytes(bytes.data(), bytes.size(), std::string("x") + ext);
        EXPECT_EQ(back.size(), img.size()) << ext;
    }
}

TEST(Decode, TruncatedJpegDoesNotCrash) {
    test::TempDir dir;
    cv::Mat img(64, 64, CV_8UC3, cv::Scalar(0, 100, 200));
    std::vector<std::uint8_t> jpg;
    cv::imencode(".jpg", img, jpg);
    jpg.resize(40);
    const auto path = dir / "cut.jpg";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpg.data()), static_cast<long>(jpg.size()));
    EXPECT_THROW(data::decode_image(path), Error);
}
