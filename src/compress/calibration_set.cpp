#include <algorithm>
#include <iostream>
#include <random>
#include <set>

#include "firesight/compress/calibrate.h"
#include "firesight/common/error.h"
#include "firesight/common/progress.h"

namespace firesight::compress {

std::vector<std::filesystem::path> seeded_order(std::vector<std::filesystem::path> files, std::uint64_t seed) {
    // Sorting first makes the draw depend on the seed and the set of files, not on listing order;
    // the shuffle is written out (not std::shuffle) so every standard library draws the same files.
    std::sort(files.begin(), files.end());
    std::mt19937_64 rng(seed);
    for (std::size_t i = files.size(); i > 1; --i) std::swap(files[i - 1], files[rng() % i]);
    return files;
}

CalibrationSet::CalibrationSet(std::vector<std::filesystem::path> candidates, const CalibrationSetOptions& opt)
    : size_(opt.preprocess.size) {
    if (candidates.empty()) throw Error("calibration: no candidate images given");
    if (opt.count == 0) throw Error("calibration: asked for 0 images");
    candidates = seeded_order(std::move(candidates), opt.seed);

    const std::size_t plane = static_cast<std::size_t>(size_) * static_cast<std::size_t>(size_);
    const std::size_t want = std::min(opt.count, candidates.size());
    ProgressBar bar("calibration images", want, opt.progress);
    for (const auto& file : candidates) {
        if (files_.size() == want) break;
        cv::Mat hwc;
        try {
            hwc = data::preprocess(data::decode_image(file), opt.preprocess);
        } catch (const std::exception& e) {
            CalibrationWarning w{file.string(), e.what()};
            if (opt.on_warning) opt.on_warning(w);
            else std::cerr << "warning: calibration: " << w.file << ": " << w.reason << " (skipped)\n";
            warnings_.push_back(std::move(w));
            continue;
        }
        if (hwc.rows != size_ || hwc.cols != size_ || hwc.type() != CV_32FC3 || !hwc.isContinuous())
            throw Error("calibration: preprocessing " + file.string() + " did not give a " + std::to_string(size_) + "x" + std::to_string(size_) + " RGB float image");
        const std::size_t base = pixels_.size();
        pixels_.resize(base + 3 * plane);
        const auto* src = hwc.ptr<float>();
        for (std::size_t p = 0; p < plane; ++p)
            for (std::size_t ch = 0; ch < 3; ++ch) pixels_[base + ch * plane + p] = src[p * 3 + ch];
        files_.push_back(file);
        bar.update(files_.size());
    }
    bar.finish(std::to_string(files_.size()) + " images, " + std::to_string(warnings_.size()) + " skipped");
    if (files_.empty())
        throw Error("calibration: none of the " + std::to_string(candidates.size()) + " candidate images could be decoded (first: " +
                    warnings_.front().file + ": " + warnings_.front().reason + ")");
}

std::span<const float> CalibrationSet::image(std::size_t i) const {
    if (i >= files_.size()) throw Error("calibration: image " + std::to_string(i) + " of " + std::to_string(files_.size()) + " requested");
    const std::size_t n = 3 * static_cast<std::size_t>(size_) * static_cast<std::size_t>(size_);
    return std::span<const float>(pixels_).subspan(i * n, n);
}

std::vector<std::filesystem::path> list_image_files(const std::filesystem::path& dir) {
    static const std::set<std::string> kExtensions = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jpe"};
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) throw Error("calibration: " + dir.string() + " is not a directory");
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        std::string ext = it->path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        if (kExtensions.count(ext)) files.push_back(it->path());
    }
    if (ec) throw Error("calibration: cannot list " + dir.string() + ": " + ec.message());
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace firesight::compress
