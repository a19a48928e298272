// firesight train: transfer learning of the ImageNet MobileNetV2 on an image folder (default: the
// real fire-cair photos), writing a run folder that eval, predict and build open.
#include <cstdio>

#include "commands.h"
#include "firesight/common/allocator.h"
#include "firesight/common/blas_info.h"
#include "firesight/common/error.h"
#include "firesight/train/train.h"

namespace firesight::cli {

namespace {

struct TrainCliOptions {
    std::vector<std::string> data;
    std::string out = "runs/train", backbone, split = "0.7,0.15,0.15", batch = "auto", budget = "2G", blocks = "6";
    train::TrainOptions t;
};

int run_train(TrainCliOptions& o) {
    keep_freed_memory();  // batch after batch of large tensors: see allocator.h
    auto& t = o.t;
    t.data.clear();
    if (o.data.empty()) {  // the product's default: three classes, with the hard negatives as a second root
        t.data = {train::find_asset("fire-smoke"), train::find_asset("hard-negatives")};
    } else {
        for (const auto& d : o.data) t.data.emplace_back(d);
    }
    t.backbone = o.backbone.empty() ? train::find_asset("mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite") : std::filesystem::path(o.backbone);
    t.out = o.out;
    t.split = data::parse_split_fractions(o.split);
    t.memory_budget = train::parse_memory_size(o.budget);
    if (o.batch == "auto") {
        t.batch_size = 0;
    } else {
        try {
            t.batch_size = std::stoi(o.batch);
        } catch (const std::exception&) {
            throw Error("--batch-size '" + o.batch + "' is not a number or 'auto'");
        }
        if (t.batch_size <= 0) throw Error("--batch-size must be positive or 'auto'");
    }
    if (o.blocks == "all") {
        t.finetune_blocks = -1;
    } else {
        try {
            t.finetune_blocks = std::stoi(o.blocks);
        } catch (const std::exception&) {
            throw Error("--finetune-blocks '" + o.blocks + "' is not a number or 'all'");
        }
        if (t.finetune_blocks < 0 || t.finetune_blocks > 17) throw Error("--finetune-blocks must be 0..17 or 'all'");
    }
    std::string roots;
    for (const auto& d : t.data) roots += (roots.empty() ? "" : " + ") + d.string();
    std::fprintf(stderr, "training on %s, backbone %s, run folder %s\n", roots.c_str(), t.backbone.string().c_str(), t.out.string().c_str());
    report_blas();  // libtorch is several times slower on the reference BLAS: say which one this is
    const auto r = train::train_classifier(t);
    std::printf("%s", eval::to_text(r.test).c_str());
    const int fire = eval::fire_class_index(r.test.classes);
    if (fire >= 0) std::printf("fire recall %.1f%%\n", 100 * r.test.per_class[static_cast<std::size_t>(fire)].recall);
    for (const auto& s : r.stages) std::printf("stage %-9s %7.1f s  (peak RSS so far %.0f MB)\n", s.name.c_str(), s.seconds, s.peak_rss_mb);
    std::printf("peak RSS %.0f MB (budget %s), batch %d x %d accumulation\n", r.peak_rss_mb, o.budget.c_str(), r.plan.batch_size,
                r.plan.accumulation);
    if (!r.skipped.empty()) std::printf("%zu file(s) skipped (listed in splits.json)\n", r.skipped.size());
    std::printf("run folder: %s (model.pt, metrics.json, curves.svg, confusion.svg, report.html, splits.json)\n", t.out.string().c_str());
    return 0;
}

void add_train(CLI::App& app) {
    auto o = std::make_shared<TrainCliOptions>();
    auto* sub = app.add_subcommand("train", "Fine-tune the ImageNet MobileNetV2 on an image folder (ROOT/<class>/images)");
    sub->add_option("--data,-d", o->data,
                    "Image folder ROOT/<class>/images; repeat it to add roots (a class is the union of its folders in every root). "
                    "Default: the fire-smoke and hard-negatives assets");
    sub->add_option("--out,-o", o->out, "Run folder to write")->capture_default_str();
    sub->add_option("--backbone", o->backbone, "MobileNetV2 .tflite with ImageNet weights (default: assets/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite)");
    sub->add_option("--split", o->split, "train,val,test shares when the folder has no train/val/test sub-folders")->capture_default_str();
    sub->add_option("--seed", o->t.seed, "Seed of the split, shuffling and augmentation")->capture_default_str();
    sub->add_option("--image-size", o->t.image_size, "Input size in pixels (MobileNetV2 is fully convolutional)")->capture_default_str();
    sub->add_option("--head-epochs", o->t.head_epochs, "Epochs of the head on cached embeddings (frozen backbone)")->capture_default_str();
    sub->add_option("--epochs", o->t.finetune_epochs, "Fine-tuning epochs with augmentation (0: head only)")->capture_default_str();
    sub->add_option("--finetune-blocks", o->blocks, "Inverted-residual blocks to fine-tune, counted from the end, or 'all'")->capture_default_str();
    sub->add_option("--lr", o->t.finetune_lr, "Peak learning rate of fine-tuning (cosine schedule with warm-up)")->capture_default_str();
    sub->add_option("--head-lr", o->t.head_lr, "Learning rate of the head stage")->capture_default_str();
    sub->add_option("--weight-decay", o->t.weight_decay, "AdamW weight decay")->capture_default_str();
    sub->add_option("--label-smoothing", o->t.label_smoothing, "Label smoothing of the training loss")->capture_default_str();
    sub->add_option("--class-prior", o->t.class_prior,
                    "Class shares the decision assumes: balanced (every class equally likely; best for per-class recall) "
                    "or data (the training data's shares)")
        ->capture_default_str();
    sub->add_option("--patience", o->t.patience, "Early stopping: fine-tuning epochs without a better validation loss")->capture_default_str();
    sub->add_option("--batch-size", o->batch, "Images per batch, or 'auto' (from --memory-budget)")->capture_default_str();
    sub->add_option("--memory-budget", o->budget, "Peak memory the run may use (e.g. 2G, 800M)")->capture_default_str();
    sub->add_option("--threads", o->t.threads, "libtorch threads (0: all cores but one; the decode and engine workers take one per core)")
        ->capture_default_str();
    sub->add_option("--frozen", o->t.frozen,
                    "Where the frozen blocks run: engine (the runtime's XNNPACK kernels), libtorch, or auto (engine when built)")
        ->capture_default_str();
    sub->add_flag("--resume", o->t.resume, "Continue an interrupted run in --out from its checkpoint");
    sub->add_flag("--no-progress{false}", o->t.progress, "No progress bars");
    sub->callback([o]() { run_train(*o); });
}

}  // namespace

FIRESIGHT_COMMAND(train, 10, add_train);

}  // namespace firesight::cli
