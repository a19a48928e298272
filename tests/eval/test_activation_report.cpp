// The report's "where the model looked" section: which photos it shows, that the thumbnails are
// inline JPEGs, and what it says for a model without maps.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "firesight/eval/maps.h"
#include "test_util.h"

using namespace firesight;

namespace {

// Calls every photo "a" with a map that is hot on the left; `maps` false: a model without maps.
class LeftClassifier : public Classifier {
public:
    explicit LeftClassifier(bool maps) : maps_(maps) { pre_.size = pre_.resize_shorter = 32; }
    const std::vector<std::string>& class_names() const override { return names_; }
    const data::Preprocess& preprocessing() const override { return pre_; }
    std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& in) override {
        return std::vector<std::vector<float>>(in.size(), {0.75f, 0.25f});
    }
    std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& in) override {
        if (!maps_) return Classifier::predict_with_maps(in);
        const cv::Mat left = (cv::Mat_<float>(1, 2) << 1.f, 0.f);
        return std::vector<Prediction>(in.size(), Prediction{{0.75f, 0.25f}, {left, 1.f - left}});
    }
    std::string describe() const override { return "left classifier"; }

private:
    bool maps_;
    std::vector<std::string> names_{"a", "b"};
    data::Preprocess pre_;
};

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

}  // namespace

TEST(ActivationReport, ShowsEveryErrorWithBothMapsAndAFewCorrectPhotos) {
    test::TempDir dir;
    std::vector<std::filesystem::path> files;
    for (int i = 0; i < 6; ++i) {
        files.push_back(dir / ("p" + std::to_string(i) + ".png"));
        cv::imwrite(files.back().string(), cv::Mat(40, 60, CV_8UC3, cv::Scalar(30 * i, 90, 200)));
    }
    // Truth: four "a" and two "b"; all called "a": two errors, four correct "a".
    const std::vector<int> truth{0, 0, 1, 0, 1, 0}, predicted(6, 0);
    LeftClassifier clf(true);
    eval::MapGalleryOptions o;
    o.correct_per_class = 3;
    const auto html = eval::activation_maps_html(clf, files, truth, predicted, o);
    EXPECT_NE(html.find("Errors (2)"), std::string::npos) << html;
    EXPECT_EQ(count(html, "<figure>"), 2u + 3u);
    EXPECT_EQ(count(html, "data:image/jpeg;base64,/9j/"), 2u * 2u + 3u);  // every JPEG starts FF D8 FF
    EXPECT_NE(html.find("true b, called a (75%)"), std::string::npos);
    EXPECT_EQ(html.find("p5.png"), std::string::npos);  // the fourth correct "a" is left out
    EXPECT_THROW(eval::activation_maps_html(clf, files, truth, {0}), Error);
}

TEST(ActivationReport, SaysSoForAModelWithoutMapsOrAPhotoThatIsGone) {
    test::TempDir dir;
    LeftClassifier none(false);
    const auto html = eval::activation_maps_html(none, {dir / "x.png"}, {0}, {1});
    EXPECT_NE(html.find("No maps for this model: left classifier"), std::string::npos) << html;
    LeftClassifier maps(true);
    const auto gone = eval::activation_maps_html(maps, {dir / "gone.png"}, {0}, {1});
    EXPECT_NE(gone.find("no map: "), std::string::npos) << gone;
    EXPECT_NE(gone.find("gone.png"), std::string::npos) << gone;
}

TEST(ActivationReport, Base64MatchesRfc4648) {
    auto b = [](const std::string& s) { return eval::base64(std::vector<unsigned char>(s.begin(), s.end())); };
    EXPECT_EQ(b(""), "");
    EXPECT_EQ(b("f"), "Zg==");
    EXPECT_EQ(b("fo"), "Zm8=");
    EXPECT_EQ(b("foo"), "Zm9v");
    EXPECT_EQ(b("foobar"), "Zm9vYmFy");
    EXPECT_EQ(eval::base64({0xFF, 0xD8, 0xFF}), "/9j/");
}
