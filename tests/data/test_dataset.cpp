// ImageFolderDataset: classes, deterministic stratified splits, split folders, splits.json, augmentation.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>
#include <set>

#include "firesight/data/dataset.h"
#include "firesight/common/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace firesight;

namespace {

void touch(const fs::path& p) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "x";
}

// A folder with an unbalanced pair of classes and awkward names.
void make_folder(const fs::path& root, int a, int b) {
    for (int i = 0; i < a; ++i) touch(root / "fire" / ("f 'x';&" + std::to_string(i) + ".jpg"));
    for (int i = 0; i < b; ++i) touch(root / "neutral" / ("n" + std::to_string(i) + ".png"));
    touch(root / "neutral" / ".hidden");
}

std::set<std::string> names(const std::vector<data::Sample>& v) {
    std::set<std::string> s;
    for (const auto& x : v) s.insert(x.path.string());
    return s;
}

}  // namespace

TEST(Dataset, ClassesAreSortedFolderNamesAndHiddenFilesIgnored) {
    test::TempDir d;
    make_folder(d.path(), 5, 7);
    data::ImageFolderDataset ds(d.path());
    EXPECT_EQ(ds.classes(), (std::vector<std::string>{"fire", "neutral"}));
    EXPECT_EQ(ds.all().size(), 12u);
    EXPECT_FALSE(ds.has_split_folders());
}

TEST(Dataset, SplitIsDeterministicStratifiedAndDisjoint) {
    test::TempDir d;
    make_folder(d.path(), 13, 70);
    data::ImageFolderDataset ds(d.path());
    const auto a = ds.split({0.7, 0.15, 0.15}, 7), b = ds.split({0.7, 0.15, 0.15}, 7), c = ds.split({0.7, 0.15, 0.15}, 8);
    EXPECT_EQ(names(a.train), names(b.train));
    EXPECT_EQ(names(a.test), names(b.test));
    EXPECT_NE(names(a.test), names(c.test)) << "another seed should give another split";
    EXPECT_EQ(a.train.size() + a.val.size() + a.test.size(), 83u);
    std::set<std::string> all = names(a.train);
    for (const auto& s : names(a.val)) EXPECT_TRUE(all.insert(s).second) << s;
    for (const auto& s : names(a.test)) EXPECT_TRUE(all.insert(s).second) << s;
    // Stratified: the rare class is in every split, in proportion.
    const auto tc = data::class_counts(a.test, 2), vc = data::class_counts(a.val, 2);
    EXPECT_EQ(tc[0], 2);
    EXPECT_EQ(tc[1], 11);
    EXPECT_GE(vc[0], 1);
}

TEST(Dataset, TinyClassStillGetsValAndTestImages) {
    test::TempDir d;
    make_folder(d.path(), 3, 40);
    const auto s = data::ImageFolderDataset(d.path()).split({0.8, 0.1, 0.1}, 1);
    const auto tr = data::class_counts(s.train, 2), va = data::class_counts(s.val, 2), te = data::class_counts(s.test, 2);
    EXPECT_EQ(tr[0], 1);
    EXPECT_EQ(va[0], 1);
    EXPECT_EQ(te[0], 1);
}

TEST(Dataset, SplitFoldersAreUsedAsGiven) {
    test::TempDir d;
    for (const char* split : {"train", "val", "test"}) {
        touch(d / (std::string(split) + "/a/1.jpg"));
        touch(d / (std::string(split) + "/b/1.jpg"));
    }
    touch(d / "train/b/2.jpg");
    data::ImageFolderDataset ds(d.path());
    EXPECT_TRUE(ds.has_split_folders());
    const auto s = ds.split({}, 0);
    EXPECT_EQ(s.train.size(), 3u);
    EXPECT_EQ(s.val.size(), 2u);
    EXPECT_EQ(s.test.size(), 2u);
    EXPECT_EQ(s.test[0].path, fs::path("test/a/1.jpg"));
}

