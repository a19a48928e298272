// The model's view of an image and the drawing of class activation maps on it.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "firesight/common/error.h"
#include "firesight/data/heatmap.h"
#include "firesight/data/image.h"

using namespace firesight;

namespace {

// A smooth colour gradient, so resampling differences stay small.
cv::Mat gradient(cv::Size s) {
    cv::Mat m(s, CV_8UC3);
    for (int y = 0; y < s.height; ++y)
        for (int x = 0; x < s.width; ++x)
            m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(255 * x / s.width), static_cast<uchar>(255 * y / s.height), 128);
    return m;
}

}  // namespace

TEST(ModelView, IsTheCentreCropThatPreprocessKeeps) {
    data::Preprocess p;
    p.size = 224;
    p.resize_shorter = 256;
    for (cv::Size s : {cv::Size(640, 480), cv::Size(300, 900), cv::Size(224, 224)}) {
        const cv::Mat img = gradient(s);
        const cv::Rect view = data::model_view(s, p);
        // By hand for 640x480: shorter side 480 -> 256 (x 0.533), 224 of 256 kept: 420 pixels, centred.
        if (s == cv::Size(640, 480)) EXPECT_EQ(view, cv::Rect(109, 30, 420, 420));
        cv::Mat crop, rgb;
        cv::resize(img(view), crop, cv::Size(p.size, p.size), 0, 0, cv::INTER_AREA);
        cv::cvtColor(crop, rgb, cv::COLOR_BGR2RGB);
        cv::Mat diff;
        cv::absdiff(rgb, data::resize_and_crop(img, p), diff);
        EXPECT_LT(cv::mean(diff)[0] + cv::mean(diff)[1], 4.0) << s;
    }
    EXPECT_THROW(data::model_view(cv::Size(0, 10), p), Error);
}

TEST(Heatmap, HottestRegionSurroundsThePeakCell) {
    data::Preprocess p;  // 224 of 224: the view of a 700x700 image is all of it, 100 px per cell
    cv::Mat map(7, 7, CV_32F, cv::Scalar(0.f));
    map.at<float>(2, 5) = 3.f;
    const cv::Rect box = data::hottest_region(map, cv::Size(700, 700), p);
    EXPECT_TRUE(box.contains({550, 250})) << box;
    EXPECT_LE(box.width, 200) << box;
    EXPECT_LE(box.height, 200) << box;
    EXPECT_GE(box.x, 400) << box;
    // A flat map has no hottest part: the whole view.
    EXPECT_EQ(data::hottest_region(cv::Mat(7, 7, CV_32F, cv::Scalar(1.f)), cv::Size(700, 700), p), cv::Rect(0, 0, 700, 700));
    EXPECT_THROW(data::hottest_region(cv::Mat(), cv::Size(700, 700), p), Error);
}

TEST(Heatmap, OverlayIsRedOnThePeakBlueElsewhereAndDimsWhatTheModelDidNotSee) {
    data::Preprocess p;
    const cv::Mat grey(300, 500, CV_8UC3, cv::Scalar(128, 128, 128));  // view: x 100..400
    cv::Mat map(7, 7, CV_32F, cv::Scalar(0.f));
    map.at<float>(3, 3) = 1.f;
    const cv::Mat out = data::overlay_activation_map(grey, map, p);
    ASSERT_EQ(out.size(), grey.size());
    const auto centre = out.at<cv::Vec3b>(150, 250), corner = out.at<cv::Vec3b>(5, 105), outside = out.at<cv::Vec3b>(150, 20);
    EXPECT_GT(centre[2], centre[0] + 40) << centre;  // BGR: red over blue on the peak
    EXPECT_GT(corner[0], corner[2] + 40) << corner;  // blue where the map is lowest
    EXPECT_EQ(outside, cv::Vec3b(64, 64, 64));
    EXPECT_THROW(data::overlay_activation_map(grey, cv::Mat(7, 7, CV_8U), p), Error);
}

TEST(Heatmap, NormalizedMapSpansZeroToOne) {
    const cv::Mat m = (cv::Mat_<float>(1, 3) << -2.f, 0.f, 6.f);
    const cv::Mat n = data::normalized_map(m);
    EXPECT_FLOAT_EQ(n.at<float>(0, 0), 0.f);
    EXPECT_FLOAT_EQ(n.at<float>(0, 1), 0.25f);
    EXPECT_FLOAT_EQ(n.at<float>(0, 2), 1.f);
}
