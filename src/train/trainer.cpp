// The trainer. Stage "head": the backbone is frozen, so each image's embedding (and, for val and
// test, the activation where fine-tuning starts) is computed once and the head trains on that
// cache in seconds. Stage "finetune": the last blocks train on augmented images; the frozen
// prefix runs without autograd, so memory and time go only to the blocks that learn.
//
// The frozen part runs on the runtime engine (XNNPACK, one single-threaded session per decode
// worker, see prefix_engine.h) when this build has it, libtorch otherwise (TrainOptions::frozen).
// Everything cached per image (the training images as small JPEGs, embeddings, the val/test
// prefix activations) lives in anonymous files read back with pread (feature_cache.h), so the
// resident memory does not grow with the number of images.
#include <torch/torch.h>

#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "firesight/common/allocator.h"
#include "firesight/common/error.h"
#include "firesight/eval/maps.h"
#include "firesight/common/fileio.h"
#include "firesight/common/progress.h"
#include "firesight/train/train.h"
#include "firesight/model/trained_model.h"
#include "firesight/data/reduced_decode.h"
#include "firesight/model/torch_classifier.h"
#include "firesight/common/parallel.h"
#include "firesight/train/feature_cache.h"
#include "firesight/train/prefix_engine.h"
#include "thread_pool.h"

namespace fs = std::filesystem;

namespace firesight::train {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double mb(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

torch::Tensor stack_images(const std::vector<cv::Mat>& imgs) {
    std::vector<torch::Tensor> ts;
    ts.reserve(imgs.size());
    for (const auto& m : imgs) ts.push_back(torch::from_blob(const_cast<float*>(m.ptr<float>()), {m.rows, m.cols, 3}).permute({2, 0, 1}));
    return torch::stack(ts).contiguous();
}

struct DecodedSample {
    bool ok = false;
    std::string error;
    cv::Mat input;  // exact inference preprocessing (libtorch path)
    std::vector<uchar> small;  // shrunk copy for augmentation, as JPEG (train only)
    std::vector<float> prefix, embedding;  // engine path: computed by the worker
};

// One augmented training image for a fine-tuning step: its frozen prefix's output when the engine
// computed it, else the image for libtorch.
struct FrozenInput {
    cv::Mat image;
    std::vector<float> prefix;
};

// What the head and fine-tuning stages need from one pass over the decoded images. The per-image
// records are on disk (DiskStore), so the cache costs no resident memory beyond its index.
struct FeatureCache {
    std::vector<data::Sample> samples;  // usable samples (unreadable ones dropped)
    torch::Tensor labels;               // N (int64)
    std::optional<DiskStore> embeddings;  // N records of 1280 floats
    std::optional<DiskStore> prefix;      // N records of C x H x W floats at the fine-tuning start (val/test only)
    std::vector<std::int64_t> prefix_chw;
    // Train only. Kept as JPEG (quality 95): ~25 KB an image instead of ~300 KB decoded;
    // decoding a 256-pixel JPEG again each epoch costs about a millisecond.
    std::optional<DiskStore> small;
    std::size_t size() const { return samples.size(); }
};

// Records [begin, end) of a store of float records as one tensor of shape {n, record_shape...}.
torch::Tensor read_rows(const DiskStore& store, std::size_t begin, std::size_t end, const std::vector<std::int64_t>& record_shape) {
    std::vector<std::int64_t> shape{static_cast<std::int64_t>(end - begin)};
    shape.insert(shape.end(), record_shape.begin(), record_shape.end());
    auto t = torch::empty(shape, torch::kFloat32);
    const std::size_t row = static_cast<std::size_t>(t.numel() / std::max<std::int64_t>(1, shape[0]));
    for (std::size_t i = begin; i < end; ++i) store.read(i, t.data_ptr<float>() + (i - begin) * row);
    return t;
}
torch::Tensor read_rows(const DiskStore& store, const torch::Tensor& indices, const std::vector<std::int64_t>& record_shape) {
    std::vector<std::int64_t> shape{indices.size(0)};
    shape.insert(shape.end(), record_shape.begin(), record_shape.end());
    auto t = torch::empty(shape, torch::kFloat32);
    const std::size_t row = static_cast<std::size_t>(t.numel() / std::max<std::int64_t>(1, shape[0]));
    const auto* idx = indices.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < indices.size(0); ++i) store.read(static_cast<std::size_t>(idx[i]), t.data_ptr<float>() + static_cast<std::size_t>(i) * row);
    return t;
}

torch::Tensor weighted_loss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& weights, double smoothing) {
    namespace F = torch::nn::functional;
    return F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().weight(weights).label_smoothing(smoothing));
}

std::vector<torch::Tensor> clone_params(torch::nn::Module& m) {
    std::vector<torch::Tensor> out;
    for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
    return out;
}
void restore_params(torch::nn::Module& m, const std::vector<torch::Tensor>& saved) {
    torch::NoGradGuard g;
    auto ps = m.parameters();
    for (std::size_t i = 0; i < ps.size(); ++i) ps[i].copy_(saved[i]);
}

