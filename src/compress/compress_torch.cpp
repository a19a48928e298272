#include "firesight/compress/compress_torch.h"

#include <cstring>
#include <functional>

#include "firesight/common/error.h"
#include "firesight/common/progress.h"

namespace firesight::compress {

namespace {

std::vector<float> to_float_vector(const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Rounds half away from zero, as quantize_int8() and the int8 kernels do (torch::round would
// round half to even and disagree on exact ties).
torch::Tensor round_half_away(const torch::Tensor& v) { return torch::sign(v) * torch::floor(torch::abs(v) + 0.5); }

}  // namespace

ClusteredLayer::ClusteredLayer(std::string name, torch::Tensor weight, const KMeansOptions& opt)
    : name_(std::move(name)), weight_(std::move(weight)) {
    if (!weight_.defined() || weight_.numel() == 0) throw Error("clustering: weight " + name_ + " is empty");
    const auto values = to_float_vector(weight_);
    const Clustering c = kmeans_1d(values, opt);
    initial_error_ = c.squared_error();
    zero_centroid_ = c.zero_centroid;
    centroids_ = torch::tensor(c.centroids, torch::kFloat32).set_requires_grad(true);
    std::vector<std::int64_t> idx(c.indices.begin(), c.indices.end());
    indices_ = torch::tensor(idx, torch::kInt64);
    apply();
}

void ClusteredLayer::accumulate_gradient() {
    if (!weight_.grad().defined()) return;
    torch::NoGradGuard no_grad;
    auto g = weight_.grad().detach().flatten().to(torch::kCPU, torch::kFloat32);
    auto sum = torch::zeros({centroids_.size(0)}, torch::kFloat32).index_add_(0, indices_, g);
    if (zero_centroid_ >= 0) sum[zero_centroid_] = 0.0f;
    if (centroids_.grad().defined()) centroids_.mutable_grad().add_(sum);
    else centroids_.mutable_grad() = sum;
    // The weight is not trained directly; clearing its gradient stops it piling up across steps.
    weight_.mutable_grad() = torch::Tensor();
}

void ClusteredLayer::apply() {
    torch::NoGradGuard no_grad;
    if (zero_centroid_ >= 0) centroids_[zero_centroid_] = 0.0f;
    auto w = centroids_.detach().index_select(0, indices_).view(weight_.sizes());
    weight_.copy_(w.to(weight_.device(), weight_.scalar_type()));
}

Clustering ClusteredLayer::clustering() const {
    Clustering c;
    c.centroids = to_float_vector(centroids_);
    auto idx = indices_.contiguous();
    c.indices.assign(idx.data_ptr<std::int64_t>(), idx.data_ptr<std::int64_t>() + idx.numel());
    c.zero_centroid = zero_centroid_;
    return c;
}

ClusteringState::ClusteringState(torch::nn::Module& net, const std::vector<std::string>& weight_names, const KMeansOptions& opt) {
    auto params = net.named_parameters();
    for (const auto& name : weight_names) {
        const auto* p = params.find(name);
        if (!p) throw Error("clustering: the model has no parameter named " + name);
        layers_.emplace(name, ClusteredLayer(name, *p, opt));
    }
}

std::vector<torch::Tensor> ClusteringState::centroid_parameters() {
    std::vector<torch::Tensor> out;
    for (auto& [name, l] : layers_) out.push_back(l.centroids());
    return out;
}

void ClusteringState::accumulate_gradients() {
    for (auto& [name, l] : layers_) l.accumulate_gradient();
}

void ClusteringState::apply() {
    for (auto& [name, l] : layers_) l.apply();
}

void ActivationObserver::record(const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    histograms_.try_emplace(name, bins_).first->second.add(std::span<const float>(c.data_ptr<float>(), static_cast<std::size_t>(c.numel())));
}

namespace {

// Runs MobileNetV2 block by block (libtorch C++ has no forward hooks), passing every tensor an
// int8 engine would quantize through `at(name, tensor)` and continuing with what it returns.
// The names are those documented at ActivationObserver.
using ConvRunner = std::function<torch::Tensor(model::ConvActImpl&, const torch::Tensor&)>;

torch::Tensor run_conv(model::ConvActImpl& c, const torch::Tensor& x) { return c.forward(x); }

torch::Tensor walk_quantized_tensors(model::MobileNetV2& net, torch::Tensor x,
                                     const std::function<torch::Tensor(const std::string&, torch::Tensor)>& at,
                                     const ConvRunner& conv_run = run_conv, int from_block = 0) {
    if (from_block < 0 || from_block >= model::MobileNetV2Impl::kFeatureBlocks)
        throw Error("MobileNetV2 walk: block " + std::to_string(from_block) + " does not exist");
    if (x.dim() != 4 || (from_block == 0 && x.size(1) != 3)) throw Error("MobileNetV2 walk: expected an N x 3 x H x W batch");
    // From a later block, x is that block's input as the float network computes it (cached
    // activations), so it is not quantized again here.
    torch::Tensor h = from_block == 0 ? at("input", x) : x;
    for (int i = from_block; i < model::MobileNetV2Impl::kFeatureBlocks; ++i) {
        const std::string name = "features." + std::to_string(i);
        auto m = net->features->ptr(static_cast<std::size_t>(i));
        if (auto* conv = m->as<model::ConvActImpl>()) {
            h = conv_run(*conv, h);
        } else if (auto* b = m->as<model::InvertedResidualImpl>()) {
            auto y = h;
            if (b->expand) y = at(name + ".expand", conv_run(*b->expand, y));
            y = at(name + ".depthwise", conv_run(*b->depthwise, y));
            y = conv_run(*b->project, y);
            if (b->use_residual) y = h + at(name + ".project", y);
            h = y;
        } else {
            throw Error("MobileNetV2 walk: " + name + " is neither a conv nor an inverted-residual block");
        }
        h = at(name, h);
    }
    auto pooled = at("pooled", h.mean({2, 3}));
    return at("logits", net->classifier->forward(net->dropout->forward(pooled)));  // dropout: identity in eval mode
}

// Puts a module in eval mode for a scope and restores its mode after.
class EvalModeScope {
public:
    explicit EvalModeScope(torch::nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
    ~EvalModeScope() { m_.train(was_training_); }

private:
    torch::nn::Module& m_;
    bool was_training_;
};

}  // namespace

torch::Tensor ActivationObserver::observe(model::MobileNetV2& net, const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    EvalModeScope eval(*net);
    return walk_quantized_tensors(net, x, [this](const std::string& name, torch::Tensor t) {
        record(name, t);
        return t;
    });
}

torch::Tensor ActivationObserver::observe_from(model::MobileNetV2& net, const torch::Tensor& x, int from_block) {
    torch::NoGradGuard no_grad;
    EvalModeScope eval(*net);
    return walk_quantized_tensors(
        net, x,
        [this](const std::string& name, torch::Tensor t) {
            record(name, t);
            return t;
        },
        run_conv, from_block);
}

void ActivationObserver::adopt(const ActivationObserver& other, const std::function<bool(const std::string&)>& which) {
    if (other.bins_ != bins_) throw Error("calibration: cannot merge histograms of " + std::to_string(other.bins_) + " and " + std::to_string(bins_) + " bins");
    for (const auto& [name, h] : other.histograms_)
        if (which(name)) histograms_.insert_or_assign(name, h);
}

torch::Tensor simulate_int8_forward(model::MobileNetV2& net, const torch::Tensor& x,
                                    const std::map<std::string, ActivationRange>& ranges, bool quantize_weights) {
    torch::NoGradGuard no_grad;
    EvalModeScope eval(*net);
    // Weights are swapped for their int8 values for the call and restored after, even on error.
    std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;
    struct Restore {
        std::vector<std::pair<torch::Tensor, torch::Tensor>>& s;
        ~Restore() {
            torch::NoGradGuard g;
            for (auto& [param, original] : s) param.copy_(original);
        }
    } restore{saved};
    if (quantize_weights)
        for (auto& p : net->named_parameters()) {
            const auto& name = p.key();
            if (p.value().dim() < 2 || name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
            saved.emplace_back(p.value(), p.value().detach().clone());
            p.value().copy_(fake_quantize_per_channel(p.value().detach()));
        }
    return walk_quantized_tensors(net, x, [&](const std::string& name, torch::Tensor t) {
        auto it = ranges.find(name);
        if (it == ranges.end()) throw Error("int8 simulation: no calibrated range for tensor " + name);
        return fake_quantize(t, asymmetric_int8(it->second));
    });
}

std::map<std::string, ActivationRange> ActivationObserver::ranges(const CalibrationOptions& opt) const {
    std::map<std::string, ActivationRange> out;
    for (const auto& [name, h] : histograms_) {
        try {
            out[name] = calibrate_range(h, name == kLogits ? CalibrationOptions{CalibrationMethod::MinMax} : opt);
        } catch (const Error& e) {
            throw Error("calibration of " + name + ": " + e.what());
        }
    }
    return out;
}

std::map<std::string, ChosenRange> ActivationObserver::chosen_ranges(double percentile, int quantized_bins) const {
    auto out = choose_calibrations(histograms_, percentile, quantized_bins);
    auto it = histograms_.find(kLogits);
    if (it != histograms_.end()) {
        const auto r = calibrate_range(it->second, {CalibrationMethod::MinMax});
        out[kLogits] = {CalibrationMethod::MinMax, r, expected_quantization_mse(it->second, r)};
    }
    return out;
}

ActivationObserver collect_activations(model::MobileNetV2& net, const CalibrationSet& set, int batch_size, bool progress) {
    if (batch_size < 1) throw Error("calibration: batch size must be at least 1");
    ActivationObserver obs;
    const auto s = static_cast<std::int64_t>(set.image_size());
    ProgressBar bar("calibrating activations", set.size(), progress);
    for (std::size_t begin = 0; begin < set.size(); begin += static_cast<std::size_t>(batch_size)) {
        const std::size_t n = std::min(set.size() - begin, static_cast<std::size_t>(batch_size));
        auto batch = torch::empty({static_cast<std::int64_t>(n), 3, s, s}, torch::kFloat32);
        for (std::size_t i = 0; i < n; ++i) {
            const auto img = set.image(begin + i);
            std::memcpy(batch.data_ptr<float>() + i * img.size(), img.data(), img.size() * sizeof(float));
        }
        obs.observe(net, batch);
        bar.update(begin + n);
    }
    bar.finish();
    return obs;
}

torch::Tensor fake_quant_forward(model::MobileNetV2& net, const torch::Tensor& x, const std::map<std::string, ActivationRange>& ranges,
                                 int from_block) {
    // Each conv recomputed with fake-quantized weights, so gradients reach the float weights
    // through the straight-through estimator; padding as ConvAct does it (TF SAME).
    auto conv_fq = [](model::ConvActImpl& c, const torch::Tensor& in) {
        torch::Tensor t = in;
        if (c.stride != 1 && c.kernel > 1) {
            const auto ph = model::same_padding(static_cast<int>(t.size(2)), c.kernel, c.stride);
            const auto pw = model::same_padding(static_cast<int>(t.size(3)), c.kernel, c.stride);
            if (ph.before || ph.after || pw.before || pw.after) t = torch::constant_pad_nd(t, {pw.before, pw.after, ph.before, ph.after}, 0);
        }
        const auto& o = c.conv->options;
        const auto pad = c10::get<torch::ExpandingArray<2>>(o.padding());
        auto y = torch::conv2d(t, fake_quantize_per_channel(c.conv->weight), c.conv->bias, *o.stride(), *pad, *o.dilation(), o.groups());
        return c.relu6 ? torch::hardtanh(y, 0.0, 6.0) : y;
    };
    // The classifier's weight is fake-quantized the same way for the call (Linear has no hook either).
    auto& fc = net->classifier;
    const auto fc_weight = fc->weight;
    struct RestoreWeight {
        torch::nn::Linear& fc;
        torch::Tensor w;
        ~RestoreWeight() { fc->weight = w; }
    } restore{fc, fc_weight};
    fc->weight = fake_quantize_per_channel(fc_weight);
    return walk_quantized_tensors(
        net, x,
        [&](const std::string& name, torch::Tensor t) {
            auto it = ranges.find(name);
            if (it == ranges.end()) throw Error("fake-quant forward: no calibrated range for tensor " + name);
            return fake_quantize(t, asymmetric_int8(it->second));
        },
        conv_fq, from_block);
}

torch::Tensor fake_quantize(const torch::Tensor& x, QuantParams q) {
    if (!(q.scale > 0.0f)) throw Error("fake_quantize: scale must be positive");
    auto v = torch::clamp(round_half_away(x.detach() / q.scale) + q.zero_point, -128, 127);
    auto dq = (v - q.zero_point) * q.scale;
    return x + (dq - x).detach();
}

torch::Tensor fake_quantize_per_channel(const torch::Tensor& w) {
    if (w.dim() < 2) throw Error("fake_quantize_per_channel: expected a weight with an output-channel dimension and at least one more");
    auto wd = w.detach();
    auto amax = wd.abs().flatten(1).amax(1);
    auto scale = torch::where(amax > 0, amax / 127.0f, torch::ones_like(amax));
    std::vector<std::int64_t> shape(static_cast<std::size_t>(w.dim()), 1);
    shape[0] = w.size(0);
    scale = scale.view(shape);
    auto dq = torch::clamp(round_half_away(wd / scale), -127, 127) * scale;
    return w + (dq - w).detach();
}

}  // namespace firesight::compress