TEST(Dataset, SplitsJsonRoundTrip) {
    test::TempDir d;
    make_folder(d.path(), 6, 9);
    auto s = data::ImageFolderDataset(d.path()).split({0.6, 0.2, 0.2}, 3);
    s.skipped.push_back({"neutral/bad.jpg", "not an image"});
    const auto back = data::splits_from_json(data::splits_to_json(s), "splits.json");
    EXPECT_EQ(back.classes, s.classes);
    EXPECT_EQ(names(back.test), names(s.test));
    EXPECT_EQ(names(back.train), names(s.train));
    ASSERT_EQ(back.skipped.size(), 1u);
    EXPECT_EQ(back.skipped[0].reason, "not an image");
    EXPECT_THROW(data::splits_from_json("{\"root\": 1}", "x.json"), Error);
}

TEST(Dataset, BadInputGivesClearErrors) {
    test::TempDir d;
    EXPECT_THROW(data::ImageFolderDataset(d / "missing"), Error);
    EXPECT_THROW(data::ImageFolderDataset(d.path()), Error);  // no class folders
    EXPECT_THROW(data::parse_split_fractions("0.5,0.5"), Error);
    EXPECT_THROW(data::parse_split_fractions("0.8,0.1,0.2"), Error);
    EXPECT_THROW(data::parse_split_fractions("a,b,c"), Error);
    const auto f = data::parse_split_fractions("0.7,0.15,0.15");
    EXPECT_DOUBLE_EQ(f.val, 0.15);
}

TEST(Dataset, AugmentGivesNormalisedCropsThatVary) {
    cv::Mat img(120, 200, CV_8UC3);
    cv::randu(img, 0, 255);
    data::Preprocess p;
    p.size = p.resize_shorter = 64;
    std::mt19937 rng(5);
    const auto a = data::augment(img, p, {}, rng), b = data::augment(img, p, {}, rng);
    EXPECT_EQ(a.rows, 64);
    EXPECT_EQ(a.cols, 64);
    EXPECT_EQ(a.type(), CV_32FC3);
    double lo, hi;
    cv::minMaxLoc(a.reshape(1), &lo, &hi);
    EXPECT_GE(lo, -1.0001);
    EXPECT_LE(hi, 1.0001);
    EXPECT_GT(cv::norm(a, b, cv::NORM_L1), 1.0) << "two draws should differ";
    const auto small = data::shrink_for_cache(img, 50);
    EXPECT_EQ(small.rows, 50);
}

TEST(Dataset, SeveralRootsUniteClassesAndKeepTheFirstRootsSplit) {
    test::TempDir d;
    make_folder(d / "shared", 13, 40);
    for (int i = 0; i < 20; ++i) touch(d / "extra" / "neutral" / ("hard" + std::to_string(i) + ".jpg"));
    for (int i = 0; i < 9; ++i) touch(d / "extra" / "smoke" / ("s" + std::to_string(i) + ".jpg"));
    const data::ImageFolderDataset one(d / "shared");
    const data::ImageFolderDataset both(std::vector<fs::path>{d / "shared", d / "extra"});
    EXPECT_EQ(both.classes(), (std::vector<std::string>{"fire", "neutral", "smoke"}));
    EXPECT_EQ(both.all().size(), 53u + 29u);
    const auto a = one.split({0.7, 0.15, 0.15}, 42), b = both.split({0.7, 0.15, 0.15}, 42);
    // The first root's files land where they did alone: adding a root does not reshuffle it.
    std::set<std::string> first_root_test;
    for (const auto& s : b.test)
        if (s.root == 0) first_root_test.insert(s.path.string());
    EXPECT_EQ(first_root_test, names(a.test));
    // Labels follow the united class list, and every sample resolves to a file that exists.
    int extra_smoke = 0;
    for (const auto& s : b.all()) {
        EXPECT_TRUE(fs::exists(b.file(s))) << b.file(s);
        EXPECT_EQ(b.classes[static_cast<std::size_t>(s.label)], s.path.parent_path().filename().string());
        if (s.root == 1 && b.classes[static_cast<std::size_t>(s.label)] == "smoke") ++extra_smoke;
    }
    EXPECT_EQ(extra_smoke, 9);
    // Each root is stratified on its own: the second root's rare class is measured too.
    EXPECT_GT(data::class_counts(b.test, 3)[2], 0);
    // splits.json keeps which root a file came from.
    const auto back = data::splits_from_json(data::splits_to_json(b), "splits.json");
    ASSERT_EQ(back.roots.size(), 2u);
    ASSERT_EQ(back.test.size(), b.test.size());
    for (std::size_t i = 0; i < b.test.size(); ++i) EXPECT_EQ(back.file(back.test[i]), fs::absolute(b.file(b.test[i])).lexically_normal());
    // A root with a single class is fine beside others, but not alone.
    EXPECT_THROW(data::ImageFolderDataset(d / "extra" / "neutral"), Error);
}

