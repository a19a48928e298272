// The libtorch half of `firesight optimize`. Fine-tuning is kept fast the way the trainer keeps
// its head stage fast: the early blocks (features[0, from)) are compressed once without
// fine-tuning and their output for every training image is cached; only the later blocks (most of
// MobileNetV2's weights) and the classifier train, on that cache, distilled from the fp32 model.
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "firesight/common/blas_info.h"
#include "firesight/common/parallel.h"
#include "firesight/compress/calibrate.h"
#include "firesight/data/reduced_decode.h"
#include "firesight/train/feature_cache.h"
#include "firesight/train/prefix_engine.h"
#include "firesight/compress/compress_torch.h"
#include "firesight/data/dataset.h"
#include "firesight/model/engine_convert.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/passes.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/session.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/compress/optimize.h"
#include "firesight/common/progress.h"
#include "firesight/compress/prune.h"
#include "firesight/train/train.h"
#include "firesight/model/trained_model.h"

namespace fs = std::filesystem;

namespace firesight::compress {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// CPU seconds of the whole process (all threads, user + system) so far.
double process_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

// Adds the wall and CPU time of a scope to a kind of work in OptimizeResult::stages. CPU time is
// what to compare between runs on a shared machine: other programs stretch the wall time.
class StageTimer {
public:
    StageTimer(std::vector<OptimizeStage>& stages, std::string kind) : stages_(stages), kind_(std::move(kind)) {}
    ~StageTimer() {
        const double wall = seconds_since(t0_), cpu = process_cpu_seconds() - cpu0_;
        for (auto& st : stages_)
            if (st.kind == kind_) {
                st.seconds += wall;
                st.cpu_seconds += cpu;
                return;
            }
        stages_.push_back({kind_, wall, cpu});
    }
    StageTimer(const StageTimer&) = delete;
    StageTimer& operator=(const StageTimer&) = delete;

private:
    std::vector<OptimizeStage>& stages_;
    std::string kind_;
    Clock::time_point t0_ = Clock::now();
    double cpu0_ = process_cpu_seconds();
};

// Values per layer for the clustered prefix (make_clustered): 8-bit palettes.
constexpr int kPrefixClusters = 256;

std::string percent_name(double fraction) { return std::to_string(static_cast<int>(std::lround(fraction * 100))); }

void check_options(const OptimizeOptions& o) {
    if (!(o.max_accuracy_drop >= 0)) throw Error("--max-accuracy-drop must be 0 or more (points of accuracy), got " + std::to_string(o.max_accuracy_drop));
    for (double s : o.sparsities)
        if (!(s > 0 && s < 1)) throw Error("--sparsity: " + std::to_string(s) + " is not between 0 and 1 (exclusive)");
    for (int k : o.clusters)
        if (k < 2 || k > 256) throw Error("--clusters: " + std::to_string(k) + " is not between 2 and 256");
    for (const auto& m : o.methods)
        if (m != "auto") parse_calibration_method(m);  // throws naming the accepted values
    if (!(o.channel_fraction >= 0 && o.channel_fraction < 1)) throw Error("--channel-fraction must be in [0, 1)");
    if (!(o.structured_fraction >= 0 && o.structured_fraction < 1)) throw Error("--structured must be in [0, 1)");
    if (!(o.structured_tail_fraction >= 0 && o.structured_tail_fraction < 1)) throw Error("--structured-tail must be in [0, 1)");
    if (!(o.structured_embedding_fraction >= 0 && o.structured_embedding_fraction < 1))
        throw Error("--structured-embedding must be in [0, 1)");
    if (!(o.structured_stem_fraction >= 0 && o.structured_stem_fraction < 1)) throw Error("--structured-stem must be in [0, 1)");
    if (o.calibration < 1) throw Error("--calibration must be at least 1 image");
    if (o.finetune_steps < 1) throw Error("--finetune-steps must be at least 1");
    if (o.finetune_batch < 1) throw Error("--finetune-batch must be at least 1");
    if (o.finetune_from < 1 || o.finetune_from > 18) throw Error("--finetune-from must be a block between 1 and 18");
    if (o.bench_runs < 0) throw Error("--bench-runs must be 0 or more");
    if (o.bench_rounds < 1) throw Error("--bench-rounds must be 1 or more");
    if (o.qat != "auto" && o.qat != "always" && o.qat != "never") throw Error("--qat: '" + o.qat + "' is not one of auto, always, never");
}

// MobileNetV2Impl is not Cloneable; removing no channels is an exact deep copy.
model::MobileNetV2 clone_net(model::MobileNetV2& net) {
    ChannelPruneOptions none;
    none.fraction = 0.0;
    none.min_channels = 1;
    auto c = prune_hidden_channels(net, none);
    c->eval();
    return c;
}

// Whether a parameter or an observed tensor name ("features.N...") belongs to features[0, from).
bool in_prefix(const std::string& param, int from) {
    if (param.rfind("features.", 0) != 0) return false;
    return std::stoi(param.substr(9)) < from;
}

std::vector<std::string> split_names(const std::vector<std::string>& names, int from, bool prefix) {
    std::vector<std::string> out;
    for (const auto& n : names)
        if (in_prefix(n, from) == prefix) out.push_back(n);
    return out;
}

std::vector<torch::Tensor> tail_parameters(model::MobileNetV2& net, int from, const std::set<std::string>& excluded = {}) {
    std::vector<torch::Tensor> out;
    for (auto& p : net->named_parameters())
        if (!in_prefix(p.key(), from) && !excluded.count(p.key())) out.push_back(p.value());
    return out;
}

// Torch activation names (ActivationObserver) -> engine tensor names (engine_convert): a block's
// output is "features.N.add" in the engine for residual blocks and "features.N.project" otherwise.
// The engine's name for a torch weight: features.16.expand.conv.weight -> features.16.expand/weights,
// classifier.weight -> classifier/weights (src/model/engine_convert.cpp names them so).
std::string engine_weight_name(std::string torch_name) {
    for (const std::string suffix : {".conv.weight", ".weight"})
        if (torch_name.size() > suffix.size() && torch_name.compare(torch_name.size() - suffix.size(), suffix.size(), suffix) == 0)
            return torch_name.substr(0, torch_name.size() - suffix.size()) + "/weights";
    throw Error("optimize: no engine name for the weight " + torch_name);
}

std::map<std::string, engine::TensorRange> engine_ranges(model::MobileNetV2& net, const std::map<std::string, ActivationRange>& r) {
    std::map<std::string, engine::TensorRange> out;
    for (const auto& [name, range] : r) {
        std::string engine_name = name;
        if (name.rfind("features.", 0) == 0 && name.find('.', 9) == std::string::npos) {
            const int i = std::stoi(name.substr(9));
            if (auto* b = net->features->ptr(static_cast<std::size_t>(i))->as<model::InvertedResidualImpl>())
                engine_name = name + (b->use_residual ? ".add" : ".project");
        }
        out[engine_name] = {range.min, range.max};
    }
    return out;
}

struct Stage {
    std::string name;
    std::function<void()> run;
};

class Optimizer {
public:
    explicit Optimizer(const OptimizeOptions& o) : opt_(o) {}
    OptimizeResult run();

private:
    std::string data_names() const {
        std::string out;
        for (const auto& r : splits_.roots) out += (out.empty() ? "" : " + ") + fs::absolute(r).lexically_normal().string();
        return out;
    }
    void load_run();
    void decode_training_images();
    // Training images, the fp32 prefix cache and the teacher's outputs; evaluation images. Made on
    // first use, so a rerun whose variants are all finished decodes nothing.
    void ensure_training_data();
    void ensure_eval_images();
    torch::Tensor prefix_cache(model::MobileNetV2& net);
    // The prefix cache for a prefix state (e.g. "fp32", "k16"): variants whose prefix was changed
    // the same way share one (the prefix is never fine-tuned, and k-means is deterministic).
    torch::Tensor shared_cache(const std::string& prefix_key, model::MobileNetV2& net);
    torch::Tensor tail_logits(model::MobileNetV2& net, const torch::Tensor& x);
    // L2 norm of each input channel of every 1x1 conv and the classifier of the fine-tuned blocks,
    // over the training images, for activation-aware pruning scores.
    std::map<std::string, torch::Tensor> tail_input_norms(model::MobileNetV2& net, const torch::Tensor& cache);
    void finetune(model::MobileNetV2& net, const torch::Tensor& cache, const std::string& label, std::vector<torch::Tensor> params,
                  const std::function<void()>& after_backward, const std::function<void(std::int64_t)>& after_step,
                  const std::function<torch::Tensor(const torch::Tensor&)>& forward = {}, int steps = 0,
                  std::vector<torch::Tensor> centroids = {});
    int cluster_steps() const { return std::max(1, opt_.finetune_steps / 2); }
    // `prefix`: the prefix the net shares with others (prefix_key), "" when its own.
    std::map<std::string, ActivationRange> calibrate(model::MobileNetV2& net, const std::string& method, const std::string& prefix);
    // Which prefix a base model has: "fp32" (unchanged), "k256" (clustered at kPrefixClusters), or ""
    // (changed for this base alone: --prune-prefix).
    std::string prefix_key(const std::string& base_name) const;
    fs::path write_engine(model::MobileNetV2& net, const std::string& name, const nlohmann::json& settings,
                          const std::map<std::string, ActivationRange>* int8_ranges);
    void measure(const std::string& name, const nlohmann::json& settings, const fs::path& engine);
    bool finished(const std::string& name);
    // Fine-tuned torch models other variants build on: kept in memory and in OUT/work so a resumed
    // run does not fine-tune them again.
    model::MobileNetV2 base(const std::string& name);
    model::MobileNetV2 make_base(const std::string& name);
    model::MobileNetV2 make_pruned(double sparsity);
    model::MobileNetV2 make_clustered(model::MobileNetV2 from, int k, const std::string& label);
    model::MobileNetV2 make_channel_pruned(double fraction);
    model::MobileNetV2 make_structured(double fraction);
    // The output of features[0, finetune_from) of `net` quantized to int8 (calibrated as its int8
    // variant will be) and run by the runtime, for every training image: what the int8 engine's
    // tail will see, so fine-tuning the tail on it trains it for that prefix's rounding.
    torch::Tensor int8_prefix_cache(model::MobileNetV2& net);
    model::MobileNetV2 make_qat(std::map<std::string, ActivationRange>* ranges);
    void stage_done(const std::string& name);