class Trainer {
public:
    // Thread counts, pinned so that libtorch, the decode workers (which also run the engine's
    // single-threaded sessions) and OpenCV do not fight over the cores: libtorch gets all cores
    // but one, the workers one per core (they sleep once two batches ahead), OpenCV none of its
    // own. libtorch's OpenMP threads spin-wait between parallel regions, so while the workers ran
    // beside 2 of them on 2 cores, 80% of the process's time went to libgomp spinning (perf) and
    // a fine-tuning epoch of fire-smoke took 164 s against 32 s with 1 libtorch thread.
    static int all_cores() { return static_cast<int>(core_count()); }
    explicit Trainer(const TrainOptions& o)
        : opt_(o), cores_(o.threads > 0 ? o.threads : std::max(1, all_cores() - 1)),
          pool_(static_cast<unsigned>(o.decode_threads > 0 ? o.decode_threads : all_cores())) {}
    TrainResult run();

private:
    void prepare_splits();
    void load_backbone();
    FeatureCache decode_and_embed(const std::vector<data::Sample>& samples, const std::string& label, bool keep_small,
                                  bool keep_prefix, bool need_embeddings);
    void train_head();
    void finetune();
    std::pair<double, double> evaluate_cache(const FeatureCache& c, torch::Tensor* predictions = nullptr, bool head_only = false);
    void build_engines();
    void save_checkpoint(const std::string& stage, int epoch, double best_val, int bad_epochs, torch::optim::Optimizer* o);
    void save_best();
    void write_outputs(TrainResult& r);
    torch::Tensor prior_shift() const;
    void log(const std::string& s) const { std::fprintf(stderr, "%s\n", s.c_str()); }
    std::string data_names() const {
        std::string out;
        for (const auto& d : opt_.data) out += (out.empty() ? "" : ", ") + fs::absolute(d).lexically_normal().string();
        return out;
    }
    nlohmann::json data_json() const {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& d : opt_.data) a.push_back(fs::absolute(d).lexically_normal().string());
        return a.size() == 1 ? a[0] : a;
    }

    TrainOptions opt_;
    int cores_ = 1;
    ThreadPool pool_;
    // The frozen part on the engine (empty on the libtorch path): the cache stage's (prefix and
    // embedding) and fine-tuning's (prefix only).
    std::unique_ptr<PrefixEngine> cache_engine_, prefix_engine_;
    data::DatasetSplits splits_;
    model::TrainedModel tm_;
    int from_ = model::kFeatureBlocks;
    torch::Tensor class_weights_;
    FeatureCache train_, val_, test_;
    BatchPlan plan_;
    std::vector<eval::EpochRecord> history_;
    std::vector<StageTiming> timings_;
    std::vector<torch::Tensor> best_params_;
    double best_val_loss_ = std::numeric_limits<double>::infinity();
    bool head_done_ = false;
    bool prior_adjusted_ = false;
    int finetune_epochs_done_ = 0;
    int bad_epochs_ = 0;
    std::optional<torch::serialize::InputArchive> resume_archive_;
};

void Trainer::prepare_splits() {
    const fs::path splits_file = opt_.out / "splits.json";
    if (opt_.resume && fs::exists(splits_file)) {
        splits_ = data::splits_from_json(read_file_text(splits_file), splits_file.string());
        if (splits_.roots.size() != opt_.data.size())
            throw Error(splits_file.string() + ": the run was trained on " + std::to_string(splits_.roots.size()) +
                        " data folder(s); resume with the same --data folders");
        splits_.roots = opt_.data;  // the run's own lists, read from the folders given now
        splits_.skipped.clear();
        return;
    }
    data::ImageFolderDataset ds(opt_.data);
    splits_ = ds.split(opt_.split, opt_.seed);
    if (splits_.train.empty()) throw Error(data_names() + ": no training images");
}

void Trainer::load_backbone() {
    auto imported = model::import_mobilenet_v2(opt_.backbone);
    tm_.net = imported.net;
    tm_.net->replace_head(static_cast<int>(splits_.classes.size()));
    tm_.class_names = splits_.classes;
    tm_.preprocess.size = opt_.image_size;
    // Same shorter-side-to-crop ratio as the import's 224 / 224 (the backbone saw whole images).
    tm_.preprocess.resize_shorter = opt_.image_size;
    tm_.preprocess.mean = imported.input.mean;
    tm_.preprocess.scale = imported.input.scale;
    for (auto& p : tm_.net->parameters()) p.set_requires_grad(false);
}

