#include "firesight/dataset.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "firesight/error.h"

namespace fs = std::filesystem;

namespace firesight::data {

namespace {

bool hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

std::vector<std::string> sorted_subfolders(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && !hidden(e.path())) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Uniform integer in [0, n) from mt19937 alone: std::uniform_int_distribution differs between
// standard libraries, and a split must not change with the compiler.
std::size_t draw_below(std::mt19937& rng, std::size_t n) {
    const std::uint64_t r = (static_cast<std::uint64_t>(rng()) << 32) | rng();
    return static_cast<std::size_t>(r % n);
}

double draw_unit(std::mt19937& rng) { return (rng() >> 8) * (1.0 / 16777216.0); }

}  // namespace

SplitFractions parse_split_fractions(const std::string& text) {
    std::vector<double> v;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            std::size_t used = 0;
            v.push_back(std::stod(item, &used));
            if (used != item.size()) throw std::invalid_argument(item);
        } catch (const std::exception&) {
            throw Error("--split: '" + text + "' is not three numbers like 0.8,0.1,0.1");
        }
    }
    if (v.size() != 3 || v[0] <= 0 || v[1] < 0 || v[2] < 0 || std::abs(v[0] + v[1] + v[2] - 1.0) > 1e-6)
        throw Error("--split: '" + text + "' must be three non-negative shares (train,val,test) summing to 1");
    return {v[0], v[1], v[2]};
}

const std::vector<Sample>& DatasetSplits::named(const std::string& split) const {
    if (split == "train") return train;
    if (split == "val") return val;
    if (split == "test") return test;
    throw Error("unknown split '" + split + "' (expected train, val, test or all)");
}

std::vector<Sample> DatasetSplits::all() const {
    std::vector<Sample> out = train;
    out.insert(out.end(), val.begin(), val.end());
    out.insert(out.end(), test.begin(), test.end());
    return out;
}

ImageFolderDataset::ImageFolderDataset(fs::path root) : root_(std::move(root)) {
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) throw Error(root_.string() + ": not a directory (expected ROOT/<class>/images)");
    has_split_folders_ = fs::is_directory(root_ / "train", ec);
    const fs::path class_parent = has_split_folders_ ? root_ / "train" : root_;
    classes_ = sorted_subfolders(class_parent);
    if (classes_.empty()) throw Error(class_parent.string() + ": no class sub-folders (expected ROOT/<class>/images)");
    if (classes_.size() < 2) throw Error(class_parent.string() + ": only one class folder ('" + classes_[0] + "'), need two or more");
    const char* split_names[3] = {"train", "val", "test"};
    for (int s = 0; s < (has_split_folders_ ? 3 : 1); ++s) {
        const fs::path base = has_split_folders_ ? fs::path(split_names[s]) : fs::path();
        for (std::size_t c = 0; c < classes_.size(); ++c) {
            const fs::path dir = root_ / base / classes_[c];
            if (!fs::is_directory(dir, ec)) continue;  // a split may lack a class
            std::vector<fs::path> names;
            for (const auto& e : fs::directory_iterator(dir))
                if (e.is_regular_file() && !hidden(e.path())) names.push_back(base / classes_[c] / e.path().filename());
            std::sort(names.begin(), names.end());
            for (auto& n : names) files_[s].push_back({std::move(n), static_cast<int>(c)});
        }
    }
}

std::vector<Sample> ImageFolderDataset::all() const {
    std::vector<Sample> out;
    for (const auto& f : files_) out.insert(out.end(), f.begin(), f.end());
    return out;
}

DatasetSplits ImageFolderDataset::split(const SplitFractions& fr, unsigned seed) const {
    DatasetSplits s;
    s.root = root_;
    s.classes = classes_;
    s.fractions = fr;
    s.seed = seed;
    if (has_split_folders_) {
        s.from_split_folders = true;
        s.train = files_[0];
        s.val = files_[1];
        s.test = files_[2];
        return s;
    }
    for (std::size_t c = 0; c < classes_.size(); ++c) {
        std::vector<Sample> members;
        for (const auto& f : files_[0])
            if (f.label == static_cast<int>(c)) members.push_back(f);
        // One generator per class, seeded from the seed and the class name, so adding a class
        // does not reshuffle the others.
        std::seed_seq seq{seed, static_cast<unsigned>(std::hash<std::string>{}(classes_[c]) & 0xffffffffu)};
        std::mt19937 rng(seq);
        for (std::size_t i = members.size(); i > 1; --i) std::swap(members[i - 1], members[draw_below(rng, i)]);
        const auto n = members.size();
        auto share = [&](double f) {
            auto k = static_cast<std::size_t>(std::lround(f * static_cast<double>(n)));
            if (f > 0 && k == 0 && n >= 3) k = 1;
            return k;
        };
        std::size_t n_test = share(fr.test), n_val = share(fr.val);
        while (n_test + n_val >= n && n > 0) {  // keep at least one training image
            if (n_val > 0) --n_val; else if (n_test > 0) --n_test; else break;
        }
        for (std::size_t i = 0; i < n; ++i) {
            auto& dst = i < n_test ? s.test : i < n_test + n_val ? s.val : s.train;
            dst.push_back(members[i]);
        }
    }
    auto by_name = [](const Sample& a, const Sample& b) { return a.path < b.path; };
    std::sort(s.train.begin(), s.train.end(), by_name);
    std::sort(s.val.begin(), s.val.end(), by_name);
    std::sort(s.test.begin(), s.test.end(), by_name);
    return s;
}