    OptimizeOptions opt_;
    fs::path model_pt_;
    std::string fingerprint_;
    model::TrainedModel tm_;
    data::DatasetSplits splits_;
    std::optional<train::DiskStore> images_;  // the training images, preprocessed (HWC float), in seeded order
    torch::Tensor calibration_x_;             // the first --calibration of them, NCHW
    torch::Tensor teacher_, fp32_cache_;
    ActivationObserver observer_;                    // the last calibration pass, of observed_net_
    model::MobileNetV2 observed_net_{nullptr};
    std::map<std::string, ActivationObserver> prefix_observers_;  // by prefix_key: a full pass of a net with that prefix
    std::map<std::string, torch::Tensor> caches_;
    eval::EvalImages val_, test_;
    bool eval_loaded_ = false;
    std::map<std::string, model::MobileNetV2> bases_;
    std::map<std::string, nlohmann::json> base_settings_;
    std::map<std::string, std::map<std::string, ActivationRange>> qat_ranges_;
    OptimizeResult result_;
    std::unique_ptr<ProgressBar> bar_;
    std::size_t stages_done_ = 0;
    std::string stage_;
};

void Optimizer::load_run() {
    std::error_code ec;
    if (!fs::exists(opt_.model, ec)) throw Error(opt_.model.string() + ": no such run folder or model.pt");
    model_pt_ = fs::is_directory(opt_.model, ec) ? opt_.model / "model.pt" : opt_.model;
    if (!fs::exists(model_pt_, ec)) throw Error(opt_.model.string() + ": no model.pt in this run folder");
    const fs::path splits_file = model_pt_.parent_path() / "splits.json";
    if (!fs::exists(splits_file, ec)) throw Error(splits_file.string() + ": missing (optimize needs the run's train/val/test lists)");
    tm_ = model::load_trained_model(model_pt_);
    tm_.net->eval();
    splits_ = data::splits_from_json(read_file_text(splits_file), splits_file.string());
    if (splits_.classes != tm_.class_names) throw Error(splits_file.string() + ": its classes differ from those of " + model_pt_.string());
    if (!opt_.data.empty()) {
        if (opt_.data.size() != splits_.roots.size())
            throw Error(splits_file.string() + ": the run was trained on " + std::to_string(splits_.roots.size()) + " data folder(s), --data gives " +
                        std::to_string(opt_.data.size()));
        splits_.roots = opt_.data;
    }
    for (const auto& r : splits_.roots)
        if (!fs::is_directory(r, ec)) throw Error(r.string() + ": no such data folder");
    if (splits_.train.empty()) throw Error(splits_file.string() + ": the training split is empty");
    // Every class must have training images under --data: the folder of another dataset would
    // otherwise be fine-tuned on nothing and measured on nothing.
    for (std::size_t c = 0; c < splits_.classes.size(); ++c) {
        bool any = false;
        for (const auto& s : splits_.train)
            if (s.label == static_cast<int>(c) && fs::exists(splits_.file(s), ec)) {
                any = true;
                break;
            }
        if (!any)
            throw Error(data_names() + ": none of the run's training images of class '" + splits_.classes[c] +
                        "' is there (is this the data the run was trained on?)");
    }
    fingerprint_ = optimize_fingerprint(model_pt_, opt_);
}

void Optimizer::decode_training_images() {
    StageTimer timer(result_.stages, "decode training images");
    std::vector<fs::path> files;
    for (const auto& s : splits_.train) files.push_back(splits_.file(s));
    // All training images in a seeded random order; the first --calibration that decode are the
    // calibration set.
    files = seeded_order(std::move(files), opt_.seed);
    const auto pre = tm_.preprocess;
    const auto size = static_cast<std::int64_t>(pre.size);
    const std::size_t bytes = static_cast<std::size_t>(size * size * 3) * sizeof(float);
    if (bar_) bar_->update(stages_done_, "decoding " + std::to_string(files.size()) + " training images");
    ProgressBar bar("decode", files.size(), opt_.progress && !bar_);
    // The decoded images go to an anonymous file read back with pread (train/feature_cache.h), not
    // the heap: 2,044 images of the main job are 1.2 GB as float, and held in RAM (twice, while
    // copied) they made optimize peak at 3.7 GB against the 2 GB budget.
    images_.emplace(opt_.out / "work");
    std::vector<torch::Tensor> calibration;
    constexpr std::size_t kWindow = 32;  // decoded in parallel, then stored in order
    struct Decoded {
        cv::Mat input;
        std::string error;
    };
    std::vector<Decoded> window(kWindow);
    for (std::size_t begin = 0; begin < files.size(); begin += kWindow) {
        const std::size_t count = std::min(kWindow, files.size() - begin);
        const std::size_t kept_before = images_->size();
        parallel_for(count, worker_count(count), [&](std::size_t i, unsigned) {
            auto& d = window[i];
            d = {};
            try {
                // Large JPEGs decode at a reduced scale (never below the resize's shorter side):
                // fine-tuning does not need the exact inference decode, calibration ranges do, so
                // every image that may land in the calibration set decodes exactly.
                const bool exact = kept_before + i < opt_.calibration + kWindow;
                d.input = data::preprocess(data::decode_image(files[begin + i], exact ? 0 : pre.resize_shorter), pre);
                if (d.input.rows != size || d.input.cols != size || d.input.type() != CV_32FC3 || !d.input.isContinuous())
                    throw Error("preprocessing did not give a " + std::to_string(size) + "x" + std::to_string(size) + " RGB float image");
            } catch (const std::exception& e) {
                d.error = e.what();
            }
        });
        for (std::size_t i = 0; i < count; ++i) {
            auto& d = window[i];
            if (!d.error.empty()) {
                result_.warnings.push_back("training image " + files[begin + i].string() + ": " + d.error + " (skipped)");
                std::fprintf(stderr, "warning: training image skipped: %s: %s\n", files[begin + i].c_str(), d.error.c_str());
                continue;
            }
            images_->append(d.input.ptr<float>(), bytes);
            if (calibration.size() < opt_.calibration)
                calibration.push_back(torch::from_blob(d.input.ptr<float>(), {size, size, 3}).permute({2, 0, 1}).clone());
            d.input.release();
        }
        bar.update(begin + count);
    }
    bar.finish(std::to_string(images_->size()) + " images");
    if (images_->size() == 0) throw Error("optimize: none of the " + std::to_string(files.size()) + " training images could be decoded");
    calibration_x_ = torch::stack(calibration);
}

torch::Tensor Optimizer::prefix_cache(model::MobileNetV2& net) {
    StageTimer timer(result_.stages, "prefix caches");
    torch::NoGradGuard g;
    net->eval();
    const auto n = static_cast<std::int64_t>(images_->size());
    const int size = tm_.preprocess.size;
    if (opt_.finetune_from >= 1 && train::PrefixEngine::available()) {
        // The frozen prefix on the runtime engine (XNNPACK), one single-threaded session per core,
        // as the trainer computes it: several times faster than libtorch's eager kernels at the
        // early blocks' resolutions, and it needs no autograd.
        train::PrefixEngine eng(net, size, opt_.finetune_from, false);
        const auto& chw = eng.prefix_shape();
        auto out = torch::empty({n, chw[0], chw[1], chw[2]});
        const auto per = eng.prefix_size();
        const unsigned workers = worker_count(static_cast<std::size_t>(n));
        std::vector<cv::Mat> input(workers);
        for (auto& m : input) m.create(size, size, CV_32FC3);
        parallel_for(static_cast<std::size_t>(n), workers, [&](std::size_t i, unsigned w) {
            images_->read(i, input[w].ptr<float>());
            eng.run(input[w], out.data_ptr<float>() + static_cast<std::int64_t>(i) * per, nullptr);
        });
        return out;
    }
    std::vector<torch::Tensor> out;
    for (std::int64_t b = 0; b < n; b += 32) {
        const auto e = std::min(n, b + 32);
        auto x = torch::empty({e - b, size, size, 3});
        for (std::int64_t i = b; i < e; ++i) images_->read(static_cast<std::size_t>(i), x[i - b].data_ptr<float>());
        out.push_back(net->forward_features(x.permute({0, 3, 1, 2}).contiguous(), 0, opt_.finetune_from));
    }
    return torch::cat(out);
}

torch::Tensor Optimizer::shared_cache(const std::string& prefix_key, model::MobileNetV2& net) {
    if (prefix_key == "fp32") return fp32_cache_;
    auto it = caches_.find(prefix_key);
    if (it == caches_.end()) it = caches_.emplace(prefix_key, prefix_cache(net)).first;
    return it->second;
}

std::map<std::string, torch::Tensor> Optimizer::tail_input_norms(model::MobileNetV2& net, const torch::Tensor& cache) {
    torch::NoGradGuard g;
    std::map<std::string, torch::Tensor> sq;
    auto add = [&](const std::string& name, const torch::Tensor& x) {
        auto s = x.dim() == 4 ? x.pow(2).sum({0, 2, 3}) : x.pow(2).sum(0);
        auto [it, fresh] = sq.emplace(name, s);
        if (!fresh) it->second += s;
    };
    // A random sample is enough for a norm per channel (the cache is in seeded random order): the
    // first kNormImages, not every image, saves a libtorch pass over the tail per pruned variant.
    constexpr std::int64_t kNormImages = 512;
    const std::int64_t n = std::min(cache.size(0), kNormImages);
    for (std::int64_t b = 0; b < n; b += 64) {
        auto x = cache.slice(0, b, std::min(n, b + 64));
        for (int i = opt_.finetune_from; i < model::kFeatureBlocks; ++i) {
            const std::string p = "features." + std::to_string(i) + ".";
            auto* blk = net->features->ptr(static_cast<std::size_t>(i))->as<model::InvertedResidualImpl>();
            if (!blk) {  // features.18: the last 1x1 conv
                add(p + "conv.weight", x);
                x = net->features->ptr(static_cast<std::size_t>(i))->as<model::ConvActImpl>()->forward(x);
                continue;
            }
            auto h = x;
            if (!blk->expand.is_empty()) {
                add(p + "expand.conv.weight", x);
                h = blk->expand->forward(h);
            }
            h = blk->depthwise->forward(h);
            add(p + "project.conv.weight", h);
            x = blk->forward(x);
        }
        add("classifier.weight", x.mean({2, 3}));
    }
    for (auto& [name, s] : sq) s = s.sqrt();
    return sq;
}

torch::Tensor Optimizer::tail_logits(model::MobileNetV2& net, const torch::Tensor& x) {
    return net->classifier->forward(net->dropout->forward(net->forward_features(x, opt_.finetune_from, model::kFeatureBlocks).mean({2, 3})));
}

void Optimizer::finetune(model::MobileNetV2& net, const torch::Tensor& cache, const std::string& label, std::vector<torch::Tensor> params,
                         const std::function<void()>& after_backward, const std::function<void(std::int64_t)>& after_step,
                         const std::function<torch::Tensor(const torch::Tensor&)>& forward, int steps,
                         std::vector<torch::Tensor> centroids) {
    StageTimer timer(result_.stages, "fine-tuning");
    // A calibration of this net (make_structured calibrates before fine-tuning) is stale from here.
    if (!observed_net_.is_empty() && observed_net_.ptr() == net.ptr()) observed_net_ = model::MobileNetV2(nullptr);
    if (steps <= 0) steps = opt_.finetune_steps;
    torch::manual_seed(opt_.seed);
    for (auto& p : net->parameters()) p.set_requires_grad(false);
    // Tail weights need gradients even when the optimizer trains something else (cluster centroids
    // gather the gradients of their weights).
    for (auto& p : net->named_parameters())
        if (!in_prefix(p.key(), opt_.finetune_from)) p.value().set_requires_grad(true);
    // Centroids get 10x the learning rate: one centroid step moves every weight of its cluster
    // together, and at the weights' rate k=16 recovered only to 91% (98.7% at 10x) on fire-cair;
    // 3x was worse for clustered pruned layers too.
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(opt_.finetune_lr));
    if (!centroids.empty()) groups.emplace_back(centroids, std::make_unique<torch::optim::AdamOptions>(10 * opt_.finetune_lr));
    torch::optim::Adam adam(groups, torch::optim::AdamOptions(opt_.finetune_lr));
    net->train();
    const std::int64_t n = cache.size(0);
    const std::int64_t batch = std::min<std::int64_t>(opt_.finetune_batch, n);
    auto order = torch::randperm(n, torch::kInt64);
    std::int64_t pos = 0;
    constexpr double kT = 2.0;  // distillation temperature: softer targets carry the fp32 model's margins
    for (std::int64_t step = 1; step <= steps; ++step) {
        if (pos + batch > n) {
            order = torch::randperm(n, torch::kInt64);
            pos = 0;
        }
        const auto idx = order.slice(0, pos, pos + batch);
        pos += batch;
        const auto x = cache.index_select(0, idx);
        const auto teacher = teacher_.index_select(0, idx);
        adam.zero_grad();
        const auto logits = forward ? forward(x) : tail_logits(net, x);
        // Distillation from the fp32 model: the variant's job is to decide as fp32 does.
        const auto loss = -(torch::softmax(teacher / kT, 1) * torch::log_softmax(logits / kT, 1)).sum(1).mean() * (kT * kT);
        loss.backward();
        if (after_backward) after_backward();
        adam.step();
        if (after_step) after_step(step);
        if (bar_ && (step % 5 == 0 || step == steps))
            bar_->update(stages_done_, label + ": fine-tune " + std::to_string(step) + "/" + std::to_string(steps));
    }
    net->eval();
    for (auto& p : net->parameters()) p.set_requires_grad(false);
}