FeatureCache Trainer::decode_and_embed(const std::vector<data::Sample>& samples, const std::string& label, bool keep_small,
                                       bool keep_prefix, bool need_embeddings) {
    FeatureCache c;
    const auto pre = tm_.preprocess;
    const int shorter = static_cast<int>(std::lround(opt_.image_size * 256.0 / 224.0));
    const auto roots = splits_.roots;
    // Training images only feed augmentation and the head's embeddings, so large JPEGs are
    // decoded at a reduced scale (never below the cache's shorter side); val and test keep the
    // exact inference decode, so their figures are those `firesight eval` gets.
    const int min_shorter = keep_small ? shorter : 0;
    const PrefixEngine* eng = cache_engine_.get();
    const bool run_engine = eng && (need_embeddings || keep_prefix);
    auto decode = [pre, shorter, roots, keep_small, min_shorter, eng, run_engine, keep_prefix, need_embeddings](data::Sample s) {
        DecodedSample d;
        try {
            const cv::Mat bgr = data::decode_image(roots.at(static_cast<std::size_t>(s.root)) / s.path, min_shorter);
            d.input = data::preprocess(bgr, pre);
            if (keep_small) cv::imencode(".jpg", data::shrink_for_cache(bgr, shorter), d.small, {cv::IMWRITE_JPEG_QUALITY, 95});
            if (run_engine) {
                if (keep_prefix) d.prefix.resize(static_cast<std::size_t>(eng->prefix_size()));
                if (need_embeddings) d.embedding.resize(static_cast<std::size_t>(eng->embedding_size()));
                eng->run(d.input, keep_prefix ? d.prefix.data() : nullptr, need_embeddings ? d.embedding.data() : nullptr);
                d.input.release();
            }
            d.ok = true;
        } catch (const std::exception& e) {
            d.error = e.what();
        }
        return d;
    };
    if (keep_small) c.small.emplace(opt_.out);
    if (keep_prefix) c.prefix.emplace(opt_.out);
    if (need_embeddings) c.embeddings.emplace(opt_.out);
    auto store_tensor = [](DiskStore& st, const torch::Tensor& rows) {
        const auto t = rows.contiguous();
        const std::size_t row = static_cast<std::size_t>(t[0].numel()) * sizeof(float);
        for (std::int64_t i = 0; i < t.size(0); ++i) st.append(t.data_ptr<float>() + i * t[0].numel(), row);
    };
    constexpr std::size_t kBatch = 16;
    std::size_t submitted = 0;
    std::vector<long> labels;
    ProgressBar bar(label, samples.size(), opt_.progress);
    torch::InferenceMode inference;
    std::size_t next = 0;
    std::vector<std::future<DecodedSample>> window;
    if (run_engine && keep_prefix) c.prefix_chw = eng->prefix_shape();
    while (next < samples.size()) {
        while (submitted < samples.size() && submitted < next + 2 * kBatch) window.push_back(pool_.submit([decode, s = samples[submitted]] { return decode(s); })), ++submitted;
        std::vector<cv::Mat> batch;
        const std::size_t end = std::min(samples.size(), next + kBatch);
        for (; next < end; ++next) {
            auto d = window[next].get();
            if (!d.ok) {
                splits_.skipped.push_back({samples[next].path, d.error});
                continue;
            }
            c.samples.push_back(samples[next]);
            labels.push_back(samples[next].label);
            if (keep_small) c.small->append(d.small.data(), d.small.size());
            if (run_engine) {
                if (keep_prefix) c.prefix->append(d.prefix.data(), d.prefix.size() * sizeof(float));
                if (need_embeddings) c.embeddings->append(d.embedding.data(), d.embedding.size() * sizeof(float));
            } else {
                batch.push_back(std::move(d.input));
            }
        }
        if (!batch.empty() && (need_embeddings || keep_prefix)) {  // the libtorch path
            auto x = tm_.net->forward_features(stack_images(batch), 0, from_);
            if (keep_prefix) {
                store_tensor(*c.prefix, x);
                c.prefix_chw = {x.size(1), x.size(2), x.size(3)};
            }
            if (need_embeddings) store_tensor(*c.embeddings, tm_.net->forward_features(x, from_, model::kFeatureBlocks).mean({2, 3}));
        }
        bar.update(next);
    }
    bar.finish();
    release_freed_memory();  // what the batches left in the heap is not this cache's: see allocator.h
    c.labels = torch::tensor(labels, torch::kLong);
    return c;
}

std::pair<double, double> Trainer::evaluate_cache(const FeatureCache& c, torch::Tensor* predictions, bool head_only) {
    if (c.samples.empty()) return {0.0, 0.0};
    torch::NoGradGuard g;
    tm_.net->eval();
    std::vector<torch::Tensor> logits;
    const std::size_t n = c.size();
    if (head_only || from_ >= model::kFeatureBlocks || !c.prefix) {
        const std::vector<std::int64_t> row{model::MobileNetV2Impl::kEmbeddingSize};
        for (std::size_t i = 0; i < n; i += 256)
            logits.push_back(tm_.net->classifier->forward(read_rows(*c.embeddings, i, std::min(n, i + 256), row)));
    } else {
        // No-grad activations per image are below the training estimate, so the training batch
        // size keeps evaluation inside the memory budget too (with all blocks trained, 32 images
        // at once overshot a 1.5 GB budget).
        const std::size_t step = static_cast<std::size_t>(std::max(1, plan_.batch_size));
        for (std::size_t i = 0; i < n; i += step) {
            auto x = read_rows(*c.prefix, i, std::min(n, i + step), c.prefix_chw);
            logits.push_back(tm_.net->classifier->forward(tm_.net->forward_features(x, from_, model::kFeatureBlocks).mean({2, 3})));
        }
    }
    auto all = torch::cat(logits);
    const double loss = weighted_loss(all, c.labels, class_weights_, 0.0).item<double>();
    auto pred = all.argmax(1);
    if (predictions) *predictions = pred;
    return {loss, pred.eq(c.labels).to(torch::kDouble).mean().item<double>()};
}

