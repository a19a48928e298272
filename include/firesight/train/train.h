// Transfer learning on the device: a frozen-backbone head trained on cached embeddings, then
// fine-tuning of the last blocks with augmentation, under a memory budget, with checkpoints.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "firesight/data/dataset.h"
#include "firesight/eval/eval.h"

namespace firesight::train {

// "2G", "512M", "64k", "1500000000" -> bytes (powers of 1024). Throws firesight::Error.
std::size_t parse_memory_size(const std::string& text);
// This process's peak and current resident memory (VmHWM / VmRSS from /proc/self/status), 0 if unknown.
std::size_t peak_rss_bytes();
std::size_t current_rss_bytes();

// A real asset by its path under the assets folder: $FIRESIGHT_ASSETS, else ../shared/assets, else
// assets/ (relative to the working directory, where scripts/assets.sh puts them). Returns the first
// candidate that exists, else the ../shared/assets one (so the error names a sensible place).
std::filesystem::path find_asset(const std::string& relative);

// Batch size and gradient accumulation chosen so the estimated peak stays under the budget.
struct BatchPlan {
    int batch_size = 1;
    int accumulation = 1;                 // optimizer step every `accumulation` batches
    std::size_t per_image_bytes = 0;      // activation estimate for one training image
    std::size_t fixed_bytes = 0;          // process, weights, optimizer state, image cache
    std::size_t estimated_peak_bytes = 0;
};
// Activation memory of one training image when blocks features[finetune_from, 19) are trained
// and the frozen prefix runs without gradients: values kept for the backward pass (twice, for the
// gradients) plus the largest transient of the prefix. An estimate from the architecture's shapes.
std::size_t activation_bytes_per_image(int image_size, int finetune_from);
// requested_batch 0 = auto: the largest batch (up to target_batch) that fits, with accumulation up
// to target_batch images per step. Throws firesight::Error when not even one image fits.
BatchPlan plan_batches(std::size_t budget, std::size_t fixed_bytes, int image_size, int finetune_from,
                       int requested_batch, int target_batch = 32);

struct TrainOptions {
    std::vector<std::filesystem::path> data;  // image folders (one or more roots, see ImageFolderDataset)
    std::filesystem::path out;       // run folder
    std::filesystem::path backbone;  // .tflite with ImageNet MobileNetV2 weights
    data::SplitFractions split{0.7, 0.15, 0.15};
    unsigned seed = 42;
    int image_size = 224;
    int head_epochs = 30;
    double head_lr = 3e-3;
    int finetune_epochs = 4;  // 0: head only
    int finetune_blocks = 6;  // last N inverted-residual blocks (+ the final 1x1 conv); -1: all
    std::string class_prior = "balanced";  // the class shares the decision assumes: "balanced" or "data" (see trainer.cpp)
    double finetune_lr = 1e-4;
    double weight_decay = 1e-4;
    double label_smoothing = 0.1;
    int patience = 3;  // early stopping: epochs without a better validation loss
    int batch_size = 0;  // 0: auto from the memory budget
    std::size_t memory_budget = std::size_t{2} << 30;
    bool resume = false;
    bool progress = true;
    int threads = 0;  // libtorch threads; 0: all cores but one (at least 1)
    int decode_threads = 0;  // decode (and frozen-prefix engine) workers; 0: all cores
    // Where the frozen blocks run: "engine" (the runtime's XNNPACK backend: the cache stage's
    // embeddings and every fine-tuning step's prefix), "libtorch", or "auto" (the engine when
    // this build has XNNPACK).
    std::string frozen = "auto";
};

struct StageTiming {
    std::string name;
    double seconds = 0;
    std::size_t images = 0;  // images processed (all epochs)
    double peak_rss_mb = 0;  // the process's peak resident memory so far, at the end of the stage
};

struct TrainResult {
    eval::Metrics test;  // on the test split with the best checkpoint (argmax)
    std::vector<eval::EpochRecord> history;
    std::vector<StageTiming> stages;
    std::vector<data::SkippedFile> skipped;
    BatchPlan plan;
    double peak_rss_mb = 0;
    std::filesystem::path model_path;
};

// Runs both stages and writes model.pt, checkpoint.pt, splits.json, metrics.json, curves.svg,
// confusion.svg and report.html into opt.out. Throws firesight::Error.
TrainResult train_classifier(const TrainOptions& opt);

// First feature block that is trained for `finetune_blocks` (see TrainOptions); 19 = none.
int finetune_start_block(int finetune_blocks, int finetune_epochs);

}  // namespace firesight::train
