// Image-folder datasets for training and evaluation: classes from sub-folder names, a deterministic
// stratified split (or train/val/test folders), split files that make an evaluation repeatable.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "firesight/image.h"

namespace firesight::data {

struct Sample {
    std::filesystem::path path;  // relative to the dataset root
    int label = 0;
};

struct SplitFractions {
    double train = 0.8, val = 0.1, test = 0.1;
};
// "0.7,0.15,0.15" -> fractions; throws firesight::Error when malformed or not summing to 1.
SplitFractions parse_split_fractions(const std::string& text);

// A file that could not be used, and why.
struct SkippedFile {
    std::filesystem::path path;
    std::string reason;
};

struct DatasetSplits {
    std::filesystem::path root;
    std::vector<std::string> classes;
    std::vector<Sample> train, val, test;
    bool from_split_folders = false;  // train/ val/ test/ existed under root
    SplitFractions fractions;
    unsigned seed = 0;
    std::vector<SkippedFile> skipped;

    const std::vector<Sample>& named(const std::string& split) const;  // "train" | "val" | "test"
    std::vector<Sample> all() const;
};

class ImageFolderDataset {
public:
    // Scans ROOT/<class>/* (or ROOT/{train,val,test}/<class>/*). Classes are the sorted sub-folder
    // names; hidden files are ignored. Throws firesight::Error when ROOT has no class folder.
    explicit ImageFolderDataset(std::filesystem::path root);

    const std::filesystem::path& root() const { return root_; }
    const std::vector<std::string>& classes() const { return classes_; }
    bool has_split_folders() const { return has_split_folders_; }
    // Every file, sorted by class then name.
    std::vector<Sample> all() const;
    // The train/val/test folders when present; otherwise a stratified split that depends only on
    // the file names, the fractions and the seed. Every class with 3 or more files gets at least
    // one file in val and in test, so a rare class is always measured.
    DatasetSplits split(const SplitFractions& fractions, unsigned seed) const;

private:
    std::filesystem::path root_;
    std::vector<std::string> classes_;
    bool has_split_folders_ = false;
    std::vector<Sample> files_[3];  // by split folder (train, val, test), or all in [0]
};

// splits.json: the file lists of a run, so `eval --split test` sees exactly the held-out images.
std::string splits_to_json(const DatasetSplits& s);
DatasetSplits splits_from_json(const std::string& json_text, const std::string& name_for_errors);
// Counts per class of a sample list.
std::vector<int> class_counts(const std::vector<Sample>& samples, std::size_t num_classes);

// Random resized crop, horizontal flip and modest colour jitter, for training only.
struct AugmentOptions {
    double min_area = 0.35;         // crop area as a share of the image, lower bound
    double max_aspect = 4.0 / 3.0;  // aspect ratio of the crop within [1/max, max]
    bool horizontal_flip = true;
    double brightness = 0.2, contrast = 0.2, saturation = 0.2;  // factor drawn from 1 +- value
};
// BGR 8-bit image in, RGB float32 HWC (p.size x p.size) normalised as `p` says, out.
cv::Mat augment(const cv::Mat& bgr, const Preprocess& p, const AugmentOptions& a, std::mt19937& rng);
// A smaller copy to keep in memory for augmentation: the shorter side becomes `shorter` (never
// enlarged), so later epochs need not decode large photos again.
cv::Mat shrink_for_cache(const cv::Mat& bgr, int shorter);

}  // namespace firesight::data
