#include "firesight/data/dataset.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "firesight/common/error.h"

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

fs::path DatasetSplits::file(const Sample& s) const {
    if (s.root < 0 || static_cast<std::size_t>(s.root) >= roots.size())
        throw Error("sample " + s.path.string() + ": data root " + std::to_string(s.root) + " of " + std::to_string(roots.size()));
    return roots[static_cast<std::size_t>(s.root)] / s.path;
}

std::vector<Sample> DatasetSplits::all() const {
    std::vector<Sample> out = train;
    out.insert(out.end(), val.begin(), val.end());
    out.insert(out.end(), test.begin(), test.end());
    return out;
}

ImageFolderDataset::ImageFolderDataset(fs::path root) : ImageFolderDataset(std::vector<fs::path>{std::move(root)}) {}

namespace {

// The class folders of one root: ROOT/<class> or, with split folders, ROOT/train/<class>.
std::vector<std::string> root_classes(const fs::path& root, bool& split_folders) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) throw Error(root.string() + ": not a directory (expected ROOT/<class>/images)");
    split_folders = fs::is_directory(root / "train", ec);
    const fs::path class_parent = split_folders ? root / "train" : root;
    auto classes = sorted_subfolders(class_parent);
    if (classes.empty()) throw Error(class_parent.string() + ": no class sub-folders (expected ROOT/<class>/images)");
    return classes;
}

}  // namespace

ImageFolderDataset::ImageFolderDataset(std::vector<fs::path> roots) : roots_(std::move(roots)) {
    if (roots_.empty()) throw Error("no data folder given");
    std::vector<std::vector<std::string>> classes_of(roots_.size());
    per_root_.resize(roots_.size());
    for (std::size_t r = 0; r < roots_.size(); ++r) {
        classes_of[r] = root_classes(roots_[r], per_root_[r].split_folders);
        classes_.insert(classes_.end(), classes_of[r].begin(), classes_of[r].end());
    }
    std::sort(classes_.begin(), classes_.end());
    classes_.erase(std::unique(classes_.begin(), classes_.end()), classes_.end());
    if (classes_.size() < 2) {
        std::string where = roots_[0].string();
        for (std::size_t r = 1; r < roots_.size(); ++r) where += ", " + roots_[r].string();
        throw Error(where + ": only one class folder ('" + classes_[0] + "'), need two or more");
    }
    const char* split_names[3] = {"train", "val", "test"};
    std::error_code ec;
    for (std::size_t r = 0; r < roots_.size(); ++r) {
        auto& rf = per_root_[r];
        for (int sp = 0; sp < (rf.split_folders ? 3 : 1); ++sp) {
            const fs::path base = rf.split_folders ? fs::path(split_names[sp]) : fs::path();
            for (std::size_t c = 0; c < classes_.size(); ++c) {
                const fs::path dir = roots_[r] / base / classes_[c];
                if (!fs::is_directory(dir, ec)) continue;  // a split or a root may lack a class
                std::vector<fs::path> names;
                for (const auto& e : fs::directory_iterator(dir))
                    if (e.is_regular_file() && !hidden(e.path())) names.push_back(base / classes_[c] / e.path().filename());
                std::sort(names.begin(), names.end());
                for (auto& n : names) rf.files[sp].push_back({std::move(n), static_cast<int>(c), static_cast<int>(r)});
            }
        }
    }
}

bool ImageFolderDataset::has_split_folders() const {
    return std::all_of(per_root_.begin(), per_root_.end(), [](const RootFiles& r) { return r.split_folders; });
}

std::vector<Sample> ImageFolderDataset::all() const {
    std::vector<Sample> out;
    for (const auto& r : per_root_)
        for (const auto& f : r.files) out.insert(out.end(), f.begin(), f.end());
    return out;
}