std::string Optimizer::prefix_key(const std::string& base_name) const {
    if (base_name == "struct") return "";  // its early blocks are pruned and refit (make_structured)
    const bool pruned = base_name.rfind("prune", 0) == 0 || base_name.rfind("channel", 0) == 0;
    if (opt_.prune_prefix && pruned) return "";
    const auto k = base_name.find("-k") != std::string::npos ? base_name.substr(base_name.find("-k") + 2)
                   : base_name[0] == 'k'                       ? base_name.substr(1)
                                                               : std::string();
    return k.empty() ? "fp32" : "k" + std::to_string(std::max(std::stoi(k), kPrefixClusters));
}

std::map<std::string, ActivationRange> Optimizer::calibrate(model::MobileNetV2& net, const std::string& method, const std::string& prefix) {
    StageTimer timer(result_.stages, "calibration");
    // The four methods of the fp32 model read the same activations: observed once. Nets are not
    // changed once calibrated (bases are finished first).
    if (observed_net_.is_empty() || observed_net_.ptr() != net.ptr()) {
        observer_ = ActivationObserver();
        const std::int64_t n = calibration_x_.size(0);
        const auto shared = prefix.empty() ? prefix_observers_.end() : prefix_observers_.find(prefix);
        const auto cache = prefix == "fp32" ? fp32_cache_ : caches_.count(prefix) ? caches_.at(prefix) : torch::Tensor();
        if (shared != prefix_observers_.end() && cache.defined() && opt_.finetune_from >= 1 && opt_.finetune_from < model::kFeatureBlocks) {
            // A prefix observed before for another net: its histograms are taken over, and only
            // the tail runs, from the cached prefix output of the calibration images (the first
            // rows of the cache). A full pass is the whole network in libtorch plus 2048-bin
            // histograms of the large early tensors, several seconds per variant.
            const int from = opt_.finetune_from;
            observer_.adopt(shared->second, [from](const std::string& name) { return name == "input" || in_prefix(name, from); });
            for (std::int64_t b = 0; b < n; b += 16) observer_.observe_from(net, cache.slice(0, b, std::min(n, b + 16)), from);
        } else {
            // Batches of 8: a batch's early activations (16 x 96 x 112 x 112 floats is 77 MB each) set
            // optimize's peak memory.
            for (std::int64_t b = 0; b < n; b += 8) observer_.observe(net, calibration_x_.slice(0, b, std::min(n, b + 8)));
            if (!prefix.empty()) prefix_observers_.emplace(prefix, observer_);
        }
        observed_net_ = net;  // held, so its address cannot be reused by another net
    }
    if (method == "auto") {
        std::map<std::string, ActivationRange> out;
        for (const auto& [name, c] : observer_.chosen_ranges()) out[name] = c.range;
        return out;
    }
    return observer_.ranges({parse_calibration_method(method)});
}

