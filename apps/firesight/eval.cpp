// firesight eval: accuracy, balanced accuracy, per-class precision/recall/F1 and the confusion
// matrix of a model on an image folder, with the same pictures as a training run.
#include <cstdio>
#include <future>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/classifier.h"
#include "firesight/dataset.h"
#include "firesight/error.h"
#include "firesight/eval.h"
#include "firesight/eval_maps.h"
#include "firesight/fileio.h"
#include "firesight/progress.h"

namespace fs = std::filesystem;

namespace firesight::cli {

namespace {

struct EvalOptions {
    std::string model, data, split = "test", out;
    bool json = false, progress = true;
    double fire_threshold = -1;
};

fs::path run_folder_of(const fs::path& model) {
    std::error_code ec;
    return fs::is_directory(model, ec) ? model : model.parent_path();
}

// The images to evaluate and where the list came from.
std::pair<std::vector<data::Sample>, std::vector<std::string>> choose_samples(const EvalOptions& o, fs::path& root,
                                                                               std::string& source) {
    const fs::path splits_file = run_folder_of(o.model) / "splits.json";
    std::error_code ec;
    std::optional<data::DatasetSplits> run_splits;
    if (fs::exists(splits_file, ec)) run_splits = data::splits_from_json(read_file_text(splits_file), splits_file.string());
    if (o.data.empty()) {
        if (!run_splits) throw Error("--data is needed: " + splits_file.string() + " does not exist");
        root = run_splits->root;
    } else {
        root = o.data;
    }
    if (o.split != "all" && run_splits) {
        // The run's own lists apply when every file of the split is in this folder.
        const auto& list = run_splits->named(o.split);
        bool all_there = !list.empty();
        for (const auto& s : list)
            if (!fs::exists(root / s.path, ec)) {
                all_there = false;
                break;
            }
        if (all_there) {
            source = "the run's " + o.split + " split (" + splits_file.string() + ")";
            return {list, run_splits->classes};
        }
    }
    data::ImageFolderDataset ds(root);
    if (o.split != "all" && ds.has_split_folders()) {
        source = "the " + o.split + "/ folder";
        const auto s = ds.split({}, 0);
        return {s.named(o.split), ds.classes()};
    }
    if (o.split != "all")
        std::fprintf(stderr, "note: %s is not the folder this model was trained on and has no %s/ sub-folder: evaluating every image (--split all)\n",
                     root.string().c_str(), o.split.c_str());
    source = "every image in the folder";
    return {ds.all(), ds.classes()};
}

int run_eval(const EvalOptions& o) {
    if (o.split != "all" && o.split != "train" && o.split != "val" && o.split != "test")
        throw Error("--split '" + o.split + "': expected test, val, train or all");
    auto clf = open_classifier(o.model);
    const auto& model_classes = clf->class_names();
    fs::path root;
    std::string source;
    auto [samples, data_classes] = choose_samples(o, root, source);
    // Folder classes map onto the model's classes by name.
    std::vector<int> to_model(data_classes.size(), -1);
    for (std::size_t i = 0; i < data_classes.size(); ++i)
        for (std::size_t j = 0; j < model_classes.size(); ++j)
            if (data_classes[i] == model_classes[j]) to_model[i] = static_cast<int>(j);
    for (std::size_t i = 0; i < data_classes.size(); ++i)
        if (to_model[i] < 0 && data::class_counts(samples, data_classes.size())[i] > 0)
            throw Error(root.string() + ": class folder '" + data_classes[i] + "' is not a class of the model");
    if (samples.empty()) throw Error(root.string() + ": no images to evaluate");

    const int fire = eval::fire_class_index(model_classes);
    if (o.fire_threshold >= 0 && fire < 0) throw Error("--fire-threshold: the model has no class named 'fire'");
    if (o.fire_threshold > 1) throw Error("--fire-threshold must be within 0..1");
    std::vector<int> truth, predicted;
    std::vector<fs::path> files;  // of each truth/predicted entry, for the maps in the report
    std::vector<data::SkippedFile> skipped;
    const auto pre = clf->preprocessing();
    constexpr std::size_t kBatch = 16;
    auto decode = [&](const data::Sample& s) { return data::preprocess(data::decode_image(root / s.path), pre); };
    ProgressBar bar("eval", samples.size(), o.progress);
    // Decoding of the next batch runs in the background while the model sees this one.
    auto launch = [&](std::size_t start) {
        std::vector<std::future<cv::Mat>> f;
        for (std::size_t i = start; i < std::min(samples.size(), start + kBatch); ++i)
            f.push_back(std::async(std::launch::async, decode, samples[i]));
        return f;
    };
    auto pending = launch(0);
    for (std::size_t start = 0; start < samples.size(); start += kBatch) {
        std::vector<cv::Mat> batch;
        std::vector<int> labels;
        for (std::size_t k = 0; k < pending.size(); ++k) {
            const auto& s = samples[start + k];
            try {
                batch.push_back(pending[k].get());
                labels.push_back(to_model[static_cast<std::size_t>(s.label)]);
                files.push_back(root / s.path);
            } catch (const std::exception& e) {
                skipped.push_back({s.path, e.what()});
            }
        }
        pending = launch(start + kBatch);
        const auto probs = clf->probabilities(batch);
        for (std::size_t k = 0; k < probs.size(); ++k) {
            truth.push_back(labels[k]);
            predicted.push_back(eval::decide(probs[k], fire, o.fire_threshold));
        }
        bar.update(std::min(samples.size(), start + kBatch));
    }
    bar.finish();
    for (const auto& s : skipped) std::fprintf(stderr, "warning: skipped %s: %s\n", s.path.string().c_str(), s.reason.c_str());
    const auto m = eval::compute_metrics(model_classes, truth, predicted);

    auto j = eval::to_json(m);
    j["split"] = o.split;
    j["images_from"] = source;
    j["data"] = root.string();
    j["decision"] = o.fire_threshold >= 0 ? "fire if p(fire) >= " + std::to_string(o.fire_threshold) + ", else argmax" : std::string("argmax");
    nlohmann::json sk = nlohmann::json::array();
    for (const auto& s : skipped) sk.push_back({{"file", s.path.string()}, {"reason", s.reason}});
    j["skipped"] = sk;
    if (o.json) {
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("%s: %s\n", root.string().c_str(), source.c_str());
        std::printf("%s", eval::to_text(m).c_str());
        if (fire >= 0) std::printf("fire recall %.1f%% (decision: %s)\n", 100 * m.per_class[static_cast<std::size_t>(fire)].recall,
                                   j["decision"].get<std::string>().c_str());
    }
    if (!o.out.empty()) {
        fs::create_directories(o.out);
        const auto conf = eval::confusion_svg(m, "Confusion matrix (" + o.split + ")");
        write_file_atomic(fs::path(o.out) / "eval.json", j.dump(1));
        write_file_atomic(fs::path(o.out) / "confusion.svg", conf);
        std::vector<std::string> lines = {"model: " + o.model, "data: " + root.string() + " (" + source + ")",
                                          "decision: " + j["decision"].get<std::string>(),
                                          std::to_string(skipped.size()) + " file(s) skipped"};
        const auto maps = eval::activation_maps_html(*clf, files, truth, predicted);
        write_file_atomic(fs::path(o.out) / "report.html", eval::report_html("firesight evaluation", lines, m, conf, "", maps));
    }
    return 0;
}

void add_eval(CLI::App& app) {
    auto o = std::make_shared<EvalOptions>();
    auto* sub = app.add_subcommand("eval", "Accuracy, balanced accuracy, per-class precision/recall/F1 and confusion matrix on an image folder");
    sub->add_option("--model,-m", o->model, "Run folder or model.pt (or a .tflite whose labels match the folder)")->required();
    sub->add_option("--data,-d", o->data, "Image folder (default: the folder the run was trained on)");
    sub->add_option("--split", o->split,
                    "test, val or train: the run's held-out lists (splits.json) when --data is its folder, else the "
                    "folder's train/val/test sub-folders; all: every image")
        ->capture_default_str();
    sub->add_flag("--json", o->json, "Print JSON");
    sub->add_option("--out,-o", o->out, "Folder for eval.json, confusion.svg and report.html");
    sub->add_option("--fire-threshold", o->fire_threshold,
                    "Call an image fire when p(fire) >= T (lower T catches more fires, with more false alarms); default: the most likely class");
    sub->add_flag("--no-progress{false}", o->progress, "No progress bar");
    sub->callback([o]() { run_eval(*o); });
}

}  // namespace

FIRESIGHT_COMMAND(eval, 20, add_eval);

}  // namespace firesight::cli
