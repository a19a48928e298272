#include <algorithm>
#include <cmath>
#include <limits>

#include "firesight/builder/quantize.h"
#include "firesight/compress/calibrate.h"
#include "firesight/common/error.h"

namespace firesight::compress {

ActivationHistogram::ActivationHistogram(int bins) {
    if (bins < 2 || bins % 2 != 0) throw Error("activation histogram: bin count " + std::to_string(bins) + " must be even and at least 2");
    counts_.assign(static_cast<std::size_t>(bins), 0);
}

void ActivationHistogram::add(std::span<const float> values) {
    if (values.empty()) return;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (float v : values) {
        if (!std::isfinite(v)) throw Error("activation histogram: a value is NaN or infinite");
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    min_ = total_ ? std::min(min_, lo) : lo;
    max_ = total_ ? std::max(max_, hi) : hi;
    const double amax = std::max(std::abs(static_cast<double>(lo)), std::abs(static_cast<double>(hi)));
    if (range_ == 0.0) {
        // Zeros seen before any non-zero value are all in bin 0 whatever the width turns out to be.
        range_ = amax;
    } else {
        const std::size_t n = counts_.size();
        while (amax > range_) {
            for (std::size_t j = 0; j < n / 2; ++j) counts_[j] = counts_[2 * j] + counts_[2 * j + 1];
            std::fill(counts_.begin() + static_cast<std::ptrdiff_t>(n / 2), counts_.end(), 0);
            range_ *= 2.0;
        }
    }
    total_ += values.size();
    if (range_ == 0.0) {
        counts_[0] += values.size();
        zeros_ += values.size();
        return;
    }
    const double inv_width = static_cast<double>(counts_.size()) / range_;
    const std::size_t last = counts_.size() - 1;
    for (float v : values) {
        zeros_ += v == 0.0f;
        const auto j = static_cast<std::size_t>(std::abs(static_cast<double>(v)) * inv_width);
        ++counts_[std::min(j, last)];
    }
}

const char* calibration_method_name(CalibrationMethod m) {
    switch (m) {
        case CalibrationMethod::MinMax: return "minmax";
        case CalibrationMethod::Percentile: return "percentile";
        case CalibrationMethod::Entropy: return "entropy";
    }
    return "?";
}

CalibrationMethod parse_calibration_method(const std::string& s) {
    for (auto m : {CalibrationMethod::MinMax, CalibrationMethod::Percentile, CalibrationMethod::Entropy})
        if (s == calibration_method_name(m)) return m;
    throw Error("calibration method '" + s + "' is not one of minmax, percentile, entropy");
}

double percentile_threshold(const ActivationHistogram& h, double percentile) {
    if (!(percentile > 0.0 && percentile <= 100.0)) throw Error("percentile " + std::to_string(percentile) + " is not in (0, 100]");
    if (h.total() == 0) throw Error("percentile calibration: the histogram is empty");
    const double amax = std::max(std::abs(h.min()), std::abs(h.max()));
    const double target = percentile / 100.0 * static_cast<double>(h.total());
    double before = 0.0;
    const auto& c = h.counts();
    for (std::size_t j = 0; j < c.size(); ++j) {
        const double n = static_cast<double>(c[j]);
        if (n > 0 && before + n >= target) {
            const double t = (static_cast<double>(j) + (target - before) / n) * h.bin_width();
            return std::min(t, amax);
        }
        before += n;
    }
    return amax;
}

double entropy_threshold(const ActivationHistogram& h, int quantized_bins) {
    if (quantized_bins < 2) throw Error("entropy calibration: quantized_bins must be at least 2");
    if (h.total() == 0) throw Error("entropy calibration: the histogram is empty");
    const double amax = std::max(std::abs(h.min()), std::abs(h.max()));
    // Exact zeros leave bin 0: a spike of ReLU zeros there would make every wide merge of bin 0
    // look like a large divergence, driving the threshold down to the smallest candidate, while
    // int8 represents those zeros exactly whatever the threshold.
    std::vector<std::uint64_t> c = h.counts();
    c[0] -= std::min(c[0], h.exact_zeros());
    const int bins = h.bins();
    if (h.range() == 0.0 || bins <= quantized_bins) return amax;

    // Suffix sums give the outlier mass beyond each candidate in O(1).
    std::vector<double> beyond(static_cast<std::size_t>(bins) + 1, 0.0);
    for (int j = bins - 1; j >= 0; --j) beyond[j] = beyond[j + 1] + static_cast<double>(c[j]);

    std::vector<double> p, q;
    double best_kl = std::numeric_limits<double>::infinity();
    int best = bins;
    for (int i = quantized_bins; i <= bins; ++i) {
        p.assign(c.begin(), c.begin() + i);
        p[i - 1] += beyond[i];
        // Q: the unclipped bins merged into quantized_bins levels (group sizes differ by at most one),
        // each level's mass spread over the bins where P is non-empty, as a dequantized tensor would be.
        q.assign(static_cast<std::size_t>(i), 0.0);
        for (int l = 0; l < quantized_bins; ++l) {
            const int start = static_cast<int>(static_cast<long long>(l) * i / quantized_bins);
            const int stop = static_cast<int>(static_cast<long long>(l + 1) * i / quantized_bins);
            double mass = 0.0;
            int nonempty = 0;
            for (int j = start; j < stop; ++j) {
                mass += static_cast<double>(c[j]);
                nonempty += p[j] > 0.0;
            }
            if (nonempty == 0) continue;
            for (int j = start; j < stop; ++j)
                if (p[j] > 0.0) q[j] = mass / nonempty;
        }
        double p_sum = 0.0, q_sum = 0.0;
        for (int j = 0; j < i; ++j) {
            p_sum += p[j];
            q_sum += q[j];
        }
        if (p_sum == 0.0 || q_sum == 0.0) continue;
        // A bin P has and Q lacks (only the last one, holding folded outliers, can be such) gets a
        // tiny probability instead of making the divergence infinite: it is penalised, not excluded.
        constexpr double kFloor = 1e-12;
        double kl = 0.0;
        for (int j = 0; j < i; ++j) {
            if (p[j] <= 0.0) continue;
            const double pj = p[j] / p_sum;
            const double qj = std::max(q[j] / q_sum, kFloor);
            kl += pj * std::log(pj / qj);
        }
        if (kl < best_kl) {
            best_kl = kl;
            best = i;
        }
    }
    return std::min(static_cast<double>(best) * h.bin_width(), amax);
}

float ActivationRange::abs_max() const { return std::max(std::abs(min), std::abs(max)); }

ActivationRange calibrate_range(const ActivationHistogram& h, const CalibrationOptions& opt) {
    if (h.total() == 0) throw Error("calibration: no values were recorded for this tensor");
    if (opt.method == CalibrationMethod::MinMax) return {h.min(), h.max()};
    const double t = opt.method == CalibrationMethod::Percentile ? percentile_threshold(h, opt.percentile)
                                                                : entropy_threshold(h, opt.quantized_bins);
    const auto tf = static_cast<float>(t);
    return {std::max(h.min(), -tf), std::min(h.max(), tf)};
}

double expected_quantization_mse(const ActivationHistogram& h, ActivationRange r) {
    if (h.total() == 0) throw Error("quantization error: the histogram is empty");
    const double step = asymmetric_int8(r).scale;
    // Values of one sign only are clipped at that side's edge; signed ones at the range's |max|.
    const double clip = h.min() >= 0.0f ? std::max(r.max, 0.0f) : (h.max() <= 0.0f ? -std::min(r.min, 0.0f) : r.abs_max());
    const double w = h.bin_width();
    double sum = 0.0;
    const auto& c = h.counts();
    for (std::size_t j = 0; j < c.size(); ++j) {
        // Exact zeros are encoded exactly; they add no error.
        const std::uint64_t n = j == 0 ? c[0] - std::min(c[0], h.exact_zeros()) : c[j];
        if (!n) continue;
        const double centre = (static_cast<double>(j) + 0.5) * w;
        const double e = centre <= clip ? step * step / 12.0 : (centre - clip) * (centre - clip);
        sum += static_cast<double>(n) * e;
    }
    return sum / static_cast<double>(h.total());
}

ChosenRange choose_calibration(const ActivationHistogram& h, double percentile, int quantized_bins) {
    ChosenRange best;
    bool first = true;
    for (auto m : {CalibrationMethod::MinMax, CalibrationMethod::Percentile, CalibrationMethod::Entropy}) {
        const auto r = calibrate_range(h, {m, percentile, quantized_bins});
        const double mse = expected_quantization_mse(h, r);
        if (first || mse < best.mse) best = {m, r, mse};
        first = false;
    }
    return best;
}

std::map<std::string, ChosenRange> choose_calibrations(const std::map<std::string, ActivationHistogram>& histograms,
                                                       double percentile, int quantized_bins) {
    std::map<std::string, ChosenRange> out;
    for (const auto& [name, h] : histograms) {
        try {
            out[name] = choose_calibration(h, percentile, quantized_bins);
        } catch (const Error& e) {
            throw Error("calibration of " + name + ": " + e.what());
        }
    }
    return out;
}

QuantParams symmetric_int8(float abs_max) {
    if (!(abs_max >= 0.0f) || !std::isfinite(abs_max)) throw Error("symmetric_int8: range " + std::to_string(abs_max) + " is not a finite non-negative number");
    return {abs_max > 0.0f ? abs_max / 127.0f : 1.0f, 0};
}

QuantParams asymmetric_int8(ActivationRange r) {
    if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max)
        throw Error("asymmetric_int8: range [" + std::to_string(r.min) + ", " + std::to_string(r.max) + "] is invalid");
    // Zero must be exact: zero padding and ReLU outputs are zeros, and an offset there would bias
    // every output.
    const double lo = std::min(static_cast<double>(r.min), 0.0), hi = std::max(static_cast<double>(r.max), 0.0);
    if (hi - lo == 0.0) return {1.0f, 0};
    const double scale = (hi - lo) / 255.0;
    const double zp = std::clamp(std::round(-128.0 - lo / scale), -128.0, 127.0);
    return {static_cast<float>(scale), static_cast<int>(zp)};
}

std::int8_t quantize_int8(float x, QuantParams q) {
    const long v = std::lround(static_cast<double>(x) / q.scale) + q.zero_point;
    return static_cast<std::int8_t>(std::clamp<long>(v, -128, 127));
}

float dequantize_int8(std::int8_t q, QuantParams p) { return p.scale * static_cast<float>(static_cast<int>(q) - p.zero_point); }

PerChannelInt8 quantize_weights_per_channel(std::span<const float> weights, std::size_t channels) {
    if (channels == 0 || weights.size() % channels != 0)
        throw Error("per-channel quantization: " + std::to_string(weights.size()) + " weights do not split into " + std::to_string(channels) + " channels");
    PerChannelInt8 q;
    q.channels = channels;
    q.channel_size = weights.size() / channels;
    q.values.resize(weights.size());
    q.scales.resize(channels);
    for (std::size_t c = 0; c < channels; ++c) {
        const auto w = weights.subspan(c * q.channel_size, q.channel_size);
        float amax = 0.0f;
        for (float v : w) {
            if (!std::isfinite(v)) throw Error("per-channel quantization: channel " + std::to_string(c) + " has a NaN or infinite weight");
            amax = std::max(amax, std::abs(v));
        }
        const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        q.scales[c] = scale;
        for (std::size_t i = 0; i < w.size(); ++i)
            q.values[c * q.channel_size + i] = static_cast<std::int8_t>(std::clamp<long>(std::lround(static_cast<double>(w[i]) / scale), -127, 127));
    }
    return q;
}

std::vector<float> dequantize(const PerChannelInt8& q) {
    std::vector<float> out(q.values.size());
    for (std::size_t c = 0; c < q.channels; ++c)
        for (std::size_t i = 0; i < q.channel_size; ++i) {
            const std::size_t k = c * q.channel_size + i;
            out[k] = q.scales[c] * static_cast<float>(q.values[k]);
        }
    return out;
}

double dot_product_error_bound(std::span<const float> x, std::span<const float> w, float x_scale, float w_scale) {
    if (x.size() != w.size()) throw Error("dot_product_error_bound: vectors of " + std::to_string(x.size()) + " and " + std::to_string(w.size()) + " values");
    double sx = 0.0, sw = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        sx += std::abs(static_cast<double>(x[i]));
        sw += std::abs(static_cast<double>(w[i]));
    }
    return sx * w_scale / 2.0 + sw * x_scale / 2.0 + static_cast<double>(x.size()) * x_scale * w_scale / 4.0;
}

}  // namespace firesight::compress