std::string splits_to_json(const DatasetSplits& s) {
    nlohmann::json j;
    j["root"] = fs::absolute(s.root).lexically_normal().string();
    j["classes"] = s.classes;
    j["from_split_folders"] = s.from_split_folders;
    j["fractions"] = {s.fractions.train, s.fractions.val, s.fractions.test};
    j["seed"] = s.seed;
    auto list = [](const std::vector<Sample>& v) {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& x : v) a.push_back({{"file", x.path.string()}, {"label", x.label}});
        return a;
    };
    j["train"] = list(s.train);
    j["val"] = list(s.val);
    j["test"] = list(s.test);
    nlohmann::json sk = nlohmann::json::array();
    for (const auto& x : s.skipped) sk.push_back({{"file", x.path.string()}, {"reason", x.reason}});
    j["skipped"] = sk;
    return j.dump(1);
}

DatasetSplits splits_from_json(const std::string& text, const std::string& name) {
    DatasetSplits s;
    try {
        const auto j = nlohmann::json::parse(text);
        s.root = j.at("root").get<std::string>();
        s.classes = j.at("classes").get<std::vector<std::string>>();
        s.from_split_folders = j.value("from_split_folders", false);
        const auto fr = j.at("fractions").get<std::vector<double>>();
        if (fr.size() == 3) s.fractions = {fr[0], fr[1], fr[2]};
        s.seed = j.value("seed", 0u);
        auto list = [&](const char* key, std::vector<Sample>& out) {
            for (const auto& x : j.at(key)) {
                const int label = x.at("label").get<int>();
                if (label < 0 || label >= static_cast<int>(s.classes.size()))
                    throw Error(name + ": " + key + ": label " + std::to_string(label) + " out of range");
                out.push_back({x.at("file").get<std::string>(), label});
            }
        };
        list("train", s.train);
        list("val", s.val);
        list("test", s.test);
        if (j.contains("skipped"))
            for (const auto& x : j["skipped"]) s.skipped.push_back({x.at("file").get<std::string>(), x.at("reason").get<std::string>()});
    } catch (const nlohmann::json::exception& e) {
        throw Error(name + ": not a valid splits file: " + e.what());
    }
    return s;
}

std::vector<int> class_counts(const std::vector<Sample>& samples, std::size_t num_classes) {
    std::vector<int> n(num_classes, 0);
    for (const auto& s : samples)
        if (s.label >= 0 && static_cast<std::size_t>(s.label) < num_classes) ++n[static_cast<std::size_t>(s.label)];
    return n;
}

cv::Mat shrink_for_cache(const cv::Mat& bgr, int shorter) {
    const int s = std::min(bgr.rows, bgr.cols);
    if (s <= shorter) return bgr.clone();
    const double f = static_cast<double>(shorter) / s;
    cv::Mat out;
    cv::resize(bgr, out, cv::Size(std::max(shorter, static_cast<int>(std::lround(bgr.cols * f))),
                                  std::max(shorter, static_cast<int>(std::lround(bgr.rows * f)))),
               0, 0, cv::INTER_AREA);
    return out;
}

cv::Mat augment(const cv::Mat& bgr, const Preprocess& p, const AugmentOptions& a, std::mt19937& rng) {
    if (bgr.empty() || bgr.type() != CV_8UC3) throw Error("augment: expected an 8-bit 3-channel image");
    const double area = static_cast<double>(bgr.rows) * bgr.cols;
    cv::Rect crop(0, 0, bgr.cols, bgr.rows);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = area * (a.min_area + (1.0 - a.min_area) * draw_unit(rng));
        const double log_r = std::log(a.max_aspect) * (2.0 * draw_unit(rng) - 1.0);
        const double aspect = std::exp(log_r);
        const int w = static_cast<int>(std::lround(std::sqrt(target * aspect)));
        const int h = static_cast<int>(std::lround(std::sqrt(target / aspect)));
        if (w >= 8 && h >= 8 && w <= bgr.cols && h <= bgr.rows) {
            crop = cv::Rect(static_cast<int>(draw_below(rng, static_cast<std::size_t>(bgr.cols - w + 1))),
                            static_cast<int>(draw_below(rng, static_cast<std::size_t>(bgr.rows - h + 1))), w, h);
            break;
        }
    }
    if (crop.width == bgr.cols && crop.height == bgr.rows) {  // no crop fitted: centre square
        const int s = std::min(bgr.rows, bgr.cols);
        crop = cv::Rect((bgr.cols - s) / 2, (bgr.rows - s) / 2, s, s);
    }
    cv::Mat resized;
    const bool shrinking = crop.width > p.size || crop.height > p.size;
    cv::resize(bgr(crop), resized, cv::Size(p.size, p.size), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
    if (a.horizontal_flip && (rng() & 1u)) cv::flip(resized, resized, 1);
    cv::Mat rgb;
    cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);
    cv::Mat f;
    rgb.convertTo(f, CV_32FC3);
    auto factor = [&](double amount) { return 1.0 + amount * (2.0 * draw_unit(rng) - 1.0); };
    const double b = factor(a.brightness), c = factor(a.contrast), sat = factor(a.saturation);
    // Jitter in pixel units, then clamp back to the 0..255 range the camera could give.
    cv::Mat gray;
    cv::cvtColor(f, gray, cv::COLOR_RGB2GRAY);
    cv::Mat gray3;
    cv::cvtColor(gray, gray3, cv::COLOR_GRAY2RGB);
    // convertTo and addWeighted act on every channel (a Mat minus a double would touch only the
    // first one).
    cv::addWeighted(f, sat, gray3, 1.0 - sat, 0.0, f);
    const double mean_level = cv::mean(gray)[0];
    f.convertTo(f, -1, c * b, mean_level * (1.0 - c) * b);
    cv::min(f, cv::Scalar::all(255.0), f);
    cv::max(f, cv::Scalar::all(0.0), f);
    f.convertTo(f, -1, p.scale, -p.mean * p.scale);
    return f;
}

}  // namespace firesight::data
