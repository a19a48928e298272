// Pruning for the compression stage: unstructured magnitude pruning with masks that survive
// fine-tuning (polynomial sparsity schedule), and structured removal of hidden channels that
// makes a MobileNetV2 genuinely smaller.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "firesight/model/mobilenet_v2.h"

namespace firesight::compress {

// Which weights magnitude pruning may touch. The defaults follow what pays on the engine:
// 1x1 convs and the classifier hold ~95% of MobileNetV2's weights and are the layers XNNPACK's
// sparse path runs; depthwise 3x3 convs hold few weights and each one matters (one filter per
// channel), and the first conv sees raw pixels with only 3 input channels, so pruning either
// costs accuracy for almost no saving.
struct PruneScope {
    bool pointwise_convs = true;  // conv weights with a 1x1 kernel
    bool linear = true;           // 2-D weights (the classifier)
    bool spatial_convs = false;   // conv weights with a larger kernel (depthwise, first conv)
};

// Names of the weight parameters of `net` that `scope` allows, in registration order.
std::vector<std::string> prunable_weights(torch::nn::Module& net, const PruneScope& scope = {});

enum class SparsityGranularity {
    PerLayer,  // every layer gets the target sparsity
    Global,    // the target holds over all eligible weights together; big layers lose more
};

// Masks (1 keep, 0 pruned, same shape as each weight) that zero exactly
// round(sparsity * count) weights, smallest |w| first, per layer or globally. Ties are broken by
// position (earlier flat index first, earlier name in the map's order first), so the result is
// deterministic. `scores` replaces |w| as the ranking when given (same keys and shapes).
std::map<std::string, torch::Tensor> magnitude_masks(const std::map<std::string, torch::Tensor>& weights,
                                                     double sparsity, SparsityGranularity granularity,
                                                     const std::map<std::string, torch::Tensor>* scores = nullptr);

// Zhu & Gupta's gradual pruning: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3, updated every
// dt steps from t0 for n updates; s_i before t0 and s_f after.
struct PolynomialSchedule {
    double initial_sparsity = 0.0;
    double final_sparsity = 0.5;
    std::int64_t begin_step = 0;      // t0
    std::int64_t num_updates = 10;    // n
    std::int64_t update_every = 100;  // dt
    // The sparsity in force at `step` (the value of the last update at or before it).
    double sparsity_at(std::int64_t step) const;
    // Whether the masks should be recomputed at `step`.
    bool is_update_step(std::int64_t step) const;
    std::int64_t end_step() const { return begin_step + num_updates * update_every; }
};

// Masks per parameter name, kept through fine-tuning: call apply() after every optimizer step
// (momentum would otherwise move pruned weights off zero), and on_step() to follow a schedule.
// Masks only grow: a weight pruned once stays pruned.
class PruningState {
public:
    PruningState(torch::nn::Module& net, std::vector<std::string> weight_names,
                 SparsityGranularity granularity = SparsityGranularity::PerLayer);
    // Recomputes the masks for `sparsity` and zeroes the pruned weights.
    void prune_to(double sparsity);
    // Zeroes the pruned weights again (no autograd).
    void apply();
    // Zeroes the gradients of pruned weights; optional, before optimizer.step(), so the
    // optimizer's running statistics do not build up on weights that are gone.
    void mask_gradients();
    // Ranks weights by |w| x the L2 norm of the input channel they read (Sun et al.'s "Wanda"
    // score) instead of |w| alone: a large weight on an input that is nearly always small matters
    // less than a smaller weight on a strong input. `norms[name]` is a 1-D tensor with one entry per
    // input channel (dim 1 of the weight); names not given keep plain magnitude.
    void set_input_norms(const std::map<std::string, torch::Tensor>& norms);
    // Follows a schedule: prunes when `step` is an update step, then applies the masks.
    void on_step(std::int64_t step, const PolynomialSchedule& schedule);