void Trainer::build_engines() {
    if (opt_.frozen != "auto" && opt_.frozen != "engine" && opt_.frozen != "libtorch")
        throw Error("--frozen '" + opt_.frozen + "': expected auto, engine or libtorch");
    if (opt_.frozen == "engine" && !PrefixEngine::available())
        throw Error("--frozen engine: this firesight was built without the XNNPACK backend");
    // With every block trained (from_ == 0) nothing is frozen but the embedding of the head
    // stage; that case stays on libtorch.
    if (opt_.frozen == "libtorch" || !PrefixEngine::available() || from_ == 0) return;
    const bool finetuning = from_ < model::kFeatureBlocks && finetune_epochs_done_ < opt_.finetune_epochs;
    cache_engine_ = std::make_unique<PrefixEngine>(tm_.net, opt_.image_size, from_ < model::kFeatureBlocks ? from_ : 0, true);
    if (finetuning) prefix_engine_ = std::make_unique<PrefixEngine>(tm_.net, opt_.image_size, from_, false);
}

void Trainer::save_best() {
    best_params_ = clone_params(*tm_.net);
    nlohmann::json info = {{"backbone", opt_.backbone.filename().string()}, {"data", data_json()},
                           {"image_size", opt_.image_size}, {"finetune_start_block", from_}, {"seed", opt_.seed}};
    if (prior_adjusted_) {
        const auto s = prior_shift();
        info["classifier_bias_shift"] = std::vector<float>(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());  // so a resume can undo it
        info["class_prior"] = opt_.class_prior;
    }
    tm_.info_json = info.dump();
    save_trained_model(tm_, opt_.out / "model.pt");
}

void Trainer::save_checkpoint(const std::string& stage, int epoch, double best_val, int bad_epochs, torch::optim::Optimizer* o) {
    torch::serialize::OutputArchive a;
    nlohmann::json meta = {{"stage", stage}, {"epoch", epoch}, {"best_val_loss", best_val}, {"bad_epochs", bad_epochs},
                           {"finetune_start_block", from_}, {"image_size", opt_.image_size}};
    a.write("meta", c10::IValue(meta.dump()));
    torch::serialize::OutputArchive params;
    tm_.net->save(params);
    a.write("net", params);
    if (o) {
        torch::serialize::OutputArchive opt_state;
        o->save(opt_state);
        a.write("optimizer", opt_state);
    }
    std::ostringstream os;
    a.save_to(os);
    write_file_atomic(opt_.out / "checkpoint.pt", os.str());
    nlohmann::json hist = nlohmann::json::array();
    for (const auto& r : history_) hist.push_back(eval::to_json(r));
    write_file_atomic(opt_.out / "history.json", hist.dump(1));
}

void Trainer::train_head() {
    const auto t0 = Clock::now();
    auto& head = tm_.net->classifier;
    for (auto& p : head->parameters()) p.set_requires_grad(true);
    torch::optim::AdamW adam(head->parameters(), torch::optim::AdamWOptions(opt_.head_lr).weight_decay(opt_.weight_decay));
    const long n = static_cast<long>(train_.size());
    const std::vector<std::int64_t> row{model::MobileNetV2Impl::kEmbeddingSize};
    const long batch = 32;
    std::vector<torch::Tensor> best = clone_params(*head);
    double best_loss = std::numeric_limits<double>::infinity();
    torch::Generator gen = at::detail::createCPUGenerator(opt_.seed);
    ProgressBar bar("head (frozen backbone)", static_cast<std::size_t>(opt_.head_epochs), opt_.progress);
    for (int epoch = 1; epoch <= opt_.head_epochs; ++epoch) {
        const auto te = Clock::now();
        tm_.net->train();
        // Cosine decay over the head epochs: large steps first, then settle.
        const double lr = opt_.head_lr * 0.5 * (1 + std::cos(M_PI * (epoch - 1) / std::max(1, opt_.head_epochs)));
        for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
        auto order = torch::randperm(n, gen, torch::kLong);
        double loss_sum = 0;
        long correct = 0;
        for (long i = 0; i < n; i += batch) {
            auto idx = order.slice(0, i, std::min(n, i + batch));
            auto x = read_rows(*train_.embeddings, idx, row), y = train_.labels.index_select(0, idx);
            auto logits = head->forward(tm_.net->dropout->forward(x));
            auto loss = weighted_loss(logits, y, class_weights_, opt_.label_smoothing);
            adam.zero_grad();
            loss.backward();
            adam.step();
            loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
            correct += logits.argmax(1).eq(y).sum().item<long>();
        }
        eval::EpochRecord r;
        r.stage = "head";
        r.epoch = epoch;
        r.train_loss = loss_sum / static_cast<double>(n);
        r.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
        // Validation reads the cached embeddings directly: the classifier is all that changes.
        {
            if (val_.size() > 0) {
                std::tie(r.val_loss, r.val_accuracy) = evaluate_cache(val_, nullptr, true);
            } else {
                r.val_loss = r.train_loss;
                r.val_accuracy = r.train_accuracy;
            }
        }
        r.learning_rate = lr;
        r.seconds = seconds_since(te);
        r.peak_rss_mb = mb(peak_rss_bytes());
        history_.push_back(r);
        if (r.val_loss < best_loss) {
            best_loss = r.val_loss;
            best = clone_params(*head);
        }
        char buf[96];
        std::snprintf(buf, sizeof buf, "loss %.3f val %.3f acc %.1f%%", r.train_loss, r.val_loss, 100 * r.val_accuracy);
        bar.update(static_cast<std::size_t>(epoch), buf);
    }
    bar.finish();
    restore_params(*head, best);
    for (auto& p : head->parameters()) p.set_requires_grad(false);
    best_val_loss_ = best_loss;
    timings_.push_back({"head", seconds_since(t0), static_cast<std::size_t>(n) * static_cast<std::size_t>(opt_.head_epochs), mb(peak_rss_bytes())});
    head_done_ = true;
    save_best();
    save_checkpoint("head_done", 0, best_val_loss_, 0, nullptr);
}