TEST(Dataset, SourcesComeFromTheRootAndItsSourcesList) {
    test::TempDir d;
    make_folder(d / "web", 3, 3);
    std::ofstream(d / "web" / "SOURCES.tsv") << "sha256\tclass\tfile\tsource_repo\n"
                                             << "00\tfire\tfire/f 'x';&0.jpg\tsome/repo\n";
    for (int i = 0; i < 2; ++i) touch(d / "negatives" / "neutral" / ("fog" + std::to_string(i) + ".jpg"));
    std::ofstream(d / "negatives" / "SOURCES.tsv") << "sha256\tfile\tkind\n"
                                                   << "00\tneutral/fog0.jpg\tfog\n";
    make_folder(d / "plain", 1, 1);
    const data::SourceIndex idx({d / "web", d / "negatives", d / "plain"});
    EXPECT_EQ(idx.source({"fire/f 'x';&0.jpg", 0, 0}), "web/some/repo");
    EXPECT_EQ(idx.source({"fire/f 'x';&1.jpg", 0, 0}), "web/unlisted");
    EXPECT_EQ(idx.source({"neutral/fog0.jpg", 1, 1}), "negatives/fog");  // "kind" wins over the repository
    EXPECT_EQ(idx.source({"neutral/fog1.jpg", 1, 1}), "negatives/unlisted");
    EXPECT_EQ(idx.source({"fire/x.jpg", 0, 2}), "plain");
}

TEST(Dataset, ThumbnailDegradationShrinksAndRecompresses) {
    cv::Mat img(600, 900, CV_8UC3);
    cv::randu(img, 0, 255);
    const auto t = data::degrade_like_thumbnail(img, 275, 70);
    EXPECT_EQ(t.cols, 275);
    EXPECT_EQ(t.rows, 183);
    EXPECT_EQ(t.type(), CV_8UC3);
    cv::Mat small(100, 150, CV_8UC3, cv::Scalar(10, 200, 30));
    const auto s = data::degrade_like_thumbnail(small, 275, 70);
    EXPECT_EQ(s.size(), small.size()) << "never enlarged";
    EXPECT_LT(cv::norm(s, small, cv::NORM_INF), 12.0) << "a flat colour survives JPEG closely";
}

TEST(Dataset, SourceCueAugmentationChangesResolutionAndCompression) {
    // A sharp checkerboard: shrinking and JPEG both blur it, so the augmented image is smoother
    // than the same crop without them.
    cv::Mat img(256, 256, CV_8UC3);
    for (int y = 0; y < img.rows; ++y)
        for (int x = 0; x < img.cols; ++x) img.at<cv::Vec3b>(y, x) = ((x / 2 + y / 2) % 2) ? cv::Vec3b(255, 255, 255) : cv::Vec3b(0, 0, 0);
    data::Preprocess p;
    p.size = p.resize_shorter = 256;
    data::AugmentOptions plain;
    plain.min_area = 1.0;
    plain.horizontal_flip = false;
    plain.brightness = plain.contrast = plain.saturation = 0;
    plain.rescale_probability = plain.jpeg_probability = 0;
    data::AugmentOptions cues = plain;
    cues.rescale_probability = cues.jpeg_probability = 1.0;
    cues.rescale_min = 64;
    std::mt19937 r1(3), r2(3);
    auto detail = [](const cv::Mat& f) {
        cv::Mat dx;
        cv::Sobel(f, dx, CV_32F, 1, 0);
        return cv::norm(dx, cv::NORM_L1);
    };
    const auto a = data::augment(img, p, plain, r1), b = data::augment(img, p, cues, r2);
    EXPECT_LT(detail(b), 0.8 * detail(a));
}
