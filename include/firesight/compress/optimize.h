// `firesight optimize`: builds compressed variants of a trained run (magnitude and channel pruning,
// weight clustering, int8), fine-tunes them quickly on cached activations, measures each one with
// the runtime and picks the fastest (or smallest) that stays within an accuracy budget.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "firesight/eval/variants.h"

namespace firesight::compress {

enum class OptimizeTarget { Latency, Size };
// "latency" | "size"; throws firesight::Error naming the accepted values otherwise.
OptimizeTarget parse_optimize_target(const std::string& s);
const char* optimize_target_name(OptimizeTarget t);

struct OptimizeOptions {
    std::filesystem::path model;  // run folder (model.pt + splits.json) or model.pt beside splits.json
    std::vector<std::filesystem::path> data;  // the image folders the run was trained on (empty: those in its splits.json)
    std::filesystem::path out;    // variants/, results.json, report.html, model.fse
    double max_accuracy_drop = 1.0;  // points below fp32 on the selection split
    OptimizeTarget target = OptimizeTarget::Latency;

    // The search space.
    std::vector<double> sparsities{0.5, 0.75};  // magnitude pruning, per layer
    std::vector<int> clusters{16, 32};          // k of weight clustering
    // int8 calibration methods for the fp32 model: "auto" (chosen per tensor), "minmax",
    // "percentile", "entropy". Pruned/clustered/channel-pruned bases get "auto" only.
    std::vector<std::string> methods{"auto", "minmax", "percentile", "entropy"};
    double channel_fraction = 0.25;  // structured pruning of the hidden channels; 0: no such variant
    // Variant "struct": this share of the hidden channels removed from the blocks where the int8
    // engine spends its time (features.2 .. features.13, before the fine-tuned tail; see
    // docs/optimize.md), chosen by their contribution to the block output, each block's projection
    // refit by least squares to the fp32 model's block output, then the tail fine-tuned. 0: no such variant.
    double structured_fraction = 0.5;
    // Also in "struct", where fine-tuning recovers them: this share of the hidden channels of the
    // fine-tuned blocks (features.14 .. 17) and of features.18's output channels (the embedding the
    // classifier reads) removed, by the same activation-aware ranking, before the tail's
    // fine-tuning. On the fire-smoke model they took struct-int8 from 1.5x to 1.75-1.8x the int8
    // engine and from 1.37 to 0.68 points below fp32 (docs/optimize.md, "Pruning that pays").
    double structured_tail_fraction = 0.5;
    double structured_embedding_fraction = 0.5;
    // And of features.0's 32 outputs at 112x112 (features.1's hidden channels; features.1's
    // projection refit like the early blocks'): with it struct-int8 was within the budget on both
    // models measured (0.34 and 0.69 points), without it 1.60 points below fp32 on the main job's.
    double structured_stem_fraction = 0.5;
    // Quantization-aware fine-tuning (variant int8-qat): "auto" when no post-training int8 variant of
    // the fp32 model is within the budget, "always", or "never".
    std::string qat = "auto";

    std::size_t calibration = 64;  // images drawn from the training split
    // Fine-tuning: blocks features[finetune_from..18] + classifier train on cached activations of
    // the frozen prefix; the prefix is compressed once, without fine-tuning.
    int finetune_steps = 60;
    int finetune_batch = 32;
    double finetune_lr = 1e-4;  // Adam, for weights; cluster centroids get 10x
    int finetune_from = 14;
    // Magnitude pruning of the prefix's 1x1 convs too (once, at the target sparsity, without
    // fine-tuning). Off by default: on fire-cair it cost ~8 points of validation accuracy at 50%,
    // while clustering the prefix without fine-tuning cost nothing measurable.
    bool prune_prefix = false;
    int bench_runs = 20;   // latency runs per variant and round (fresh firesight-run process)
    int bench_rounds = 5;  // rounds over all variants, interleaved (eval::time_variants_interleaved)
    unsigned seed = 1;
    int threads = 0;  // libtorch threads; 0: every core the machine shows (not only physical ones)
    bool progress = true;
    // Build only these variants (and fp32, the reference); empty: all. Not part of the fingerprint:
    // it changes what is built, not how.
    std::vector<std::string> only{};
};

// A measured variant: the runtime's figures on the test split (result) and, for the choice, the
// accuracy on the validation split.
struct VariantRecord {
    eval::VariantResult result;
    double val_accuracy = 0;       // 0..1
    double val_accuracy_drop = 0;  // points below fp32 on the validation split
    int val_images = 0;            // 0: no validation split; the choice uses the test split
};

// The rule: among the variants whose accuracy drop (validation split when every record has one,
// else test split) is at most max_drop, the lowest latency (Latency) or the smallest file (Size);
// ties go to the smaller (Latency) / faster (Size) one, then to the earlier one. "fp32" always
// qualifies. Returns "" for an empty list. With the Latency target, variants within
// `latency_tie` (5%) of the fastest qualifying one count as tied and the smallest file among them
// wins: timing noise on a shared machine is of that order, so a 2% "win" must not choose a larger
// file, nor flip the choice from one run to the next.
std::string choose_variant(const std::vector<VariantRecord>& v, double max_drop, OptimizeTarget target, double latency_tie = 0.05);

// Sets accuracy drops (test and validation) of every record against "fp32".
void set_drops(std::vector<VariantRecord>& v);

// What decides whether a finished variant can be reused: the bytes of model.pt and the options
// that change what the variants are (not the choice: budget and target).
std::string optimize_fingerprint(const std::filesystem::path& model_pt, const OptimizeOptions& opt);

// Resume files: OUT/variants/<name>.json holds the record and the fingerprint it was made under.
nlohmann::json record_to_json(const VariantRecord& r);
VariantRecord record_from_json(const nlohmann::json& j);
// The record of a finished variant when its json and engine exist and the fingerprint matches.
bool load_finished_variant(const std::filesystem::path& out, const std::string& name, const std::string& fingerprint,
                           VariantRecord& r);
void save_finished_variant(const std::filesystem::path& out, const VariantRecord& r, const std::string& fingerprint);

// Time spent on one kind of work ("decode training images", "prefix caches", "fine-tuning",
// "calibration", "evaluation", "timing", ...), summed over the run.
struct OptimizeStage {
    std::string kind;
    double seconds = 0;      // wall
    double cpu_seconds = 0;  // of the whole process (all threads) meanwhile
};

struct OptimizeResult {
    std::vector<VariantRecord> variants;
    std::string chosen;
    std::vector<std::string> reused;    // variants taken from an earlier run
    std::vector<std::string> warnings;  // skipped images, variants that failed
    std::filesystem::path model_fse;    // OUT/model.fse
    double seconds = 0;
    double peak_rss_mb = 0;
    // By kind of work, in the order first met: where the time went.
    std::vector<OptimizeStage> stages;
};

// Runs the whole search; writes OUT/variants/*, OUT/model.fse, OUT/results.json, OUT/report.html.
// Throws firesight::Error on bad input (missing run, data without the run's classes, options).
OptimizeResult run_optimize(const OptimizeOptions& opt);

}  // namespace firesight::compress