namespace {

// Stratified split of one root's files: per class, a shuffle that depends on the seed, the class
// name and (after the first root, so a single-root split stays as it always was) the root's index.
void split_root(const std::vector<Sample>& files, const std::vector<std::string>& classes, std::size_t root_index,
                const SplitFractions& fr, unsigned seed, DatasetSplits& s) {
    for (std::size_t c = 0; c < classes.size(); ++c) {
        std::vector<Sample> members;
        for (const auto& f : files)
            if (f.label == static_cast<int>(c)) members.push_back(f);
        // One generator per class, seeded from the seed and the class name, so adding a class
        // does not reshuffle the others.
        std::vector<unsigned> seeds{seed, static_cast<unsigned>(std::hash<std::string>{}(classes[c]) & 0xffffffffu)};
        if (root_index > 0) seeds.push_back(static_cast<unsigned>(root_index));
        std::seed_seq seq(seeds.begin(), seeds.end());
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
}

}  // namespace

DatasetSplits ImageFolderDataset::split(const SplitFractions& fr, unsigned seed) const {
    DatasetSplits s;
    s.roots = roots_;
    s.classes = classes_;
    s.fractions = fr;
    s.seed = seed;
    s.from_split_folders = has_split_folders();
    for (std::size_t r = 0; r < roots_.size(); ++r) {
        const auto& rf = per_root_[r];
        if (rf.split_folders) {
            s.train.insert(s.train.end(), rf.files[0].begin(), rf.files[0].end());
            s.val.insert(s.val.end(), rf.files[1].begin(), rf.files[1].end());
            s.test.insert(s.test.end(), rf.files[2].begin(), rf.files[2].end());
        } else {
            split_root(rf.files[0], classes_, r, fr, seed, s);
        }
    }
    auto by_name = [](const Sample& a, const Sample& b) { return a.root != b.root ? a.root < b.root : a.path < b.path; };
    std::sort(s.train.begin(), s.train.end(), by_name);
    std::sort(s.val.begin(), s.val.end(), by_name);
    std::sort(s.test.begin(), s.test.end(), by_name);
    return s;
}

std::string splits_to_json(const DatasetSplits& s) {
    nlohmann::json j;
    nlohmann::json roots = nlohmann::json::array();
    for (const auto& r : s.roots) roots.push_back(fs::absolute(r).lexically_normal().string());
    j["roots"] = roots;
    if (!s.roots.empty()) j["root"] = roots[0];  // what readers before several roots expect
    j["classes"] = s.classes;
    j["from_split_folders"] = s.from_split_folders;
    j["fractions"] = {s.fractions.train, s.fractions.val, s.fractions.test};
    j["seed"] = s.seed;
    auto list = [](const std::vector<Sample>& v) {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& x : v) {
            nlohmann::json e = {{"file", x.path.string()}, {"label", x.label}};
            if (x.root != 0) e["root"] = x.root;
            a.push_back(std::move(e));
        }
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
        if (j.contains("roots")) {
            for (const auto& r : j.at("roots")) s.roots.push_back(r.get<std::string>());
        } else {
            s.roots.push_back(j.at("root").get<std::string>());
        }
        if (s.roots.empty()) throw Error(name + ": no data roots");
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
                const int root = x.value("root", 0);
                if (root < 0 || root >= static_cast<int>(s.roots.size()))
                    throw Error(name + ": " + key + ": root " + std::to_string(root) + " out of range");
                out.push_back({x.at("file").get<std::string>(), label, root});
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

SourceIndex::SourceIndex(const std::vector<fs::path>& roots) {
    for (const auto& r : roots) {
        RootSources rs;
        rs.name = fs::absolute(r).lexically_normal().filename().string();
        if (rs.name.empty()) rs.name = fs::absolute(r).lexically_normal().parent_path().filename().string();
        std::ifstream in(r / "SOURCES.tsv");
        std::string line;
        if (in && std::getline(in, line)) {
            auto split_tabs = [](const std::string& l) {
                std::vector<std::string> f;
                std::size_t pos = 0;
                for (auto tab = l.find('\t'); tab != std::string::npos; pos = tab + 1, tab = l.find('\t', pos)) f.push_back(l.substr(pos, tab - pos));
                f.push_back(l.substr(pos));
                return f;
            };
            const auto header = split_tabs(line);
            auto column = [&](const char* name) { return static_cast<long>(std::find(header.begin(), header.end(), name) - header.begin()); };
            const long file_col = column("file"), n = static_cast<long>(header.size());
            const long tag_col = column("kind") < n ? column("kind") : column("source_repo");
            if (file_col < n && tag_col < n) {
                rs.listed = true;
                while (std::getline(in, line)) {
                    const auto f = split_tabs(line);
                    if (static_cast<long>(f.size()) > std::max(file_col, tag_col))
                        rs.by_file.emplace_back(f[static_cast<std::size_t>(file_col)], f[static_cast<std::size_t>(tag_col)]);
                }
                std::sort(rs.by_file.begin(), rs.by_file.end());
            }
        }
        roots_.push_back(std::move(rs));
    }
}

std::string SourceIndex::source(const Sample& s) const {
    if (s.root < 0 || static_cast<std::size_t>(s.root) >= roots_.size()) return "unknown";
    const auto& r = roots_[static_cast<std::size_t>(s.root)];
    if (!r.listed) return r.name;
    const std::string key = s.path.generic_string();
    const auto it = std::lower_bound(r.by_file.begin(), r.by_file.end(), std::make_pair(key, std::string()));
    return r.name + "/" + (it != r.by_file.end() && it->first == key ? it->second : std::string("unlisted"));
}

cv::Mat degrade_like_thumbnail(const cv::Mat& bgr, int longer, int quality) {
    cv::Mat small = bgr;
    const int l = std::max(bgr.rows, bgr.cols);
    if (l > longer) {
        const double f = static_cast<double>(longer) / l;
        cv::resize(bgr, small, cv::Size(std::max(1, static_cast<int>(std::lround(bgr.cols * f))), std::max(1, static_cast<int>(std::lround(bgr.rows * f)))),
                   0, 0, cv::INTER_AREA);
    }
    std::vector<uchar> jpeg;
    cv::imencode(".jpg", small, jpeg, {cv::IMWRITE_JPEG_QUALITY, quality});
    return cv::imdecode(jpeg, cv::IMREAD_COLOR);
}

namespace {

// Source-cue erasure: a random smaller resolution (the crop below scales it back up) and a
// random JPEG quality, so neither sharpness nor compression tells which collection a photo is from.
cv::Mat erase_source_cues(const cv::Mat& bgr, const AugmentOptions& a, std::mt19937& rng) {
    cv::Mat out = bgr;
    const int shorter = std::min(bgr.rows, bgr.cols);
    if (a.rescale_probability > 0 && draw_unit(rng) < a.rescale_probability && shorter > a.rescale_min) {
        const int target = a.rescale_min + static_cast<int>(draw_below(rng, static_cast<std::size_t>(shorter - a.rescale_min + 1)));
        const double f = static_cast<double>(target) / shorter;
        cv::resize(bgr, out, cv::Size(std::max(8, static_cast<int>(std::lround(bgr.cols * f))), std::max(8, static_cast<int>(std::lround(bgr.rows * f)))),
                   0, 0, cv::INTER_AREA);
    }
    if (a.jpeg_probability > 0 && draw_unit(rng) < a.jpeg_probability) {
        const int q = a.jpeg_min + static_cast<int>(draw_below(rng, static_cast<std::size_t>(std::max(0, a.jpeg_max - a.jpeg_min) + 1)));
        std::vector<uchar> jpeg;
        cv::imencode(".jpg", out, jpeg, {cv::IMWRITE_JPEG_QUALITY, q});
        out = cv::imdecode(jpeg, cv::IMREAD_COLOR);
    }
    return out;
}

}  // namespace

cv::Mat augment(const cv::Mat& original, const Preprocess& p, const AugmentOptions& a, std::mt19937& rng) {
    if (original.empty() || original.type() != CV_8UC3) throw Error("augment: expected an 8-bit 3-channel image");
    const cv::Mat bgr = erase_source_cues(original, a, rng);
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
