// The libtorch side of compression: centroid fine-tuning of clustered weights, activation
// statistics of a MobileNetV2 over a calibration set (for int8 ranges), and fake quantization
// for quantization-aware fine-tuning.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "firesight/compress/calibrate.h"
#include "firesight/compress/cluster.h"
#include "firesight/model/mobilenet_v2.h"

namespace firesight::compress {

// A weight tensor clustered in place: weight = centroids[indices], the assignments fixed.
// Fine-tuning trains the centroids: the gradient of each weight is summed into its centroid.
// Per step:  loss.backward(); layer.accumulate_gradient(); optimizer.step(); layer.apply();
// with the optimizer over centroids() (and any unclustered parameters), not over the weight.
class ClusteredLayer {
public:
    ClusteredLayer(std::string name, torch::Tensor weight, const KMeansOptions& opt);
    const std::string& name() const { return name_; }
    torch::Tensor& centroids() { return centroids_; }  // 1-D float leaf, requires grad
    const torch::Tensor& indices() const { return indices_; }  // int64, one per weight (flattened)
    // centroids.grad += sum of weight.grad per cluster, then clears weight.grad. The fixed zero
    // centroid (preserve_zeros) gets no gradient, so pruned weights stay exactly zero.
    void accumulate_gradient();
    // weight = centroids[indices] (no autograd).
    void apply();
    // The current centroids and assignments, for make_palette().
    Clustering clustering() const;
    double initial_squared_error() const { return initial_error_; }

private:
    std::string name_;
    torch::Tensor weight_, centroids_, indices_;
    int zero_centroid_ = -1;
    double initial_error_ = 0.0;
};

// ClusteredLayer for several weights of one module, by parameter name.
class ClusteringState {
public:
    ClusteringState(torch::nn::Module& net, const std::vector<std::string>& weight_names, const KMeansOptions& opt);
    std::vector<torch::Tensor> centroid_parameters();
    void accumulate_gradients();
    void apply();
    std::map<std::string, ClusteredLayer>& layers() { return layers_; }

private:
    std::map<std::string, ClusteredLayer> layers_;
};

// Records a histogram of every tensor that an int8 engine quantizes, running MobileNetV2 block by
// block (libtorch C++ has no forward hooks). Tensor names:
//   input, features.0, features.N.expand, features.N.depthwise, features.N.project (residual blocks
//   only: the addend before the add), features.N (block output), features.18, pooled, logits.
class ActivationObserver {
public:
    explicit ActivationObserver(int bins = 2048) : bins_(bins) {}
    // Runs `net` on x (N x 3 x H x W) without autograd, recording as it goes; returns the logits.
    // The output equals net->forward(x) in eval mode.
    torch::Tensor observe(model::MobileNetV2& net, const torch::Tensor& x);
    // From a later block: x is the input of features[from_block] as the float network computes it
    // (e.g. cached prefix activations); only the tensors of that block on are recorded.
    torch::Tensor observe_from(model::MobileNetV2& net, const torch::Tensor& x, int from_block);
    // Takes the histograms of `other` whose names `which` accepts (e.g. those of a prefix that two
    // nets share), replacing any of the same name here.
    void adopt(const ActivationObserver& other, const std::function<bool(const std::string&)>& which);
    const std::map<std::string, ActivationHistogram>& histograms() const { return histograms_; }
    static constexpr const char* kLogits = "logits";
    // Every tensor's range by one method, except "logits", which always gets min-max: the largest
    // logits look like outliers to percentile and entropy, and clipping them erases the very
    // differences that decide the class.
    std::map<std::string, ActivationRange> ranges(const CalibrationOptions& opt) const;
    // Per tensor the method with the lowest expected quantization error (choose_calibration), with
    // the same exception for "logits".
    std::map<std::string, ChosenRange> chosen_ranges(double percentile = 99.99, int quantized_bins = 128) const;

private:
    void record(const std::string& name, const torch::Tensor& t);
    int bins_;
    std::map<std::string, ActivationHistogram> histograms_;
};

// Runs every image of `set` through `net` (eval mode, batches of batch_size) with a progress bar.
ActivationObserver collect_activations(model::MobileNetV2& net, const CalibrationSet& set, int batch_size = 8, bool progress = true);

// MobileNetV2 computed as an int8 engine would, in float: every conv/linear weight fake-quantized
// per output channel (symmetric), every tensor named in ActivationObserver fake-quantized per tensor
// (asymmetric, from `ranges`; a missing name is an error). Estimates a quantized variant's accuracy
// in libtorch before the engine is built. Weights are restored after the call.
torch::Tensor simulate_int8_forward(model::MobileNetV2& net, const torch::Tensor& x,
                                    const std::map<std::string, ActivationRange>& ranges, bool quantize_weights = true);

// The same int8 computation with autograd, for quantization-aware fine-tuning: weights and
// activations fake-quantized with straight-through gradients (the float weights are what the
// optimizer trains). Respects train/eval mode (dropout). With from_block > 0, x is the float input of
// features[from_block] (cached activations of a frozen prefix) and the walk starts there.
torch::Tensor fake_quant_forward(model::MobileNetV2& net, const torch::Tensor& x, const std::map<std::string, ActivationRange>& ranges,
                                 int from_block = 0);

// Fake quantization for quantization-aware fine-tuning: the forward pass sees the int8-rounded
// values, the backward pass the identity (straight-through estimator, x + (q(x) - x).detach()).
torch::Tensor fake_quantize(const torch::Tensor& x, QuantParams q);
// Per-output-channel symmetric int8 as quantize_weights_per_channel() does (scale from the detached
// max|w| of each channel along dim 0), straight-through in backward.
torch::Tensor fake_quantize_per_channel(const torch::Tensor& w);

}  // namespace firesight::compress