fs::path Optimizer::write_engine(model::MobileNetV2& net, const std::string& name, const nlohmann::json& settings,
                                 const std::map<std::string, ActivationRange>* int8_ranges) {
    StageTimer timer(result_.stages, "engine building");
    model::TrainedModel t;
    t.net = net;
    t.class_names = tm_.class_names;
    t.preprocess = tm_.preprocess;
    t.info_json = tm_.info_json;
    auto g = model::trained_model_to_graph(t);
    if (int8_ranges) {
        // Clustered filters get one scale, so their int8 values stay k distinct (log2 k bits in
        // the file); by value alone quantize_int8 keeps per-channel scales whenever two centroids
        // are closer than one int8 step, which made two layers of prune75-k16-int8 7-bit.
        engine::QuantizeOptions qo;
        // The prefix's kPrefixClusters values keep per-channel scales: one scale could not hold
        // them all apart.
        if (settings.contains("clusters"))
            for (const auto& n : split_names(prunable_weights(*net), opt_.finetune_from, false)) qo.one_scale.insert(engine_weight_name(n));
        engine::quantize_int8(g, engine_ranges(net, *int8_ranges), qo);
    }
    auto build = nlohmann::json::parse(g.metadata.build_json, nullptr, false);
    if (build.is_discarded()) build = nlohmann::json::object();
    build["precision"] = int8_ranges ? "int8" : "fp32";
    build["optimize"] = {{"variant", name}, {"settings", settings}};
    g.metadata.build_json = build.dump();
    const fs::path path = opt_.out / "variants" / (name + ".fse");
    engine::save_engine(g, path);
    return path;
}

void Optimizer::measure(const std::string& name, const nlohmann::json& settings, const fs::path& engine) {
    ensure_eval_images();
    StageTimer timer(result_.stages, "evaluation");
    VariantRecord r;
    // Timed later, all variants interleaved (run()), so that load on the machine hits them alike.
    r.result = eval::evaluate_variant(name, settings, engine, test_, 0);
    if (!val_.inputs.empty()) {
        const auto v = eval::evaluate_variant(name, settings, engine, val_, 0);
        r.val_accuracy = v.metrics.accuracy;
        r.val_images = v.metrics.total;
    }
    save_finished_variant(opt_.out, r, fingerprint_);
    result_.variants.push_back(std::move(r));
}

