#include "firesight/compress/prune.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "firesight/common/error.h"

namespace firesight::compress {

namespace {

void check_sparsity(double s, const char* where) {
    if (!(s >= 0.0 && s <= 1.0)) throw Error(std::string(where) + ": sparsity " + std::to_string(s) + " is not in [0, 1]");
}

std::int64_t pruned_count(double sparsity, std::int64_t n) {
    return std::clamp<std::int64_t>(std::llround(sparsity * static_cast<double>(n)), 0, n);
}

// Mask that zeroes the k lowest scores; a stable sort makes equal scores go in flat-index order.
torch::Tensor lowest_k_mask(const torch::Tensor& flat_scores, std::int64_t k) {
    auto mask = torch::ones_like(flat_scores);
    if (k == 0) return mask;
    auto order = std::get<1>(torch::sort(flat_scores, /*stable=*/true, /*dim=*/0, /*descending=*/false));
    mask.index_fill_(0, order.slice(0, 0, k), 0.0);
    return mask;
}

model::InvertedResidualImpl& block_at(model::MobileNetV2& net, int index) {
    auto* b = net->features->ptr(static_cast<std::size_t>(index))->as<model::InvertedResidualImpl>();
    if (!b) throw Error("features." + std::to_string(index) + " is not an inverted-residual block");
    return *b;
}

constexpr int kFirstBlock = 1;
constexpr int kLastBlock = model::MobileNetV2Impl::kFeatureBlocks - 2;  // features.17

// Fills every parameter of `out` (a narrower copy of `net`'s architecture) from the parameter of
// `net` with the same name, passed through `select` (which keeps the channels `out` has), and
// gives `out` net's training mode. `what` names the caller in errors.
model::MobileNetV2 copy_selected_parameters(model::MobileNetV2& net, model::MobileNetV2 out, const char* what,
                                            const std::function<torch::Tensor(const std::string&, torch::Tensor)>& select) {
    torch::NoGradGuard no_grad;
    auto src = net->named_parameters();
    for (auto& p : out->named_parameters()) {
        const std::string& name = p.key();
        const auto* s = src.find(name);
        if (!s) throw Error(std::string(what) + ": source model has no parameter " + name);
        const torch::Tensor v = select(name, *s);
        if (v.sizes() != p.value().sizes()) throw Error(std::string(what) + ": shape mismatch for " + name);
        p.value().copy_(v);
    }
    out->train(net->is_training());
    return out;
}

}  // namespace

std::vector<std::string> prunable_weights(torch::nn::Module& net, const PruneScope& scope) {
    std::vector<std::string> names;
    for (const auto& p : net.named_parameters()) {
        const std::string& name = p.key();
        if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
        const auto& w = p.value();
        bool ok = false;
        if (w.dim() == 2) ok = scope.linear;
        else if (w.dim() == 4) ok = (w.size(2) == 1 && w.size(3) == 1) ? scope.pointwise_convs : scope.spatial_convs;
        if (ok) names.push_back(name);
    }
    return names;
}

std::map<std::string, torch::Tensor> magnitude_masks(const std::map<std::string, torch::Tensor>& weights,
                                                     double sparsity, SparsityGranularity granularity,
                                                     const std::map<std::string, torch::Tensor>* scores) {
    check_sparsity(sparsity, "magnitude_masks");
    torch::NoGradGuard no_grad;
    auto score_of = [&](const std::string& name, const torch::Tensor& w) {
        if (!scores) return w.detach().abs().flatten().to(torch::kFloat64);
        auto it = scores->find(name);
        if (it == scores->end() || it->second.numel() != w.numel())
            throw Error("magnitude_masks: no score tensor of " + std::to_string(w.numel()) + " values for " + name);
        return it->second.detach().flatten().to(torch::kFloat64);
    };
    std::map<std::string, torch::Tensor> masks;
    if (granularity == SparsityGranularity::PerLayer) {
        for (const auto& [name, w] : weights) {
            auto m = lowest_k_mask(score_of(name, w), pruned_count(sparsity, w.numel()));
            masks[name] = m.to(w.dtype()).view(w.sizes());
        }
        return masks;
    }
    std::vector<torch::Tensor> all;
    std::int64_t total = 0;
    for (const auto& [name, w] : weights) {
        all.push_back(score_of(name, w));
        total += w.numel();
    }
    if (all.empty()) return masks;
    auto flat = lowest_k_mask(torch::cat(all), pruned_count(sparsity, total));
    std::int64_t offset = 0;
    for (const auto& [name, w] : weights) {
        masks[name] = flat.slice(0, offset, offset + w.numel()).to(w.dtype()).view(w.sizes()).clone();
        offset += w.numel();
    }
    return masks;
}

double PolynomialSchedule::sparsity_at(std::int64_t step) const {
    check_sparsity(initial_sparsity, "PolynomialSchedule.initial_sparsity");
    check_sparsity(final_sparsity, "PolynomialSchedule.final_sparsity");
    if (num_updates <= 0 || update_every <= 0) throw Error("PolynomialSchedule: num_updates and update_every must be positive");
    if (step <= begin_step) return initial_sparsity;
    if (step >= end_step()) return final_sparsity;
    const std::int64_t last_update = begin_step + (step - begin_step) / update_every * update_every;
    const double progress = static_cast<double>(last_update - begin_step) / static_cast<double>(num_updates * update_every);
    // s_f + (s_i - s_f)(1 - p)^3 rearranged so that p = 0 gives s_i exactly (no rounding step down).
    return initial_sparsity + (final_sparsity - initial_sparsity) * (1.0 - std::pow(1.0 - progress, 3.0));
}

bool PolynomialSchedule::is_update_step(std::int64_t step) const {
    if (update_every <= 0) return false;
    return step >= begin_step && step <= end_step() && (step - begin_step) % update_every == 0;
}

PruningState::PruningState(torch::nn::Module& net, std::vector<std::string> weight_names, SparsityGranularity granularity)
    : granularity_(granularity) {
    auto params = net.named_parameters();
    for (const auto& name : weight_names) {
        const auto* p = params.find(name);
        if (!p) throw Error("PruningState: the model has no parameter named " + name);
        weights_[name] = *p;
        masks_[name] = torch::ones_like(*p).detach();
    }
}

void PruningState::prune_to(double sparsity) {
    check_sparsity(sparsity, "PruningState::prune_to");
    // Masks only grow: already-pruned weights rank below every live one (score -1), so they stay
    // pruned, and a lower target than before keeps the current masks.
    sparsity = std::max(sparsity, target_);
    std::map<std::string, torch::Tensor> scores;
    {
        torch::NoGradGuard no_grad;
        for (const auto& [name, w] : weights_) {
            auto score = w.detach().abs();
            if (auto it = input_norms_.find(name); it != input_norms_.end()) score = score * it->second;
            scores[name] = torch::where(masks_[name] == 0, torch::full_like(w, -1.0), score);
        }
    }
    masks_ = magnitude_masks(weights_, sparsity, granularity_, &scores);
    target_ = sparsity;
    apply();
}

void PruningState::set_input_norms(const std::map<std::string, torch::Tensor>& norms) {
    for (const auto& [name, n] : norms) {
        auto it = weights_.find(name);
        if (it == weights_.end()) throw Error("PruningState::set_input_norms: " + name + " is not one of the pruned weights");
        const auto& w = it->second;
        if (w.dim() < 2 || n.dim() != 1 || n.size(0) != w.size(1))
            throw Error("PruningState::set_input_norms: " + name + " reads " + std::to_string(w.dim() < 2 ? 0 : w.size(1)) +
                        " input channels, the norms have " + std::to_string(n.numel()));
        std::vector<std::int64_t> shape(static_cast<std::size_t>(w.dim()), 1);
        shape[1] = w.size(1);
        // An input that was always zero (a dead ReLU channel) would give all its weights score 0,
        // tied with exact zeros, and the tie-break by position could then keep zeros unmasked. A
        // floor far below every live norm keeps them ranked by |w|, after the zeros.
        auto norm = n.detach().to(w.dtype());
        const double floor = std::max(norm.mean().item<double>(), 1e-30) * 1e-6;
        input_norms_[name] = (norm + floor).reshape(shape);
    }
}

void PruningState::apply() {
    torch::NoGradGuard no_grad;
    for (auto& [name, w] : weights_) w.mul_(masks_.at(name));
}

void PruningState::mask_gradients() {
    torch::NoGradGuard no_grad;
    for (auto& [name, w] : weights_)
        if (w.grad().defined()) w.mutable_grad().mul_(masks_.at(name));
}

void PruningState::on_step(std::int64_t step, const PolynomialSchedule& schedule) {
    if (schedule.is_update_step(step)) prune_to(schedule.sparsity_at(step));
    else apply();
}

double PruningState::measured_sparsity() const {
    std::int64_t zeros = 0, total = 0;
    for (const auto& [name, w] : weights_) {
        zeros += (w == 0).sum().item<std::int64_t>();
        total += w.numel();
    }
    return total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
}

double PruningState::measured_sparsity(const std::string& name) const {
    auto it = weights_.find(name);
    if (it == weights_.end()) throw Error("PruningState: no pruned weight named " + name);
    return (it->second == 0).sum().item<double>() / static_cast<double>(it->second.numel());
}

std::vector<std::vector<std::int64_t>> select_hidden_channels(model::MobileNetV2& net, const ChannelPruneOptions& opt) {
    if (!(opt.fraction >= 0.0 && opt.fraction < 1.0)) throw Error("channel pruning: fraction " + std::to_string(opt.fraction) + " is not in [0, 1)");
    if (opt.round_to < 1 || opt.min_channels < 1) throw Error("channel pruning: round_to and min_channels must be at least 1");
    torch::NoGradGuard no_grad;
    std::vector<std::vector<std::int64_t>> keep;
    for (int b = kFirstBlock; b <= kLastBlock; ++b) {
        auto& blk = block_at(net, b);
        const std::int64_t hidden = blk.depthwise->conv->weight.size(0);
        std::vector<std::int64_t> k;
        if (!blk.expand) {
            for (std::int64_t c = 0; c < hidden; ++c) k.push_back(c);
            keep.push_back(std::move(k));
            continue;
        }
        std::int64_t n = static_cast<std::int64_t>(std::ceil(static_cast<double>(hidden) * (1.0 - opt.fraction)));
        n = (n + opt.round_to - 1) / opt.round_to * opt.round_to;
        n = std::clamp<std::int64_t>(std::max<std::int64_t>(n, opt.min_channels), 1, hidden);
        auto l1 = blk.expand->conv->weight.detach().abs().sum({1, 2, 3}).to(torch::kFloat64);
        // Stable descending sort: among equal norms the lower index comes first and is kept.
        auto order = std::get<1>(torch::sort(l1, /*stable=*/true, /*dim=*/0, /*descending=*/true)).slice(0, 0, n);
        order = std::get<0>(torch::sort(order));
        auto acc = order.accessor<std::int64_t, 1>();
        for (std::int64_t i = 0; i < n; ++i) k.push_back(acc[i]);
        keep.push_back(std::move(k));
    }
    return keep;
}

model::MobileNetV2 remove_hidden_channels(model::MobileNetV2& net, const std::vector<std::vector<std::int64_t>>& keep) {
    const std::size_t blocks = kLastBlock - kFirstBlock + 1;
    if (keep.size() != blocks)
        throw Error("remove_hidden_channels: expected channel lists for " + std::to_string(blocks) + " blocks, got " + std::to_string(keep.size()));
    model::MobileNetV2Options opt;
    opt.num_classes = net->num_classes();
    opt.dropout = net->dropout->options.p();
    opt.embedding_channels = net->embedding_channels();
    std::map<std::string, torch::Tensor> index;  // parameter name prefix of a block -> kept channels
    for (int b = kFirstBlock; b <= kLastBlock; ++b) {
        auto& blk = block_at(net, b);
        const auto& k = keep[static_cast<std::size_t>(b - kFirstBlock)];
        const std::int64_t hidden = blk.depthwise->conv->weight.size(0);
        const std::string where = "remove_hidden_channels: features." + std::to_string(b);
        if (k.empty()) throw Error(where + ": cannot remove every hidden channel");
        for (std::size_t i = 0; i < k.size(); ++i)
            if (k[i] < 0 || k[i] >= hidden || (i > 0 && k[i] <= k[i - 1]))
                throw Error(where + ": channel list must be ascending, unique and below " + std::to_string(hidden));
        // Without an expansion conv (features.1) the hidden channels are the block's inputs:
        // features.0's outputs go with them.
        if (!blk.expand && b != kFirstBlock && static_cast<std::int64_t>(k.size()) != hidden)
            throw Error(where + ": has no expansion conv, so its hidden channels are its inputs and cannot be removed");
        opt.hidden_channels.push_back(static_cast<int>(k.size()));
        index["features." + std::to_string(b) + "."] = torch::tensor(k, torch::kInt64);
        if (!blk.expand) index["features." + std::to_string(b - 1) + "."] = index["features." + std::to_string(b) + "."];
    }
    return copy_selected_parameters(net, model::MobileNetV2(opt), "remove_hidden_channels", [&](const std::string& name, torch::Tensor v) {
        const auto dot = name.find('.', 9);  // after "features."
        auto it = name.rfind("features.", 0) == 0 && dot != std::string::npos ? index.find(name.substr(0, dot + 1)) : index.end();
        if (it == index.end()) return v;
        const std::string part = name.substr(dot + 1);
        if (part.rfind("expand.", 0) == 0 || part.rfind("depthwise.", 0) == 0 || part.rfind("conv.", 0) == 0)
            return v.index_select(0, it->second);  // conv.: features.0, the stem
        if (part == "project.conv.weight") return v.index_select(1, it->second);
        return v;
    });
}

model::MobileNetV2 prune_hidden_channels(model::MobileNetV2& net, const ChannelPruneOptions& opt) {
    return remove_hidden_channels(net, select_hidden_channels(net, opt));
}

std::vector<std::vector<std::int64_t>> select_hidden_channels_by_contribution(model::MobileNetV2& net, const torch::Tensor& images,
                                                                              const std::vector<double>& fractions, int round_to,
                                                                              int min_channels) {
    const std::size_t blocks = kLastBlock - kFirstBlock + 1;
    if (fractions.size() != blocks)
        throw Error("channel pruning: expected " + std::to_string(blocks) + " fractions, got " + std::to_string(fractions.size()));
    for (double f : fractions)
        if (!(f >= 0.0 && f < 1.0)) throw Error("channel pruning: fraction " + std::to_string(f) + " is not in [0, 1)");
    if (round_to < 1 || min_channels < 1) throw Error("channel pruning: round_to and min_channels must be at least 1");
    if (images.dim() != 4 || images.size(0) < 1) throw Error("channel pruning: expected a non-empty N x 3 x H x W batch of images");
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> sq(blocks);
    for (std::int64_t i = 0; i < images.size(0); i += 16) {
        auto x = net->forward_features(images.slice(0, i, std::min(images.size(0), i + 16)), 0, kFirstBlock);
        for (int b = kFirstBlock; b <= kLastBlock; ++b) {
            auto& blk = block_at(net, b);
            auto h = blk.depthwise->forward(blk.expand ? blk.expand->forward(x) : x);
            auto s = h.to(torch::kFloat64).pow(2).sum({0, 2, 3});
            auto& acc = sq[static_cast<std::size_t>(b - kFirstBlock)];
            acc = acc.defined() ? acc + s : s;
            auto y = blk.project->forward(h);
            x = blk.use_residual ? x + y : y;
        }
    }
    std::vector<std::vector<std::int64_t>> keep;
    for (int b = kFirstBlock; b <= kLastBlock; ++b) {
        auto& blk = block_at(net, b);
        const std::int64_t hidden = blk.depthwise->conv->weight.size(0);
        const double f = fractions[static_cast<std::size_t>(b - kFirstBlock)];
        std::vector<std::int64_t> k;
        // features.1 (no expansion conv) is ranked like the others: removing its hidden channels
        // removes features.0's outputs (remove_hidden_channels).
        if (f == 0.0) {
            for (std::int64_t c = 0; c < hidden; ++c) k.push_back(c);
            keep.push_back(std::move(k));
            continue;
        }
        std::int64_t n = static_cast<std::int64_t>(std::ceil(static_cast<double>(hidden) * (1.0 - f)));
        n = (n + round_to - 1) / round_to * round_to;
        n = std::clamp<std::int64_t>(std::max<std::int64_t>(n, min_channels), 1, hidden);
        // What channel c adds to the block output is W[:, c] * h_c: its size over the images is at
        // most ||W[:, c]|| * ||h_c||.
        const auto column = blk.project->conv->weight.detach().to(torch::kFloat64).pow(2).sum({0, 2, 3}).sqrt();
        const auto score = sq[static_cast<std::size_t>(b - kFirstBlock)].sqrt() * column;
        auto order = std::get<1>(torch::sort(score, /*stable=*/true, /*dim=*/0, /*descending=*/true)).slice(0, 0, n);
        order = std::get<0>(torch::sort(order));
        auto acc = order.accessor<std::int64_t, 1>();
        for (std::int64_t i = 0; i < n; ++i) k.push_back(acc[i]);
        keep.push_back(std::move(k));
    }
    return keep;
}

std::vector<std::int64_t> select_embedding_channels_by_contribution(model::MobileNetV2& net, const torch::Tensor& images, double fraction,
                                                                    int round_to, int min_channels) {
    if (!(fraction >= 0.0 && fraction < 1.0)) throw Error("embedding pruning: fraction " + std::to_string(fraction) + " is not in [0, 1)");
    if (round_to < 1 || min_channels < 1) throw Error("embedding pruning: round_to and min_channels must be at least 1");
    if (images.dim() != 4 || images.size(0) < 1) throw Error("embedding pruning: expected a non-empty N x 3 x H x W batch of images");
    torch::NoGradGuard no_grad;
    const std::int64_t width = net->embedding_channels();
    auto sq = torch::zeros({width}, torch::kFloat64);
    for (std::int64_t i = 0; i < images.size(0); i += 16)
        sq += net->embed(images.slice(0, i, std::min(images.size(0), i + 16))).to(torch::kFloat64).pow(2).sum(0);
    std::int64_t n = static_cast<std::int64_t>(std::ceil(static_cast<double>(width) * (1.0 - fraction)));
    n = (n + round_to - 1) / round_to * round_to;
    n = std::clamp<std::int64_t>(std::max<std::int64_t>(n, min_channels), 1, width);
    // Channel c adds W[:, c] * e_c to the logits: over the images at most ||W[:, c]|| * ||e_c||.
    const auto column = net->classifier->weight.detach().to(torch::kFloat64).pow(2).sum(0).sqrt();
    const auto score = sq.sqrt() * column;
    auto order = std::get<1>(torch::sort(score, /*stable=*/true, /*dim=*/0, /*descending=*/true)).slice(0, 0, n);
    order = std::get<0>(torch::sort(order)).contiguous();
    return std::vector<std::int64_t>(order.data_ptr<std::int64_t>(), order.data_ptr<std::int64_t>() + n);
}

model::MobileNetV2 remove_embedding_channels(model::MobileNetV2& net, const std::vector<std::int64_t>& keep) {
    const std::int64_t width = net->embedding_channels();
    if (keep.empty()) throw Error("remove_embedding_channels: cannot remove every embedding channel");
    for (std::size_t i = 0; i < keep.size(); ++i)
        if (keep[i] < 0 || keep[i] >= width || (i > 0 && keep[i] <= keep[i - 1]))
            throw Error("remove_embedding_channels: channel list must be ascending, unique and below " + std::to_string(width));
    model::MobileNetV2Options opt;
    opt.num_classes = net->num_classes();
    opt.dropout = net->dropout->options.p();
    opt.embedding_channels = static_cast<int>(keep.size());
    for (int b = kFirstBlock; b <= kLastBlock; ++b) opt.hidden_channels.push_back(static_cast<int>(block_at(net, b).depthwise->conv->weight.size(0)));
    const auto index = torch::tensor(keep, torch::kInt64);
    const std::string last = "features." + std::to_string(model::kFeatureBlocks - 1) + ".";
    return copy_selected_parameters(net, model::MobileNetV2(opt), "remove_embedding_channels", [&](const std::string& name, torch::Tensor v) {
        if (name.rfind(last, 0) == 0) return v.index_select(0, index);
        if (name == "classifier.weight") return v.index_select(1, index);
        return v;
    });
}

std::vector<double> reconstruct_projections(model::MobileNetV2& pruned, model::MobileNetV2& reference, const torch::Tensor& images,
                                            const std::vector<int>& blocks, double ridge) {
    if (images.dim() != 4 || images.size(0) < 1) throw Error("reconstruct_projections: expected a non-empty N x 3 x H x W batch of images");
    if (!(ridge >= 0.0)) throw Error("reconstruct_projections: ridge must be 0 or more");
    for (std::size_t i = 0; i < blocks.size(); ++i)
        if (blocks[i] < kFirstBlock || blocks[i] > kLastBlock || (i > 0 && blocks[i] <= blocks[i - 1]))
            throw Error("reconstruct_projections: blocks must be ascending, unique, between " + std::to_string(kFirstBlock) + " and " +
                        std::to_string(kLastBlock));
    if (blocks.empty()) return {};
    for (int b = kFirstBlock; b <= kLastBlock; ++b)
        if (block_at(pruned, b).project->conv->weight.size(0) != block_at(reference, b).project->conv->weight.size(0) ||
            block_at(pruned, b).use_residual != block_at(reference, b).use_residual)
            throw Error("reconstruct_projections: features." + std::to_string(b) + " differs in structure between the two networks");
    torch::NoGradGuard no_grad;
    // Both networks' activations of every image at the current block, in batches: the fit of a
    // block needs all of them before the next block can run.
    std::vector<torch::Tensor> xo, xp;
    for (std::int64_t i = 0; i < images.size(0); i += 8) {
        xo.push_back(images.slice(0, i, std::min(images.size(0), i + 8)));
        xp.push_back(xo.back());
    }
    std::vector<double> errors;
    std::size_t next = 0;
    for (int i = 0; i <= blocks.back(); ++i) {
        const bool refit = next < blocks.size() && blocks[next] == i;
        double err2 = 0.0, ref2 = 0.0;
        if (refit) {
            ++next;
            auto& pb = block_at(pruned, i);
            auto& rb = block_at(reference, i);
            const std::int64_t c = pb.depthwise->conv->weight.size(0);
            const std::int64_t out = pb.project->conv->weight.size(0);
            auto a = torch::zeros({c + 1, c + 1}, torch::kFloat64);
            auto rhs = torch::zeros({c + 1, out}, torch::kFloat64);
            for (std::size_t k = 0; k < xo.size(); ++k) {
                auto target = rb.forward(xo[k]);
                if (pb.use_residual) target = target - xp[k];
                auto h = pb.depthwise->forward(pb.expand ? pb.expand->forward(xp[k]) : xp[k]);
                auto hm = h.permute({0, 2, 3, 1}).reshape({-1, c}).to(torch::kFloat64);
                hm = torch::cat({hm, torch::ones({hm.size(0), 1}, torch::kFloat64)}, 1);
                const auto tm = target.permute({0, 2, 3, 1}).reshape({-1, out}).to(torch::kFloat64);
                a += hm.t().mm(hm);
                rhs += hm.t().mm(tm);
            }
            // Ridge on the weights (not the bias), relative to the mean energy of a hidden
            // channel, so a channel that never fired gets weight 0 instead of a singular system.
            auto w = a.slice(0, 0, c).slice(1, 0, c);
            const double reg = ridge * std::max(w.diagonal().mean().item<double>(), 1e-12);
            w.diagonal().add_(reg);
            const auto sol = torch::linalg_solve(a, rhs);  // [c + 1, out]
            pb.project->conv->weight.copy_(sol.slice(0, 0, c).t().reshape({out, c, 1, 1}).to(pb.project->conv->weight.dtype()));
            pb.project->conv->bias.copy_(sol[c].to(pb.project->conv->bias.dtype()));
        }
        for (std::size_t k = 0; k < xo.size(); ++k) {
            xo[k] = reference->forward_features(xo[k], i, i + 1);
            xp[k] = pruned->forward_features(xp[k], i, i + 1);
            if (refit) {
                err2 += (xp[k] - xo[k]).to(torch::kFloat64).pow(2).sum().item<double>();
                ref2 += xo[k].to(torch::kFloat64).pow(2).sum().item<double>();
            }
        }
        if (refit) errors.push_back(std::sqrt(err2 / std::max(ref2, 1e-300)));
    }
    return errors;
}

std::int64_t count_parameters(torch::nn::Module& net) {
    std::int64_t n = 0;
    for (const auto& p : net.parameters()) n += p.numel();
    return n;
}

}  // namespace firesight::compress
