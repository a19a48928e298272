// train_bench: the training benchmark (not a test). Trains on an image folder (default: the
// fire-cair photos) with the default settings of `firesight train`, and prints wall time and
// images/second per stage, test accuracy, balanced accuracy, fire recall and peak RSS.
//   train_bench [DATA...] [--out DIR] [--image-size N] [--epochs N] [--head-epochs N] [--split a,b,c] [--seed S]
//               [--frozen auto|engine|libtorch] [--threads N] [--decode-threads N] [--memory-budget 2G]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "firesight/common/allocator.h"
#include "firesight/common/blas_info.h"
#include "firesight/common/error.h"
#include "firesight/common/openmp_env.h"
#include "firesight/train/train.h"

using namespace firesight;

int main(int argc, char** argv) {
    openmp_wait_passively(argv);  // as `firesight train` does (common/openmp_env.h)
    train::TrainOptions o;
    o.data = {train::find_asset("fire-cair")};
    bool data_given = false;
    o.backbone = train::find_asset("mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite");
    o.out = "runs/train_bench";
    o.progress = false;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto next = [&]() -> std::string {
                if (i + 1 >= argc) throw Error(a + " needs a value");
                return argv[++i];
            };
            if (a == "--out") o.out = next();
            else if (a == "--image-size") o.image_size = std::stoi(next());
            else if (a == "--epochs") o.finetune_epochs = std::stoi(next());
            else if (a == "--head-epochs") o.head_epochs = std::stoi(next());
            else if (a == "--split") o.split = data::parse_split_fractions(next());
            else if (a == "--seed") o.seed = static_cast<unsigned>(std::stoul(next()));
            else if (a == "--backbone") o.backbone = next();
            else if (a == "--progress") o.progress = true;
            else if (a == "--frozen") o.frozen = next();
            else if (a == "--threads") o.threads = std::stoi(next());
            else if (a == "--decode-threads") o.decode_threads = std::stoi(next());
            else if (a == "--memory-budget") o.memory_budget = train::parse_memory_size(next());
            else if (!a.empty() && a[0] != '-') {  // one or more data roots
                if (!data_given) o.data.clear();
                data_given = true;
                o.data.emplace_back(a);
            }
            else throw Error("unknown argument " + a);
        }
        report_blas(stdout);
        keep_freed_memory();
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = train::train_classifier(o);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::string roots;
        for (const auto& d : o.data) roots += (roots.empty() ? "" : " + ") + d.string();
        std::printf("data %s, image size %d, finetune epochs <= %d, head epochs %d, frozen blocks on %s\n", roots.c_str(), o.image_size,
                    o.finetune_epochs, o.head_epochs, o.frozen.c_str());
        for (const auto& s : r.stages) {
            if (s.images)
                std::printf("stage %-9s %7.1f s  %7.1f images/s  peak RSS so far %5.0f MB\n", s.name.c_str(), s.seconds,
                            s.images / std::max(1e-9, s.seconds), s.peak_rss_mb);
            else
                std::printf("stage %-9s %7.1f s                     peak RSS so far %5.0f MB\n", s.name.c_str(), s.seconds, s.peak_rss_mb);
        }
        std::printf("wall %.1f s\n", wall);
        const int fire = eval::fire_class_index(r.test.classes);
        std::printf("test: %d images, accuracy %.1f%%, balanced accuracy %.1f%%", r.test.total, 100 * r.test.accuracy,
                    100 * r.test.balanced_accuracy);
        if (fire >= 0) {
            const auto& f = r.test.per_class[static_cast<std::size_t>(fire)];
            std::printf(", fire recall %.1f%% (%d fires), fire precision %.1f%%", 100 * f.recall, f.support, 100 * f.precision);
        }
        std::printf("\npeak RSS %.0f MB, batch %d x %d accumulation\n", r.peak_rss_mb, r.plan.batch_size, r.plan.accumulation);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "train_bench: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