bool Optimizer::finished(const std::string& name) {
    VariantRecord r;
    if (!load_finished_variant(opt_.out, name, fingerprint_, r)) return false;
    result_.variants.push_back(std::move(r));
    result_.reused.push_back(name);
    return true;
}

model::MobileNetV2 Optimizer::base(const std::string& name) {
    if (auto it = bases_.find(name); it != bases_.end()) return it->second;
    const fs::path pt = opt_.out / "work" / (name + ".pt");
    const fs::path stamp = opt_.out / "work" / (name + ".json");
    std::error_code ec;
    if (fs::exists(pt, ec) && fs::exists(stamp, ec)) {
        try {
            const auto j = nlohmann::json::parse(read_file_text(stamp));
            if (j.value("fingerprint", std::string()) == fingerprint_) {
                auto m = model::load_trained_model(pt);
                m.net->eval();
                base_settings_[name] = j.value("settings", nlohmann::json::object());
                if (j.contains("qat_ranges"))
                    for (const auto& [t, r] : j["qat_ranges"].items()) qat_ranges_[name][t] = {r.at(0).get<float>(), r.at(1).get<float>()};
                return bases_[name] = m.net;
            }
        } catch (const std::exception&) {
            // An unreadable leftover is rebuilt below.
        }
    }
    auto net = make_base(name);
    model::TrainedModel t{net, tm_.class_names, tm_.preprocess, tm_.info_json};
    fs::create_directories(opt_.out / "work");
    model::save_trained_model(t, pt);
    nlohmann::json j = {{"fingerprint", fingerprint_}, {"settings", base_settings_[name]}};
    if (qat_ranges_.count(name)) {
        nlohmann::json r = nlohmann::json::object();
        for (const auto& [t2, range] : qat_ranges_[name]) r[t2] = {range.min, range.max};
        j["qat_ranges"] = r;
    }
    write_file_atomic(stamp, j.dump());
    return bases_[name] = net;
}

model::MobileNetV2 Optimizer::make_base(const std::string& name) {
    // Names: prune<S>, k<K>, prune<S>-k<K>, channel<F>, qat.
    if (name == "qat") return make_qat(&qat_ranges_[name]);
    if (name.rfind("channel", 0) == 0) return make_channel_pruned(opt_.channel_fraction);
    if (name == "struct") return make_structured(opt_.structured_fraction);
    const auto dash = name.find("-k");
    if (dash != std::string::npos) return make_clustered(base(name.substr(0, dash)), std::stoi(name.substr(dash + 2)), name);
    if (name.rfind("prune", 0) == 0) {
        for (double s : opt_.sparsities)
            if (name == "prune" + percent_name(s)) return make_pruned(s);
    }
    if (name[0] == 'k') return make_clustered(tm_.net, std::stoi(name.substr(1)), name);
    throw Error("optimize: unknown base model " + name);
}

model::MobileNetV2 Optimizer::make_pruned(double sparsity) {
    const auto t0 = Clock::now();
    const std::string label = "prune" + percent_name(sparsity);
    auto net = clone_net(tm_.net);
    const auto names = prunable_weights(*net);
    // The prefix is not fine-tuned; when it is pruned, that happens at once and the tail learns
    // to live with it.
    PruningState prefix(*net, split_names(names, opt_.finetune_from, true), SparsityGranularity::PerLayer);
    if (opt_.prune_prefix) prefix.prune_to(sparsity);
    const auto cache = opt_.prune_prefix ? prefix_cache(net) : fp32_cache_;
    const auto tail_names = split_names(names, opt_.finetune_from, false);
    PruningState tail(*net, tail_names, SparsityGranularity::PerLayer);
    // Activation-aware scores: on fire-cair, with the same fine-tuning, 75% pruning by magnitude
    // lost 5.1 points of validation accuracy, by |w| x input norm 1.3 (docs/optimize.md).
    {
        const auto norms = tail_input_norms(net, cache);
        std::map<std::string, torch::Tensor> used;
        for (const auto& n : tail_names) used[n] = norms.at(n);
        tail.set_input_norms(used);
    }
    // Gradual pruning over the first two thirds of the steps, then recovery at the final sparsity.
    PolynomialSchedule sched;
    sched.final_sparsity = sparsity;
    sched.num_updates = std::max<std::int64_t>(1, std::min<std::int64_t>(8, opt_.finetune_steps / 4));
    sched.update_every = std::max<std::int64_t>(1, opt_.finetune_steps * 2 / 3 / sched.num_updates);
    tail.on_step(0, sched);
    finetune(net, cache, label, tail_parameters(net, opt_.finetune_from), [&] { tail.mask_gradients(); },
             [&](std::int64_t step) { tail.on_step(step, sched); });
    tail.prune_to(sparsity);  // also when the schedule ended after the last step
    tail.apply();
    base_settings_[label] = {{"sparsity", sparsity},
                             {"granularity", "per layer"},
                             {"score", "|w| x input-channel L2 norm on the training images"},
                             {"scope", opt_.prune_prefix ? "1x1 convs + classifier" : "1x1 convs of features." + std::to_string(opt_.finetune_from) + "+ and classifier"},
                             {"schedule", {{"kind", "polynomial"}, {"updates", sched.num_updates}, {"every", sched.update_every}}},
                             {"prefix_blocks_not_finetuned", opt_.finetune_from},
                             {"finetune_steps", opt_.finetune_steps},
                             {"measured_sparsity_tail", tail.measured_sparsity()},
                             {"measured_sparsity_prefix", prefix.measured_sparsity()},
                             {"seconds", seconds_since(t0)}};
    return net;
}

model::MobileNetV2 Optimizer::make_clustered(model::MobileNetV2 from, int k, const std::string& label) {
    const auto t0 = Clock::now();
    auto net = clone_net(from);
    KMeansOptions ko;
    ko.k = k;
    ko.init = CentroidInit::Linear;
    const auto names = prunable_weights(*net);
    // The prefix is never fine-tuned, so it gets kPrefixClusters values per layer, not k: at k=16
    // it was clustered like the tail, and on the three-class model that alone cost 27 points of
    // validation accuracy (k16, fire-smoke + hard-negatives) that fine-tuning the tail could not
    // win back. Clustered the same way for every k (and never pruned unless --prune-prefix), all
    // clustered variants share one prefix cache. Pruned layers keep a zero centroid so their
    // zeros stay zeros; unpruned ones do not get one (forcing it collapsed k16 on fire-cair).
    const bool pruned = label.rfind("prune", 0) == 0;
    KMeansOptions prefix_ko = ko;
    prefix_ko.k = std::max(k, kPrefixClusters);
    prefix_ko.preserve_zeros = pruned && opt_.prune_prefix;
    ClusteringState prefix_clusters(*net, split_names(names, opt_.finetune_from, true), prefix_ko);
    ko.preserve_zeros = pruned;
    const auto cache = opt_.prune_prefix && pruned ? prefix_cache(net) : shared_cache(prefix_key(label), net);
    ClusteringState clusters(*net, split_names(names, opt_.finetune_from, false), ko);
    std::vector<torch::Tensor> params, centroids;
    std::set<std::string> clustered(names.begin(), names.end());
    for (auto& [name, layer] : clusters.layers())
        if (!in_prefix(name, opt_.finetune_from)) centroids.push_back(layer.centroids());
    // Biases (and the unclustered depthwise filters) of the tail train alongside the centroids.
    for (auto& p : tail_parameters(net, opt_.finetune_from, clustered)) params.push_back(p);
    // Centroids are few parameters and start from a good fit: half the steps suffice.
    finetune(net, cache, label, params, [&] { clusters.accumulate_gradients(); }, [&](std::int64_t) { clusters.apply(); }, {},
             cluster_steps(), centroids);
    clusters.apply();
    nlohmann::json s = base_settings_.count(label.substr(0, label.find("-k"))) ? base_settings_[label.substr(0, label.find("-k"))]
                                                                               : nlohmann::json::object();
    s["clusters"] = k;
    s["prefix_clusters"] = prefix_ko.k;
    s["cluster_init"] = "linear";
    s["cluster_scope"] = "1x1 convs + classifier";
    s["preserve_zeros"] = ko.preserve_zeros;
    s["cluster_finetune_steps"] = cluster_steps();
    s["cluster_seconds"] = seconds_since(t0);
    base_settings_[label] = s;
    return net;
}

