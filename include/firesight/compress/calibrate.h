// int8 quantization for the compression stage: activation histograms and the range calibrators
// (min-max, percentile, entropy/KL as TensorRT's), per-channel symmetric weight quantization with
// its error bounds, and the CalibrationSet of images drawn from the training data. Torch-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "firesight/builder/quantize.h"
#include "firesight/data/image.h"

namespace firesight::compress {

// Histogram of |x| over [0, range) in a fixed number of bins, plus the exact min and max.
// Batches are added one at a time: when a larger |x| arrives the range doubles and pairs of bins
// merge, so no first pass over the data is needed and no count is ever lost or re-binned wrongly.
class ActivationHistogram {
public:
    explicit ActivationHistogram(int bins = 2048);  // bins: even, >= 2
    // Throws firesight::Error on NaN or infinity (a broken network, not something to calibrate).
    void add(std::span<const float> values);
    int bins() const { return static_cast<int>(counts_.size()); }
    double range() const { return range_; }
    double bin_width() const { return range_ / static_cast<double>(counts_.size()); }
    const std::vector<std::uint64_t>& counts() const { return counts_; }
    std::uint64_t total() const { return total_; }
    // Values exactly 0 (counted in bin 0 too): ReLU outputs are often half zeros, and int8 encodes
    // 0 exactly, so the entropy and error estimates leave them out.
    std::uint64_t exact_zeros() const { return zeros_; }
    float min() const { return min_; }
    float max() const { return max_; }

private:
    std::vector<std::uint64_t> counts_;
    double range_ = 0.0;
    std::uint64_t total_ = 0;
    std::uint64_t zeros_ = 0;
    float min_ = 0.0f, max_ = 0.0f;
};

enum class CalibrationMethod { MinMax, Percentile, Entropy };
const char* calibration_method_name(CalibrationMethod m);
// "minmax", "percentile", "entropy"; throws firesight::Error naming the accepted values otherwise.
CalibrationMethod parse_calibration_method(const std::string& s);

struct CalibrationOptions {
    CalibrationMethod method = CalibrationMethod::Entropy;
    double percentile = 99.99;  // of |x|, for Percentile
    int quantized_bins = 128;   // int8 levels on one side of zero, for Entropy
};

// The |x| below which `percentile` percent of the values lie (interpolated within a bin).
double percentile_threshold(const ActivationHistogram& h, double percentile);
// The clipping threshold T that minimises KL(P || Q), where P is the histogram cut at T with the
// mass beyond T folded into its last bin and Q is P quantized to `quantized_bins` levels (each level's
// mass spread evenly over the bins that were non-empty). Candidates are bin edges from
// quantized_bins to bins(); with fewer bins than that it returns the range.
double entropy_threshold(const ActivationHistogram& h, int quantized_bins = 128);

// A real-valued range for a tensor. Thresholds from |x| clip both sides: [max(min, -T), min(max, T)],
// so a ReLU output (min 0) keeps min 0 and can use an asymmetric int8 encoding.
struct ActivationRange {
    float min = 0.0f, max = 0.0f;
    float abs_max() const;
};
ActivationRange calibrate_range(const ActivationHistogram& h, const CalibrationOptions& opt);

// Expected squared error per value when the histogram's values are quantized to int8 over `r`
// (asymmetric_int8): rounding noise step^2/12 inside the range, squared distance to the range edge
// outside it. Estimated from the |x| histogram at bin centres.
double expected_quantization_mse(const ActivationHistogram& h, ActivationRange r);

// The per-tensor choice: all three methods' ranges, keeping the one with the lowest expected error.
struct ChosenRange {
    CalibrationMethod method = CalibrationMethod::MinMax;
    ActivationRange range;
    double mse = 0.0;
};
ChosenRange choose_calibration(const ActivationHistogram& h, double percentile = 99.99, int quantized_bins = 128);
// choose_calibration for every tensor (e.g. ActivationObserver::histograms()).
std::map<std::string, ChosenRange> choose_calibrations(const std::map<std::string, ActivationHistogram>& histograms,
                                                       double percentile = 99.99, int quantized_bins = 128);

// real = scale * (q - zero_point), q in [-128, 127].
struct QuantParams {
    float scale = 1.0f;
    int zero_point = 0;
};
QuantParams symmetric_int8(float abs_max);       // zero_point 0, scale abs_max / 127
QuantParams asymmetric_int8(ActivationRange r);  // range widened to hold 0 exactly
std::int8_t quantize_int8(float x, QuantParams q);  // round to nearest, ties away from zero, saturating
float dequantize_int8(std::int8_t q, QuantParams p);

// Per-output-channel symmetric int8 weights: `weights` is channel-major (OIHW or OHWI, O outermost);
// scale_c = max|w_c| / 127 and q = round(w / scale_c) in [-127, 127]. An all-zero channel (pruned)
// gets scale 1 so kernels never divide by zero; its values are all 0 either way.
struct PerChannelInt8 {
    std::vector<std::int8_t> values;
    std::vector<float> scales;
    std::size_t channels = 0;
    std::size_t channel_size = 0;
};
PerChannelInt8 quantize_weights_per_channel(std::span<const float> weights, std::size_t channels);
std::vector<float> dequantize(const PerChannelInt8& q);

// Error bounds that int8 kernels are tested against. One element: |w - dequant(quant(w))| <= scale/2.
inline float element_error_bound(float scale) { return 0.5f * scale; }
// |sum x_i w_i - sum x^_i w^_i| when x is quantized with step x_scale and w with step w_scale, both
// inside their ranges: sum |x_i| w_scale/2 + sum |w_i| x_scale/2 + n x_scale w_scale/4.
double dot_product_error_bound(std::span<const float> x, std::span<const float> w, float x_scale, float w_scale);

// ---- calibration images ----------------------------------------------------------------------
struct CalibrationWarning {
    std::string file;
    std::string reason;
};

struct CalibrationSetOptions {
    std::size_t count = 100;     // images wanted (fewer when the candidates run out)
    std::uint64_t seed = 1;      // which images are drawn: the same seed draws the same files
    data::Preprocess preprocess;
    bool progress = true;
    // Called for each image that cannot be used; default prints "warning: calibration: FILE: REASON" to stderr.
    std::function<void(const CalibrationWarning&)> on_warning;
};

// The files in a random order that depends only on the seed and the set of files (not on the
// order given, nor on the standard library): the order CalibrationSet draws them in.
std::vector<std::filesystem::path> seeded_order(std::vector<std::filesystem::path> files, std::uint64_t seed);

// N images drawn at random (deterministic) from a list of files, decoded and preprocessed as the
// model sees them. A file that cannot be decoded is skipped with a warning and the next candidate
// is drawn instead; only when no candidate decodes is it an error.
class CalibrationSet {
public:
    CalibrationSet(std::vector<std::filesystem::path> candidates, const CalibrationSetOptions& opt);
    std::size_t size() const { return files_.size(); }
    int image_size() const { return size_; }
    // Image i as planar RGB float, 3 x size x size (the network's NCHW layout without N).
    std::span<const float> image(std::size_t i) const;
    const std::vector<std::filesystem::path>& files() const { return files_; }
    const std::vector<CalibrationWarning>& warnings() const { return warnings_; }

private:
    int size_ = 0;
    std::vector<std::filesystem::path> files_;
    std::vector<float> pixels_;
    std::vector<CalibrationWarning> warnings_;
};

// Files under `dir` (recursively) whose extension names an image format OpenCV reads, sorted.
std::vector<std::filesystem::path> list_image_files(const std::filesystem::path& dir);

}  // namespace firesight::compress