void Trainer::finetune() {
    const auto t0 = Clock::now();
    std::vector<torch::Tensor> trainable;
    for (int b = from_; b < model::kFeatureBlocks; ++b)
        for (auto& p : tm_.net->features[static_cast<std::size_t>(b)]->parameters()) trainable.push_back(p);
    for (auto& p : tm_.net->classifier->parameters()) trainable.push_back(p);
    for (auto& p : trainable) p.set_requires_grad(true);
    torch::optim::AdamW adam(trainable, torch::optim::AdamWOptions(opt_.finetune_lr).weight_decay(opt_.weight_decay));

    const auto n = train_.samples.size();
    const std::size_t batch = static_cast<std::size_t>(plan_.batch_size);
    const std::size_t step_images = batch * static_cast<std::size_t>(plan_.accumulation);
    const std::size_t steps_per_epoch = (n + step_images - 1) / step_images;
    const std::size_t total_steps = steps_per_epoch * static_cast<std::size_t>(opt_.finetune_epochs);
    const std::size_t warmup = std::max<std::size_t>(1, std::min(steps_per_epoch, total_steps / 10));
    auto lr_at = [&](std::size_t step) {
        if (step < warmup) return opt_.finetune_lr * (0.1 + 0.9 * static_cast<double>(step + 1) / static_cast<double>(warmup));
        const double t = static_cast<double>(step - warmup) / static_cast<double>(std::max<std::size_t>(1, total_steps - warmup));
        return opt_.finetune_lr * (0.01 + 0.99 * 0.5 * (1 + std::cos(M_PI * std::min(1.0, t))));
    };

    int start_epoch = 1;
    if (resume_archive_) {
        torch::serialize::InputArchive opt_state;
        if (resume_archive_->try_read("optimizer", opt_state)) adam.load(opt_state);
        start_epoch = finetune_epochs_done_ + 1;
    }
    const data::AugmentOptions aug;
    const auto pre = tm_.preprocess;
    std::size_t images_seen = 0;
    for (int epoch = start_epoch; epoch <= opt_.finetune_epochs; ++epoch) {
        if (bad_epochs_ >= opt_.patience) break;
        const auto te = Clock::now();
        tm_.net->train();
        std::vector<std::size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::mt19937 rng(opt_.seed * 1000003u + static_cast<unsigned>(epoch));
        for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
        // Each image gets its own generator so the result does not depend on thread timing.
        std::vector<std::future<FrozenInput>> ready;
        std::size_t submitted = 0;
        auto submit_until = [&](std::size_t limit) {
            for (; submitted < std::min(n, limit); ++submitted) {
                const std::size_t idx = order[submitted];
                const unsigned s = rng();
                ready.push_back(pool_.submit([this, idx, s, aug, pre] {
                    std::mt19937 r(s);
                    FrozenInput in;
                    in.image = data::augment(cv::imdecode(train_.small->read(idx), cv::IMREAD_COLOR), pre, aug, r);
                    if (prefix_engine_) {  // the frozen prefix, computed here while libtorch trains on the previous batch
                        in.prefix.resize(static_cast<std::size_t>(prefix_engine_->prefix_size()));
                        prefix_engine_->run(in.image, in.prefix.data(), nullptr);
                        in.image.release();
                    }
                    return in;
                }));
            }
        };
        ProgressBar bar("finetune epoch " + std::to_string(epoch) + "/" + std::to_string(opt_.finetune_epochs), n, opt_.progress);
        double loss_sum = 0;
        long correct = 0;
        std::size_t done = 0, micro = 0;
        double lr = 0;
        adam.zero_grad();
        while (done < n) {
            submit_until(done + 2 * batch);
            const std::size_t end = std::min(n, done + batch);
            std::vector<FrozenInput> ins;
            std::vector<long> ys;
            for (std::size_t i = done; i < end; ++i) {
                ins.push_back(ready[i].get());
                ys.push_back(train_.labels[static_cast<long>(order[i])].item<long>());
            }
            submit_until(end + 2 * batch);  // the next batch decodes while this one trains
            auto y = torch::tensor(ys, torch::kLong);
            torch::Tensor x;
            if (prefix_engine_) {
                std::vector<std::int64_t> shape{static_cast<std::int64_t>(ins.size())};
                for (auto d : prefix_engine_->prefix_shape()) shape.push_back(d);
                x = torch::empty(shape, torch::kFloat32);
                const std::size_t row = static_cast<std::size_t>(prefix_engine_->prefix_size());
                for (std::size_t i = 0; i < ins.size(); ++i) std::copy(ins[i].prefix.begin(), ins[i].prefix.end(), x.data_ptr<float>() + i * row);
            } else {
                std::vector<cv::Mat> imgs;
                for (auto& in : ins) imgs.push_back(std::move(in.image));
                torch::NoGradGuard g;
                x = tm_.net->forward_features(stack_images(imgs), 0, from_);
            }
            ins.clear();
            auto logits = tm_.net->classifier->forward(tm_.net->dropout->forward(tm_.net->forward_features(x, from_, model::kFeatureBlocks).mean({2, 3})));
            auto loss = weighted_loss(logits, y, class_weights_, opt_.label_smoothing);
            (loss * (static_cast<double>(end - done) / static_cast<double>(step_images))).backward();
            loss_sum += loss.item<double>() * static_cast<double>(end - done);
            correct += logits.argmax(1).eq(y).sum().item<long>();
            done = end;
            if (++micro % static_cast<std::size_t>(plan_.accumulation) == 0 || done == n) {
                const std::size_t step = static_cast<std::size_t>(epoch - 1) * steps_per_epoch + (micro - 1) / static_cast<std::size_t>(plan_.accumulation);
                lr = lr_at(step);
                for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
                adam.step();
                adam.zero_grad();
            }
            char buf[64];
            std::snprintf(buf, sizeof buf, "loss %.3f", loss_sum / static_cast<double>(done));
            bar.update(done, buf);
        }
        images_seen += n;
        eval::EpochRecord r;
        r.stage = "finetune";
        r.epoch = epoch;
        r.train_loss = loss_sum / static_cast<double>(n);
        r.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
        std::tie(r.val_loss, r.val_accuracy) = evaluate_cache(val_);
        r.learning_rate = lr;
        r.seconds = seconds_since(te);
        r.peak_rss_mb = mb(peak_rss_bytes());
        history_.push_back(r);
        char buf[128];
        std::snprintf(buf, sizeof buf, "loss %.3f val loss %.3f val acc %.1f%%", r.train_loss, r.val_loss, 100 * r.val_accuracy);
        bar.finish(buf);
        if (r.val_loss < best_val_loss_) {
            best_val_loss_ = r.val_loss;
            bad_epochs_ = 0;
            save_best();
        } else {
            ++bad_epochs_;
            if (bad_epochs_ >= opt_.patience) log("early stop: validation loss has not improved for " + std::to_string(bad_epochs_) + " epochs");
        }
        finetune_epochs_done_ = epoch;
        save_checkpoint("finetune", epoch, best_val_loss_, bad_epochs_, &adam);
    }
    for (auto& p : trainable) p.set_requires_grad(false);
    timings_.push_back({"finetune", seconds_since(t0), images_seen, mb(peak_rss_bytes())});
}