model::MobileNetV2 Optimizer::make_channel_pruned(double fraction) {
    const auto t0 = Clock::now();
    const std::string label = "channel" + percent_name(fraction);
    ChannelPruneOptions co;
    co.fraction = fraction;
    co.round_to = 8;
    auto keep = select_hidden_channels(tm_.net, co);
    // Like magnitude pruning, the not-fine-tuned prefix keeps its channels unless asked (removing
    // 25% of them there cost ~5 points of validation accuracy on fire-cair).
    if (!opt_.prune_prefix)
        for (int b = 1; b < std::min(opt_.finetune_from, 18); ++b) {
            auto* blk = tm_.net->features->ptr(static_cast<std::size_t>(b))->as<model::InvertedResidualImpl>();
            const auto hidden = blk->depthwise->conv->weight.size(0);
            keep[static_cast<std::size_t>(b - 1)].resize(static_cast<std::size_t>(hidden));
            for (std::int64_t c = 0; c < hidden; ++c) keep[static_cast<std::size_t>(b - 1)][static_cast<std::size_t>(c)] = c;
        }
    auto net = remove_hidden_channels(tm_.net, keep);
    net->eval();
    const auto cache = opt_.prune_prefix ? prefix_cache(net) : fp32_cache_;
    finetune(net, cache, label, tail_parameters(net, opt_.finetune_from), {}, {});
    base_settings_[label] = {{"channel_fraction", fraction},
                             {"round_to", 8},
                             {"parameters", count_parameters(*net)},
                             {"parameters_fp32", count_parameters(*tm_.net)},
                             {"finetune_steps", opt_.finetune_steps},
                             {"seconds", seconds_since(t0)}};
    return net;
}

// Structured pruning where the time is: the int8 engine spends most of an inference in the
// high-resolution blocks before the fine-tuned tail (bench/block_profile; docs/optimize.md), so
// hidden channels go there. Those blocks are not fine-tuned (their activations are too large to
// cache for every image); instead each pruned block's projection, which is linear, is refit by
// least squares so the block reproduces the fp32 model's output on the calibration images, block
// after block. The tail is then fine-tuned on what the pruned prefix gives in int8, the way the
// struct-int8 engine will run it: on the fire-smoke model, fine-tuning on the float prefix left
// struct-int8 6.6 points below fp32 on validation (struct: 2.5), on the int8 prefix 1.4 (60 steps)
// and 0.5 (150 steps, the float struct variant then 3.4 below: its tail learnt the int8 prefix).
model::MobileNetV2 Optimizer::make_structured(double fraction) {
    const auto t0 = Clock::now();
    const std::int64_t n = calibration_x_.size(0);
    const auto& images = calibration_x_;
    std::vector<double> fractions(model::kFeatureBlocks - 2, 0.0);  // features.1 .. features.17
    std::vector<int> refit;
    // The tail's blocks (finetune_from .. 17) are pruned too (--structured-tail): fine-tuning
    // recovers them, and unpruned they were a quarter of struct-int8's time; their refit is only a
    // better start. features.1 has no expansion conv: pruning it (--structured-stem) removes
    // features.0's outputs, at 112x112 the rest of the time.
    const int first = 2, last = opt_.finetune_from - 1;
    if (opt_.structured_stem_fraction > 0) {
        fractions[0] = opt_.structured_stem_fraction;
        refit.push_back(1);
    }
    for (int b = first; b <= model::kFeatureBlocks - 2; ++b) {
        fractions[static_cast<std::size_t>(b - 1)] = b <= last ? fraction : opt_.structured_tail_fraction;
        if (b <= last || opt_.structured_tail_fraction > 0) refit.push_back(b);
    }
    std::vector<std::vector<std::int64_t>> keep;
    std::vector<std::int64_t> embedding;
    model::MobileNetV2 net{nullptr};
    std::vector<double> errors;
    {
        StageTimer timer(result_.stages, "structured pruning and refit");
        keep = select_hidden_channels_by_contribution(tm_.net, images, fractions, 8, 8);
        net = remove_hidden_channels(tm_.net, keep);
        net->eval();
        errors = reconstruct_projections(net, tm_.net, images, refit);
        if (opt_.structured_embedding_fraction > 0) {
            // Ranked on the fp32 model, like the hidden channels; the classifier is fine-tuned after.
            embedding = select_embedding_channels_by_contribution(tm_.net, images, opt_.structured_embedding_fraction, 8, 8);
            net = remove_embedding_channels(net, embedding);
            net->eval();
        }
    }
    const auto tc = Clock::now();
    const auto cache = int8_prefix_cache(net);
    const double cache_seconds = seconds_since(tc);
    // The tail makes up for a prefix that was not fine-tuned: 2.5x the other variants' steps.
    const int steps = opt_.finetune_steps * 5 / 2;
    finetune(net, cache, "struct", tail_parameters(net, opt_.finetune_from), {}, {}, {}, steps);
    std::vector<int> widths;
    for (const auto& k : keep) widths.push_back(static_cast<int>(k.size()));
    base_settings_["struct"] = {{"structured_fraction", fraction},
                                {"structured_tail_fraction", opt_.structured_tail_fraction},
                                {"structured_embedding_fraction", opt_.structured_embedding_fraction},
                                {"structured_stem_fraction", opt_.structured_stem_fraction},
                                {"pruned_blocks", {first, last}},
                                {"hidden_channels", widths},
                                {"embedding_channels", net->embedding_channels()},
                                {"selection", "|projection (classifier) column| x activation L2 norm on the calibration images"},
                                {"refit", "projection conv, ridge least squares to the fp32 block output, in block order"},
                                {"refit_blocks", refit},
                                {"refit_images", n},
                                {"refit_relative_error", errors},
                                {"finetune_on", "int8 prefix (runtime engine)"},
                                {"prefix_cache_seconds", cache_seconds},
                                {"parameters", count_parameters(*net)},
                                {"parameters_fp32", count_parameters(*tm_.net)},
                                {"finetune_steps", steps},
                                {"seconds", seconds_since(t0)}};
    return net;
}