    const std::map<std::string, torch::Tensor>& masks() const { return masks_; }
    double target_sparsity() const { return target_; }
    // Fraction of exact zeros in the eligible weights (all together, or one of them).
    double measured_sparsity() const;
    double measured_sparsity(const std::string& name) const;

private:
    std::map<std::string, torch::Tensor> weights_;  // share storage with the module's parameters
    std::map<std::string, torch::Tensor> masks_;
    std::map<std::string, torch::Tensor> input_norms_;  // broadcastable to the weight's shape
    SparsityGranularity granularity_;
    double target_ = 0.0;
};

// Structured pruning of the hidden (expanded) channels of the inverted-residual blocks.
struct ChannelPruneOptions {
    double fraction = 0.25;  // of each block's hidden channels to remove
    int round_to = 1;        // keep a multiple of this many channels (8 suits SIMD kernels)
    int min_channels = 8;    // never keep fewer
};

// Per inverted-residual block (features.1 .. features.17) the hidden channels to keep, in
// ascending order: those whose expansion-conv filter has the largest L1 norm (ties: lower
// index kept). Blocks without an expansion conv (t = 1) keep all channels.
std::vector<std::vector<std::int64_t>> select_hidden_channels(model::MobileNetV2& net, const ChannelPruneOptions& opt);

// A new, smaller MobileNetV2 holding only the `keep` channels of each block: the expansion conv's
// output filters and biases, the matching depthwise filters and biases, and the projection conv's
// input columns. The network's output is unchanged when the removed channels' weights were zero.
// features.1 has no expansion conv: its hidden channels are features.0's outputs, which go with them.
model::MobileNetV2 remove_hidden_channels(model::MobileNetV2& net, const std::vector<std::vector<std::int64_t>>& keep);

// select_hidden_channels + remove_hidden_channels.
model::MobileNetV2 prune_hidden_channels(model::MobileNetV2& net, const ChannelPruneOptions& opt);

// Activation-aware choice of hidden channels: for block b (features.b, b in 1..17) `fractions[b - 1]`
// of its hidden channels are removed, keeping those that contribute most to the block's output
// over `images` (N x 3 x H x W, preprocessed): the L2 norm of the channel after the depthwise conv
// times the L2 norm of its projection column. Kept counts are rounded up to `round_to`, at least
// `min_channels`; for features.1 (no expansion conv) that removes features.0's outputs. Ascending channel lists, as
// remove_hidden_channels takes them.
std::vector<std::vector<std::int64_t>> select_hidden_channels_by_contribution(model::MobileNetV2& net, const torch::Tensor& images,
                                                                              const std::vector<double>& fractions, int round_to = 8,
                                                                              int min_channels = 8);

// Activation-aware choice of the embedding channels (features.18's outputs, which the classifier
// reads after pooling) to keep: `fraction` of them removed (kept count rounded up to `round_to`,
// at least `min_channels`), keeping those with the largest L2 norm of the pooled channel over
// `images` times the L2 norm of the channel's classifier column. Ascending, as
// remove_embedding_channels takes them.
std::vector<std::int64_t> select_embedding_channels_by_contribution(model::MobileNetV2& net, const torch::Tensor& images, double fraction,
                                                                    int round_to = 8, int min_channels = 8);

// A new MobileNetV2 whose embedding holds only the `keep` channels: features.18's filters and
// biases and the classifier's matching input columns; every other weight is copied. The logits
// are unchanged when the removed channels' classifier columns were zero.
model::MobileNetV2 remove_embedding_channels(model::MobileNetV2& net, const std::vector<std::int64_t>& keep);

// Refits the projection conv (weights and bias) of each block in `blocks` (feature indices) of
// `pruned` by ridge least squares, so that the block's output matches `reference`'s on `images`.
// Blocks are refitted in network order, each on the input that the already refitted blocks
// before it give, so the fit also corrects the error that earlier pruning left. A projection is
// linear (no activation), so this is exact least squares over every position of every image.
// `pruned` and `reference` must have the same block structure (widths may differ). Returns, per
// refitted block, the relative error ||output - target|| / ||target|| after the fit.
std::vector<double> reconstruct_projections(model::MobileNetV2& pruned, model::MobileNetV2& reference, const torch::Tensor& images,
                                            const std::vector<int>& blocks, double ridge = 1e-4);

std::int64_t count_parameters(torch::nn::Module& net);

}  // namespace firesight::compress