// The class-weighted loss learns probabilities as if the class shares were the data's shares times
// the weights. Post-hoc logit adjustment moves them to the shares the decision should assume:
// "data" (bias - log w) gives back the data's shares, so argmax does not over-call a rare class;
// "balanced" (bias + log w, as w ~ share^-1/2) makes every class equally likely a priori, which is
// what balanced accuracy and per-class recall ask for, and right when a root such as the hard
// negatives inflates a class's share for training's sake. On the three-class set, balanced gave
// the best validation balanced accuracy of the three (docs/three-classes.md).
torch::Tensor Trainer::prior_shift() const {
    if (opt_.class_prior == "data") return -class_weights_.log();
    if (opt_.class_prior == "balanced") return class_weights_.log();
    throw Error("--class-prior '" + opt_.class_prior + "': expected balanced or data");
}

void Trainer::write_outputs(TrainResult& r) {
    restore_params(*tm_.net, best_params_);
    {
        torch::NoGradGuard g;
        tm_.net->classifier->bias.add_(prior_shift());
    }
    prior_adjusted_ = true;
    save_best();
    torch::Tensor pred;
    evaluate_cache(test_, &pred);
    std::vector<int> truth, predicted;
    for (long i = 0; i < test_.labels.size(0); ++i) {
        truth.push_back(static_cast<int>(test_.labels[i].item<long>()));
        predicted.push_back(static_cast<int>(pred[i].item<long>()));
    }
    r.test = eval::compute_metrics(splits_.classes, truth, predicted);
    r.history = history_;
    r.stages = timings_;
    r.skipped = splits_.skipped;
    r.plan = plan_;
    r.peak_rss_mb = mb(peak_rss_bytes());
    r.model_path = opt_.out / "model.pt";

    nlohmann::json j;
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : history_) epochs.push_back(eval::to_json(e));
    j["epochs"] = epochs;
    nlohmann::json stages = nlohmann::json::array();
    for (const auto& s : timings_) stages.push_back({{"stage", s.name}, {"seconds", s.seconds}, {"images", s.images}});
    j["stages"] = stages;
    j["test"] = eval::to_json(r.test);
    j["peak_rss_mb"] = r.peak_rss_mb;
    j["memory_budget_mb"] = mb(opt_.memory_budget);
    j["batch"] = {{"batch_size", plan_.batch_size}, {"accumulation", plan_.accumulation},
                  {"estimated_peak_mb", mb(plan_.estimated_peak_bytes)}, {"per_image_mb", mb(plan_.per_image_bytes)}};
    j["finetune_start_block"] = from_;
    j["image_size"] = opt_.image_size;
    j["classes"] = splits_.classes;
    j["split_sizes"] = {{"train", train_.samples.size()}, {"val", val_.samples.size()}, {"test", test_.samples.size()}};
    nlohmann::json sk = nlohmann::json::array();
    for (const auto& s : splits_.skipped) sk.push_back({{"file", s.path.string()}, {"reason", s.reason}});
    j["skipped"] = sk;
    write_file_atomic(opt_.out / "metrics.json", j.dump(1));

    const auto conf = eval::confusion_svg(r.test, "Test split: confusion matrix");
    const auto curves = eval::curves_svg(history_, "Training curves (head, then fine-tuning)");
    write_file_atomic(opt_.out / "confusion.svg", conf);
    write_file_atomic(opt_.out / "curves.svg", curves);
    std::vector<std::string> lines;
    char buf[256];
    lines.push_back("data: " + data_names());
    std::snprintf(buf, sizeof buf, "images: %zu train, %zu val, %zu test; %zu skipped", train_.samples.size(), val_.samples.size(),
                  test_.samples.size(), splits_.skipped.size());
    lines.push_back(buf);
    for (const auto& s : timings_) {
        std::snprintf(buf, sizeof buf, "stage %s: %.1f s", s.name.c_str(), s.seconds);
        lines.push_back(buf);
    }
    std::snprintf(buf, sizeof buf, "peak RSS %.0f MB (budget %.0f MB), batch %d x %d accumulation", r.peak_rss_mb,
                  mb(opt_.memory_budget), plan_.batch_size, plan_.accumulation);
    lines.push_back(buf);
    // Where the model looked: the maps of the test errors and of a few correct photos.
    std::vector<fs::path> files;
    for (const auto& s : test_.samples) files.push_back(splits_.file(s));
    model::TorchClassifier clf(tm_.net, splits_.classes, tm_.preprocess, "the trained model");
    const auto maps = eval::activation_maps_html(clf, files, truth, predicted);
    write_file_atomic(opt_.out / "report.html", eval::report_html("firesight training run", lines, r.test, conf, curves, maps));
}