torch::Tensor Optimizer::int8_prefix_cache(model::MobileNetV2& net) {
    const auto ranges = calibrate(net, "auto", "");
    StageTimer timer(result_.stages, "prefix caches");
    model::TrainedModel t{net, tm_.class_names, tm_.preprocess, tm_.info_json};
    auto g = model::trained_model_to_graph(t);
    engine::quantize_int8(g, engine_ranges(net, ranges), {});
    // The prefix ends at the last op writing a tensor of block finetune_from - 1.
    const std::string block = "features." + std::to_string(opt_.finetune_from - 1);
    std::int32_t end = -1;
    for (const auto& op : g.ops)
        for (auto o : op.outputs) {
            const auto& name = g.tensors[static_cast<std::size_t>(o)].name;
            if (name.rfind(block, 0) == 0 && (name.size() == block.size() || name[block.size()] == '.' || name[block.size()] == '/')) end = o;
        }
    if (end < 0) throw Error("optimize: the int8 graph has no tensor of " + block);
    g = engine::cut_after(g, end);  // renumbers tensors: the output is g.outputs[0] from here on
    const auto shape = engine::infer_shapes(g, 1)[static_cast<std::size_t>(g.outputs[0])];  // 1, H, W, C
    const auto eng = engine::Engine::from_graph(std::move(g));
    const auto n = static_cast<std::int64_t>(images_->size());
    const std::int64_t h = shape[1], w = shape[2], c = shape[3], size = tm_.preprocess.size;
    auto cache = torch::empty({n, c, h, w});
    // One single-threaded session per core over the stored images (HWC, as the engine takes them).
    const unsigned workers = worker_count(static_cast<std::size_t>(n));
    std::vector<std::unique_ptr<engine::Session>> sessions;
    std::vector<std::vector<float>> input(workers, std::vector<float>(static_cast<std::size_t>(size * size * 3)));
    for (unsigned k = 0; k < workers; ++k) sessions.push_back(std::make_unique<engine::Session>(eng, engine::SessionOptions{engine::Backend::Auto, 1}));
    parallel_for(static_cast<std::size_t>(n), workers, [&](std::size_t i, unsigned k) {
        images_->read(i, input[k].data());
        const float* o = sessions[k]->run(std::span<const float>(input[k]), 1)[0];
        float* dst = cache.data_ptr<float>() + static_cast<std::int64_t>(i) * c * h * w;
        for (std::int64_t p = 0; p < h * w; ++p)
            for (std::int64_t ch = 0; ch < c; ++ch) dst[ch * h * w + p] = o[p * c + ch];
    });
    return cache;
}

model::MobileNetV2 Optimizer::make_qat(std::map<std::string, ActivationRange>* ranges) {
    const auto t0 = Clock::now();
    auto net = clone_net(tm_.net);
    *ranges = calibrate(net, "auto", "fp32");
    const auto& cache = fp32_cache_;  // the prefix is not changed by quantization-aware fine-tuning
    // The tail trains through fake quantization with the fp32 model's ranges fixed; the engine is
    // built with the same ranges, so it computes what fine-tuning saw.
    finetune(net, cache, "int8-qat", tail_parameters(net, opt_.finetune_from), {}, {},
             [&](const torch::Tensor& x) { return fake_quant_forward(net, x, *ranges, opt_.finetune_from); });
    base_settings_["qat"] = {{"int8", true},
                             {"calibration", "auto"},
                             {"qat_steps", opt_.finetune_steps},
                             {"qat_from_block", opt_.finetune_from},
                             {"seconds", seconds_since(t0)}};
    return net;
}

void Optimizer::ensure_training_data() {
    if (images_) return;
    decode_training_images();
    // The fp32 model's logits on the training images: the targets every fine-tuning distils from.
    fp32_cache_ = prefix_cache(tm_.net);
    StageTimer timer(result_.stages, "teacher logits");
    torch::NoGradGuard g;
    std::vector<torch::Tensor> out;
    for (std::int64_t b = 0; b < fp32_cache_.size(0); b += 64)
        out.push_back(tail_logits(tm_.net, fp32_cache_.slice(0, b, std::min(fp32_cache_.size(0), b + 64))));
    teacher_ = torch::cat(out);
}

void Optimizer::ensure_eval_images() {
    if (eval_loaded_) return;
    StageTimer timer(result_.stages, "decode evaluation images");
    // The fp32 engine gives the evaluation images their preprocessing (from its metadata).
    const auto fp32_engine = opt_.out / "variants" / "fp32.fse";
    auto load = [&](const std::vector<data::Sample>& samples) {
        std::vector<std::string> paths;
        std::vector<int> labels;
        for (const auto& s : samples) {
            paths.push_back(splits_.file(s).string());
            labels.push_back(s.label);
        }
        std::vector<std::string> skipped;
        auto images = eval::load_eval_images(fp32_engine, paths, labels, splits_.classes, &skipped);
        for (const auto& s : skipped) result_.warnings.push_back("evaluation image " + s + " (skipped)");
        return images;
    };
    if (bar_) bar_->update(stages_done_, "decoding " + std::to_string(splits_.test.size() + splits_.val.size()) + " evaluation images");
    test_ = load(splits_.test);
    if (test_.inputs.empty()) throw Error("optimize: none of the run's test images could be read from " + data_names());
    val_ = load(splits_.val);
    eval_loaded_ = true;
}

void Optimizer::stage_done(const std::string& name) {
    ++stages_done_;
    if (bar_) bar_->update(stages_done_, name + " done");
}

