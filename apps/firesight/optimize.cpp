// firesight optimize: a trained run in, compressed engine variants measured with the runtime and
// the best one within an accuracy budget out (OUT/model.fse, results.json, report.html).
#include <cstdio>
#include <sstream>

#include "commands.h"
#include "firesight/common/allocator.h"
#include "firesight/common/error.h"
#include "firesight/compress/optimize.h"

namespace firesight::cli {
namespace {

struct OptimizeArgs {
    compress::OptimizeOptions o;
    std::string target = "latency";
    std::string model, out;
    std::vector<std::string> data;
    bool quiet = false;
};

void run_optimize_command(OptimizeArgs& a) {
    keep_freed_memory();  // batch after batch of large tensors: see allocator.h
    a.o.model = a.model;
    a.o.data.assign(a.data.begin(), a.data.end());
    a.o.out = a.out;
    a.o.target = compress::parse_optimize_target(a.target);
    a.o.progress = !a.quiet;
    const auto r = compress::run_optimize(a.o);
    std::vector<eval::VariantResult> plain;
    for (const auto& v : r.variants) plain.push_back(v.result);
    std::printf("%s", eval::variants_table(plain, r.chosen).c_str());
    const bool on_val = !r.variants.empty() && r.variants.front().val_images > 0;
    std::printf("\nvalidation split (%d images), used for the choice:\n", on_val ? r.variants.front().val_images : 0);
    for (const auto& v : r.variants)
        std::printf("  %-22s val accuracy %6.2f%%  drop %+6.2f   test drop %+6.2f%s\n", v.result.name.c_str(), 100.0 * v.val_accuracy,
                    v.val_accuracy_drop, v.result.accuracy_drop, v.result.name == r.chosen ? "   <- chosen" : "");
    for (const auto& w : r.warnings) std::printf("warning: %s\n", w.c_str());
    if (!r.reused.empty()) std::printf("%zu variant(s) reused from an earlier run in %s\n", r.reused.size(), a.out.c_str());
    std::printf("chosen: %s (target %s, max accuracy drop %.2f points on the %s split) -> %s\n", r.chosen.c_str(), a.target.c_str(),
                a.o.max_accuracy_drop, on_val ? "validation" : "test", r.model_fse.string().c_str());
    std::printf("optimize took %.0f s, peak RSS %.0f MB\nwhere the time went (wall s / CPU s):", r.seconds, r.peak_rss_mb);
    double accounted = 0;
    for (const auto& st : r.stages) {
        std::printf(" %s %.1f / %.1f,", st.kind.c_str(), st.seconds, st.cpu_seconds);
        accounted += st.seconds;
    }
    std::printf(" other %.1f\n", r.seconds - accounted);
}

void add_optimize(CLI::App& app) {
    auto a = std::make_shared<OptimizeArgs>();
    auto* sub = app.add_subcommand("optimize",
                                   "Search pruned / clustered / int8 variants of a trained run, measure them with the runtime, "
                                   "and keep the fastest (or smallest) within an accuracy budget");
    sub->add_option("--model,-m", a->model, "Run folder from `firesight train` (model.pt + splits.json)")->required();
    sub->add_option("--data,-d", a->data, "The image folder(s) the run was trained on, in the same order (default: those in its splits.json)");
    sub->add_option("--out,-o", a->out, "Output folder (variants/, model.fse, results.json, report.html); a rerun resumes")->required();
    sub->add_option("--max-accuracy-drop", a->o.max_accuracy_drop, "Points of accuracy a variant may lose against fp32")
        ->capture_default_str();
    sub->add_option("--target", a->target, "What to minimise among the variants within the budget: latency | size")->capture_default_str();
    sub->add_option("--sparsity", a->o.sparsities, "Magnitude-pruning sparsities, comma separated")->delimiter(',')->capture_default_str();
    sub->add_option("--clusters", a->o.clusters, "Weight-clustering k values, comma separated")->delimiter(',')->capture_default_str();
    sub->add_option("--methods", a->o.methods, "int8 calibration methods: auto,minmax,percentile,entropy")->delimiter(',')->capture_default_str();
    sub->add_option("--channel-fraction", a->o.channel_fraction, "Hidden channels removed by structured pruning (0: none)")
        ->capture_default_str();
    sub->add_option("--structured", a->o.structured_fraction,
                    "Hidden channels removed from the early blocks (features.2..13) in variant struct, projections refit (0: none)")
        ->capture_default_str();
    sub->add_option("--structured-tail", a->o.structured_tail_fraction,
                    "In variant struct, hidden channels removed from the fine-tuned blocks (features.14..17) too")
        ->capture_default_str();
    sub->add_option("--structured-embedding", a->o.structured_embedding_fraction,
                    "In variant struct, features.18's output channels (the classifier's inputs) removed too")
        ->capture_default_str();
    sub->add_option("--structured-stem", a->o.structured_stem_fraction,
                    "In variant struct, features.0's output channels (features.1's hidden channels) removed too")
        ->capture_default_str();
    sub->add_option("--only", a->o.only, "Build only these variants (comma separated; fp32 always), e.g. to try one setting")
        ->delimiter(',');
    sub->add_option("--calibration", a->o.calibration, "Calibration images drawn from the training split")->capture_default_str();
    sub->add_option("--finetune-steps", a->o.finetune_steps, "Optimizer steps per fine-tuning")->capture_default_str();
    sub->add_option("--finetune-batch", a->o.finetune_batch, "Images per fine-tuning step")->capture_default_str();
    sub->add_option("--finetune-lr", a->o.finetune_lr, "Fine-tuning learning rate (Adam)")->capture_default_str();
    sub->add_option("--finetune-from", a->o.finetune_from,
                    "First block fine-tuned; earlier blocks are compressed once and their activations cached")
        ->capture_default_str();
    sub->add_flag("--prune-prefix", a->o.prune_prefix, "Also prune the early (not fine-tuned) blocks' 1x1 convs");
    sub->add_option("--bench-runs", a->o.bench_runs, "Latency runs per variant and round (0: no timing)")->capture_default_str();
    sub->add_option("--bench-rounds", a->o.bench_rounds,
                    "Rounds over all variants, interleaved; a variant's latency is the median of its rounds")
        ->capture_default_str();
    sub->add_option("--threads", a->o.threads, "libtorch threads (0: all cores)")->capture_default_str();
    sub->add_option("--qat", a->o.qat, "Quantization-aware fine-tuning: auto (when post-training int8 misses the budget), always, never")
        ->capture_default_str();
    sub->add_flag("--quiet,-q", a->quiet, "No progress bar");
    sub->callback([a]() { run_optimize_command(*a); });
}

}  // namespace

FIRESIGHT_COMMAND(optimize, 58, add_optimize);

}  // namespace firesight::cli