TrainResult Trainer::run() {
    const auto t_all = Clock::now();
    torch::set_num_threads(cores_);
    torch::manual_seed(opt_.seed);
    fs::create_directories(opt_.out);
    prepare_splits();
    load_backbone();
    from_ = finetune_start_block(opt_.finetune_blocks, opt_.finetune_epochs);
    tm_.net->eval();

    // Resume: the checkpoint says how far the run got; its weights replace the imported ones.
    const fs::path ckpt = opt_.out / "checkpoint.pt";
    if (opt_.resume) {
        if (!fs::exists(ckpt)) {
            log("resume: no checkpoint in " + opt_.out.string() + ", starting from the beginning");
        } else {
            resume_archive_.emplace();
            resume_archive_->load_from(ckpt.string());
            c10::IValue meta_v;
            if (!resume_archive_->try_read("meta", meta_v)) throw Error(ckpt.string() + ": not a firesight checkpoint");
            const auto meta = nlohmann::json::parse(meta_v.toStringRef());
            if (meta.at("finetune_start_block").get<int>() != from_ || meta.at("image_size").get<int>() != opt_.image_size)
                throw Error(ckpt.string() + ": was made with other --finetune-blocks / --image-size settings; resume with the same ones");
            torch::serialize::InputArchive params;
            resume_archive_->read("net", params);
            tm_.net->load(params);
            for (auto& p : tm_.net->parameters()) p.set_requires_grad(false);
            head_done_ = true;
            best_val_loss_ = meta.at("best_val_loss").get<double>();
            bad_epochs_ = meta.at("bad_epochs").get<int>();
            finetune_epochs_done_ = meta.at("stage").get<std::string>() == "finetune" ? meta.at("epoch").get<int>() : 0;
            const auto hist_file = opt_.out / "history.json";
            if (fs::exists(hist_file))
                for (const auto& e : nlohmann::json::parse(read_file_text(hist_file))) history_.push_back(eval::epoch_record_from_json(e));
            log("resume: continuing after " + meta.at("stage").get<std::string>() + " epoch " + std::to_string(meta.at("epoch").get<int>()));
            best_params_ = clone_params(*tm_.net);
            if (fs::exists(opt_.out / "model.pt")) {
                auto best = model::load_trained_model(opt_.out / "model.pt");
                const auto info = nlohmann::json::parse(best.info_json);
                if (info.contains("classifier_bias_shift")) {  // a finished run: undo its final bias shift
                    torch::NoGradGuard g;
                    best.net->classifier->bias.sub_(torch::tensor(info["classifier_bias_shift"].get<std::vector<float>>()));
                }
                best_params_ = clone_params(*best.net);
            }
        }
    }

    const auto counts = data::class_counts(splits_.train, splits_.classes.size());
    {
        std::string line = "classes:";
        for (std::size_t c = 0; c < counts.size(); ++c)
            line += " " + splits_.classes[c] + " " + std::to_string(counts[c]) + "/" + std::to_string(data::class_counts(splits_.val, counts.size())[c]) +
                    "/" + std::to_string(data::class_counts(splits_.test, counts.size())[c]);
        log(line + " (train/val/test)");
        const int lo = *std::min_element(counts.begin(), counts.end()), hi = *std::max_element(counts.begin(), counts.end());
        if (lo == 0) throw Error(data_names() + ": a class has no training images");
        if (hi > 2 * lo) log("classes are unbalanced (" + std::to_string(hi) + ":" + std::to_string(lo) + "): the loss weighs each class by the square root of its inverse share");
    }
    // Weights sqrt(n / (k * n_c)): halfway (in log odds) between the plain loss, which lets the
    // common class swamp the rare one, and full inverse weighting, which on fire-cair (1 fire in
    // 6) made the model call fire on 11% of neutral test photos. --fire-threshold moves the
    // remaining trade-off at inference.
    std::vector<float> w;
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    for (int c : counts) w.push_back(static_cast<float>(std::sqrt(total / (static_cast<double>(counts.size()) * c))));
    class_weights_ = torch::tensor(w);

    const auto t_cache = Clock::now();
    const bool need_train_embeddings = !head_done_;
    const bool finetuning = from_ < model::kFeatureBlocks && finetune_epochs_done_ < opt_.finetune_epochs;
    build_engines();
    train_ = decode_and_embed(splits_.train, "decode+embed train", finetuning, false, need_train_embeddings);
    val_ = decode_and_embed(splits_.val, "decode+embed val", false, from_ < model::kFeatureBlocks, true);
    test_ = decode_and_embed(splits_.test, "decode+embed test", false, from_ < model::kFeatureBlocks, true);
    timings_.push_back({"cache", seconds_since(t_cache), splits_.train.size() + splits_.val.size() + splits_.test.size(), mb(peak_rss_bytes())});
    cache_engine_.reset();  // its packed weights are not needed any more
    if (!splits_.skipped.empty()) {
        log("warning: " + std::to_string(splits_.skipped.size()) + " file(s) skipped:");
        for (const auto& s : splits_.skipped) log("  " + s.path.string() + ": " + s.reason);
    }
    // splits.json lists only what was used, and the skipped files with their reasons.
    data::DatasetSplits used = splits_;
    used.train = train_.samples;
    used.val = val_.samples;
    used.test = test_.samples;
    write_file_atomic(opt_.out / "splits.json", data::splits_to_json(used));
    if (train_.samples.empty()) throw Error(data_names() + ": no readable training images");

    std::size_t trainable_params = 0;
    for (int b = std::min(from_, model::kFeatureBlocks); b < model::kFeatureBlocks; ++b)
        for (const auto& p : tm_.net->features[static_cast<std::size_t>(b)]->parameters()) trainable_params += static_cast<std::size_t>(p.numel());
    // Process as it is now (libraries, weights, caches), plus gradients and two AdamW moments of
    // the trainable weights, plus allocator slack.
    const std::size_t fixed = current_rss_bytes() + 3 * 4 * trainable_params + (std::size_t{128} << 20);
    plan_ = plan_batches(opt_.memory_budget, fixed, opt_.image_size, from_, opt_.batch_size);
    if (finetuning) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "fine-tuning features.%d..18 + head: batch %d x %d accumulation (est. %.0f MB/image, peak %.0f MB of %.0f MB budget)",
                      from_, plan_.batch_size, plan_.accumulation, mb(plan_.per_image_bytes), mb(plan_.estimated_peak_bytes),
                      mb(opt_.memory_budget));
        log(buf);
    }

    if (!head_done_) train_head();
    if (finetuning) finetune();
    if (best_params_.empty()) best_params_ = clone_params(*tm_.net);
    TrainResult r;
    write_outputs(r);
    timings_.push_back({"total", seconds_since(t_all), 0, mb(peak_rss_bytes())});
    r.stages = timings_;
    return r;
}

}  // namespace

TrainResult train_classifier(const TrainOptions& opt) {
    if (opt.image_size < 32 || opt.image_size > 1024) throw Error("--image-size " + std::to_string(opt.image_size) + " is out of range (32..1024)");
    if (opt.head_epochs < 0 || opt.finetune_epochs < 0) throw Error("epochs must not be negative");
    // The decode workers are the parallelism of image work: OpenCV's own parallel loops inside
    // them would only add threads that compete with libtorch's (restored when training ends).
    struct OpenCvThreads {
        int saved = cv::getNumThreads();
        OpenCvThreads() { cv::setNumThreads(1); }
        ~OpenCvThreads() { cv::setNumThreads(saved); }
    } opencv_threads;
    Trainer t(opt);
    return t.run();
}

}  // namespace firesight::train