OptimizeResult Optimizer::run() {
    const auto t0 = Clock::now();
    check_options(opt_);
    load_run();
    report_blas();  // after the options and the run are known good: a bad one stays one clear error line
    // libtorch's default is the physical cores: one on a 2-vCPU machine, where fine-tuning then ran
    // on one thread (fire-smoke, prune50 alone: 11.0 s wall with the default, 7.3 s with 2).
    torch::set_num_threads(opt_.threads > 0 ? opt_.threads : static_cast<int>(core_count()));
    fs::create_directories(opt_.out / "variants");

    // Stage list: every variant, in an order where each base is made once and reused.
    std::vector<Stage> stages;
    auto float_variant = [this](const std::string& name, const std::string& base_name) {
        if (finished(name)) return;
        ensure_training_data();
        auto net = base_name == "fp32" ? tm_.net : base(base_name);
        nlohmann::json s = base_name == "fp32" ? nlohmann::json{{"int8", false}} : base_settings_[base_name];
        s["int8"] = false;
        measure(name, s, write_engine(net, name, s, nullptr));
    };
    auto int8_variant = [this](const std::string& name, const std::string& base_name, const std::string& method) {
        if (finished(name)) return;
        ensure_training_data();
        auto net = base_name == "fp32" ? tm_.net : base(base_name);
        nlohmann::json s = base_name == "fp32" ? nlohmann::json::object() : base_settings_[base_name];
        s["int8"] = true;
        const auto t = Clock::now();
        std::map<std::string, ActivationRange> ranges;
        if (base_name == "qat") {
            ranges = qat_ranges_.at("qat");
        } else {
            ranges = calibrate(net, method, prefix_key(base_name));
            s["calibration"] = method;
        }
        s["calibration_images"] = calibration_x_.size(0);
        s["calibration_seconds"] = seconds_since(t);
        measure(name, s, write_engine(net, name, s, &ranges));
    };

    stages.push_back({"fp32", {}});  // built and measured below, before the others
    for (const auto& m : opt_.methods) {
        const std::string name = m == "auto" ? "int8" : "int8-" + m;
        stages.push_back({name, [&, name, m] { int8_variant(name, "fp32", m); }});
    }
    for (double s : opt_.sparsities) {
        const auto p = "prune" + percent_name(s);
        stages.push_back({p, [&, p] { float_variant(p, p); }});
        stages.push_back({p + "-int8", [&, p] { int8_variant(p + "-int8", p, "auto"); }});
    }
    for (int k : opt_.clusters) {
        const auto c = "k" + std::to_string(k);
        stages.push_back({c, [&, c] { float_variant(c, c); }});
    }
    for (double s : opt_.sparsities)
        for (int k : opt_.clusters) {
            const auto b = "prune" + percent_name(s) + "-k" + std::to_string(k);
            stages.push_back({b, [&, b] { float_variant(b, b); }});
            stages.push_back({b + "-int8", [&, b] { int8_variant(b + "-int8", b, "auto"); }});
        }
    if (opt_.channel_fraction > 0) {
        const auto c = "channel" + percent_name(opt_.channel_fraction);
        stages.push_back({c, [&, c] { float_variant(c, c); }});
        stages.push_back({c + "-int8", [&, c] { int8_variant(c + "-int8", c, "auto"); }});
    }
    if (opt_.structured_fraction > 0) {
        stages.push_back({"struct", [&] { float_variant("struct", "struct"); }});
        stages.push_back({"struct-int8", [&] { int8_variant("struct-int8", "struct", "auto"); }});
    }
    // Quantization-aware fine-tuning only when no post-training int8 variant of the fp32 model
    // stays within the budget (decided on the selection split once those are measured).
    if (opt_.qat != "never")
        stages.push_back({"int8-qat", [&] {
                              if (finished("int8-qat")) return;
                              double best = 1e9;
                              bool any = false;
                              std::vector<VariantRecord> v = result_.variants;
                              set_drops(v);
                              for (const auto& r : v)
                                  if (r.result.name == "int8" || r.result.name.rfind("int8-", 0) == 0) {
                                      any = true;
                                      best = std::min(best, r.val_images > 0 ? r.val_accuracy_drop : r.result.accuracy_drop);
                                  }
                              if (opt_.qat == "auto" && any && best <= opt_.max_accuracy_drop) return;
                              int8_variant("int8-qat", "qat", "auto");
                          }});

    if (stages.size() == 1) throw Error("optimize: nothing to search (no methods, sparsities, clusters or channel pruning)");
    bar_ = std::make_unique<ProgressBar>("optimize", stages.size(), opt_.progress);
    // fp32 first: its engine gives the evaluation images their preprocessing (from its metadata).
    if (!finished("fp32")) measure("fp32", {{"int8", false}}, write_engine(tm_.net, "fp32", {{"int8", false}}, nullptr));
    stage_done("fp32");
    for (std::size_t i = 1; i < stages.size(); ++i) {
        const auto& st = stages[i];
        bar_->update(stages_done_, st.name);
        if (!opt_.only.empty() && std::find(opt_.only.begin(), opt_.only.end(), st.name) == opt_.only.end()) {
            stage_done(st.name);
            continue;
        }
        try {
            st.run();
        } catch (const std::exception& e) {
            // One variant failing (a libtorch or engine error) loses that variant, not the search.
            std::string what = e.what();
            const std::string w = "variant " + st.name + " failed: " + what.substr(0, what.find('\n'));
            result_.warnings.push_back(w);
            std::fprintf(stderr, "\nwarning: %s\n", w.c_str());
        }
        stage_done(st.name);
    }
    bar_->finish(std::to_string(result_.variants.size()) + " variants");
    bar_.reset();

    // Every variant timed together whenever one was (re)built; a rerun that reused them all keeps
    // their saved figures, so it re-chooses (say under another budget) from the same numbers.
    if (opt_.bench_runs > 0 && result_.reused.size() < result_.variants.size()) {
        std::vector<eval::VariantResult*> timed;
        for (auto& r : result_.variants) timed.push_back(&r.result);
        std::fprintf(stderr, "timing %zu variants: %d interleaved rounds of %d runs\n", timed.size(), opt_.bench_rounds, opt_.bench_runs);
        StageTimer timer(result_.stages, "timing");
        eval::time_variants_interleaved(timed, opt_.bench_rounds, opt_.bench_runs);
    }
    set_drops(result_.variants);
    for (auto& r : result_.variants) save_finished_variant(opt_.out, r, fingerprint_);
    result_.chosen = choose_variant(result_.variants, opt_.max_accuracy_drop, opt_.target);
    const bool on_val = std::all_of(result_.variants.begin(), result_.variants.end(), [](const VariantRecord& r) { return r.val_images > 0; });

    // OUT/model.fse: the chosen engine with what was measured and how it was chosen.
    const VariantRecord* chosen = nullptr;
    for (const auto& r : result_.variants)
        if (r.result.name == result_.chosen) chosen = &r;
    auto g = engine::load_graph(chosen->result.engine);
    auto build = nlohmann::json::parse(g.metadata.build_json, nullptr, false);
    if (build.is_discarded()) build = nlohmann::json::object();
    build["optimize"] = {{"variant", result_.chosen},
                         {"settings", chosen->result.settings},
                         {"measured", eval::variant_to_json(chosen->result)},
                         {"val_accuracy", chosen->val_accuracy},
                         {"val_accuracy_drop", chosen->val_accuracy_drop},
                         {"selection_split", on_val ? "val" : "test"},
                         {"max_accuracy_drop", opt_.max_accuracy_drop},
                         {"target", optimize_target_name(opt_.target)}};
    g.metadata.build_json = build.dump();
    result_.model_fse = opt_.out / "model.fse";
    engine::save_engine(g, result_.model_fse);

    std::vector<eval::VariantResult> plain;
    for (const auto& r : result_.variants) plain.push_back(r.result);
    result_.seconds = seconds_since(t0);
    result_.peak_rss_mb = static_cast<double>(train::peak_rss_bytes()) / (1024.0 * 1024.0);
    auto j = eval::variants_json(plain, result_.chosen);
    nlohmann::json val = nlohmann::json::object();
    for (const auto& r : result_.variants) val[r.result.name] = {{"accuracy", r.val_accuracy}, {"accuracy_drop", r.val_accuracy_drop}, {"images", r.val_images}};
    nlohmann::json stage_json = nlohmann::json::array();
    for (const auto& st : result_.stages) stage_json.push_back({{"stage", st.kind}, {"seconds", st.seconds}, {"cpu_seconds", st.cpu_seconds}});
    j["optimize"] = {{"model", fs::absolute(model_pt_).string()},
                     {"data", data_names()},
                     {"fingerprint", fingerprint_},
                     {"max_accuracy_drop", opt_.max_accuracy_drop},
                     {"target", optimize_target_name(opt_.target)},
                     {"selection_split", on_val ? "val" : "test"},
                     {"validation", val},
                     {"reused", result_.reused},
                     {"warnings", result_.warnings},
                     {"seconds", result_.seconds},
                     {"stages", stage_json},
                     {"cpu_seconds", process_cpu_seconds()},
                     {"peak_rss_mb", result_.peak_rss_mb}};
    write_file_atomic(opt_.out / "results.json", j.dump(2));
    write_file_atomic(opt_.out / "report.html", eval::variants_report_html(plain, result_.chosen, "firesight optimize: " + model_pt_.parent_path().filename().string()));
    return result_;
}

}  // namespace

OptimizeResult run_optimize(const OptimizeOptions& opt) { return Optimizer(opt).run(); }

}  // namespace firesight::compress
