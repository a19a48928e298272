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

#include "firesight/data/image.h"

namespace firesight::data {

struct Sample {
    std::filesystem::path path;  // relative to its data root
    int label = 0;
    int root = 0;  // index of its data root (several roots may be given, see ImageFolderDataset)
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
    std::vector<std::filesystem::path> roots;
    std::vector<std::string> classes;
    std::vector<Sample> train, val, test;
    bool from_split_folders = false;  // train/ val/ test/ existed under root
    SplitFractions fractions;
    unsigned seed = 0;
    std::vector<SkippedFile> skipped;

    const std::vector<Sample>& named(const std::string& split) const;  // "train" | "val" | "test"
    std::vector<Sample> all() const;
    std::filesystem::path file(const Sample& s) const;  // roots[s.root] / s.path
};

class ImageFolderDataset {
public:
    // Scans ROOT/<class>/* (or ROOT/{train,val,test}/<class>/*). Classes are the sorted sub-folder
    // names; hidden files are ignored. Throws firesight::Error when ROOT has no class folder.
    explicit ImageFolderDataset(std::filesystem::path root);
    // Several roots: a class is the union of the folders of that name in every root, so a user's
    // own photos (or hard negatives) sit beside a shared set without copying. Each root may have
    // its own train/val/test folders or not; a root may hold only some of the classes.
    explicit ImageFolderDataset(std::vector<std::filesystem::path> roots);

    const std::vector<std::filesystem::path>& roots() const { return roots_; }
    const std::vector<std::string>& classes() const { return classes_; }
    // Every root has train/val/test folders.
    bool has_split_folders() const;
    // Every file, sorted by root, class, then name.
    std::vector<Sample> all() const;
    std::filesystem::path file(const Sample& s) const { return roots_[static_cast<std::size_t>(s.root)] / s.path; }
    // Per root: its train/val/test folders when present; otherwise a stratified split that
    // depends only on the file names, the fractions and the seed (and the root's position for
    // roots after the first). Every class with 3 or more files in a root gets at least one file
    // in val and in test, so a rare class is always measured.
    DatasetSplits split(const SplitFractions& fractions, unsigned seed) const;

private:
    struct RootFiles {
        bool split_folders = false;
        std::vector<Sample> files[3];  // by split folder (train, val, test), or all in [0]
    };
    std::vector<std::filesystem::path> roots_;
    std::vector<std::string> classes_;
    std::vector<RootFiles> per_root_;
};

// splits.json: the file lists of a run, so `eval --split test` sees exactly the held-out images.
std::string splits_to_json(const DatasetSplits& s);
DatasetSplits splits_from_json(const std::string& json_text, const std::string& name_for_errors);
// Counts per class of a sample list.
std::vector<int> class_counts(const std::vector<Sample>& samples, std::size_t num_classes);

// Where each file of a data set came from, for a per-source breakdown: the root's folder name,
// and, when the root has a SOURCES.tsv (columns named in its first line, one of them "file",
// relative to the root), the file's "kind" or else its "source_repo" column. Files that the list
// does not name get "unlisted". Example: "hard-negatives/fog", "fire-smoke/liuzifan/fire_smoke_datasets".
class SourceIndex {
public:
    explicit SourceIndex(const std::vector<std::filesystem::path>& roots);
    std::string source(const Sample& s) const;

private:
    struct RootSources {
        std::string name;
        bool listed = false;
        std::vector<std::pair<std::string, std::string>> by_file;  // sorted (file, tag)
    };
    std::vector<RootSources> roots_;
};

// The look of a web thumbnail: the longer side shrunk to `longer` pixels (never enlarged) and
// re-encoded as JPEG at `quality`. Most fire and smoke photos of the shared set look like this
// (median ~275x183), so a model that passes on degraded copies did not learn "big photo = neutral".
cv::Mat degrade_like_thumbnail(const cv::Mat& bgr, int longer = 275, int quality = 70);

// Random resized crop, horizontal flip and modest colour jitter, for training only; and, to make
// the source of a photo useless as a cue, random down- and re-up-scaling and JPEG re-compression.
struct AugmentOptions {
    double min_area = 0.35;         // crop area as a share of the image, lower bound
    double max_aspect = 4.0 / 3.0;  // aspect ratio of the crop within [1/max, max]
    bool horizontal_flip = true;
    double brightness = 0.2, contrast = 0.2, saturation = 0.2;  // factor drawn from 1 +- value (no hue: fire stays fire-coloured)
    double rescale_probability = 0.5;  // shrink the shorter side to a size drawn from [rescale_min, its size]
    int rescale_min = 96;
    double jpeg_probability = 0.5;  // re-encode as JPEG at a quality drawn from [jpeg_min, jpeg_max]
    int jpeg_min = 30, jpeg_max = 95;
};
// BGR 8-bit image in, RGB float32 HWC (p.size x p.size) normalised as `p` says, out.
cv::Mat augment(const cv::Mat& bgr, const Preprocess& p, const AugmentOptions& a, std::mt19937& rng);
// A smaller copy to keep in memory for augmentation: the shorter side becomes `shorter` (never
// enlarged), so later epochs need not decode large photos again.
cv::Mat shrink_for_cache(const cv::Mat& bgr, int shorter);

}  // namespace firesight::data
