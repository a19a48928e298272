// firesight eval: accuracy, balanced accuracy, per-class precision/recall/F1 and the confusion
// matrix of a model on an image folder, with the same pictures as a training run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/common/allocator.h"
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/data/dataset.h"
#include "firesight/common/error.h"
#include "firesight/eval/eval.h"
#include "firesight/eval/maps.h"
#include "firesight/common/fileio.h"
#include "firesight/common/progress.h"

namespace fs = std::filesystem;

namespace firesight::cli {

namespace {

struct EvalOptions {
    std::string model, split = "test", out, thresholds;
    std::vector<std::string> data;
    bool json = false, progress = true, degraded = true;
    double fire_threshold = -1;
};

fs::path run_folder_of(const fs::path& model) {
    std::error_code ec;
    return fs::is_directory(model, ec) ? model : model.parent_path();
}

std::string join_roots(const std::vector<fs::path>& roots) {
    std::string out;
    for (const auto& r : roots) out += (out.empty() ? "" : " + ") + r.string();
    return out;
}

struct EvalSet {
    std::vector<data::Sample> samples;
    std::vector<std::string> classes;
    std::vector<fs::path> roots;
    std::string source;  // where the list came from
    // Roots of the run with no image in the evaluated split (a small root, such as a feedback
    // folder with one or two photos of a class, trains on all of them): not in the per-source
    // table, so they are named with where their images went instead.
    nlohmann::json roots_not_in_split = nlohmann::json::array();
};

// The images to evaluate and where the list came from.
EvalSet choose_samples(const EvalOptions& o) {
    const fs::path splits_file = run_folder_of(o.model) / "splits.json";
    std::error_code ec;
    std::optional<data::DatasetSplits> run_splits;
    if (fs::exists(splits_file, ec)) run_splits = data::splits_from_json(read_file_text(splits_file), splits_file.string());
    EvalSet e;
    if (o.data.empty()) {
        if (!run_splits) throw Error("--data is needed: " + splits_file.string() + " does not exist");
        e.roots = run_splits->roots;
    } else {
        for (const auto& d : o.data) e.roots.emplace_back(d);
    }
    if (o.split != "all" && run_splits && run_splits->roots.size() == e.roots.size()) {
        // The run's own lists apply when every file of the split is in these folders.
        const auto& list = run_splits->named(o.split);
        bool all_there = !list.empty();
        for (const auto& s : list)
            if (!fs::exists(e.roots[static_cast<std::size_t>(s.root)] / s.path, ec)) {
                all_there = false;
                break;
            }
        if (all_there) {
            e.source = "the run's " + o.split + " split (" + splits_file.string() + ")";
            e.samples = list;
            const data::SourceIndex names(e.roots);
            for (std::size_t r = 0; r < e.roots.size(); ++r) {
                auto in = [&](const std::vector<data::Sample>& l) {
                    return std::count_if(l.begin(), l.end(), [&](const data::Sample& s) { return s.root == static_cast<int>(r); });
                };
                if (in(list) > 0) continue;
                data::Sample any;
                any.root = static_cast<int>(r);
                const std::string name = names.source(any);
                e.roots_not_in_split.push_back({{"source", name.substr(0, name.find('/'))}, {"root", e.roots[r].string()},
                                                {"train", in(run_splits->train)}, {"val", in(run_splits->val)}, {"test", in(run_splits->test)}});
            }
            e.classes = run_splits->classes;
            return e;
        }
    }
    data::ImageFolderDataset ds(e.roots);
    e.classes = ds.classes();
    if (o.split != "all" && ds.has_split_folders()) {
        e.source = "the " + o.split + "/ folder";
        e.samples = ds.split({}, 0).named(o.split);
        return e;
    }
    if (o.split != "all")
        std::fprintf(stderr, "note: %s is not the data this model was trained on and has no %s/ sub-folder: evaluating every image (--split all)\n",
                     join_roots(e.roots).c_str(), o.split.c_str());
    e.source = "every image in the folder(s)";
    e.samples = ds.all();
    return e;
}

struct Classified {
    std::vector<std::size_t> used;  // indices into the samples that could be read
    std::vector<std::vector<float>> probs;
    std::vector<data::SkippedFile> skipped;
};

// Probabilities of every readable sample; `look` changes the decoded photo first (the degraded check).
Classified classify_all(Classifier& clf, const EvalSet& e, const std::string& label, bool progress,
                        const std::function<cv::Mat(const cv::Mat&)>& look) {
    Classified out;
    const auto pre = clf.preprocessing();
    constexpr std::size_t kBatch = 16;
    auto decode = [&](const data::Sample& s) {
        const cv::Mat bgr = data::decode_image(e.roots[static_cast<std::size_t>(s.root)] / s.path);
        return data::preprocess(look ? look(bgr) : bgr, pre);
    };
    ProgressBar bar(label, e.samples.size(), progress);
    // Decoding of the next batch runs in the background while the model sees this one.
    auto launch = [&](std::size_t start) {
        std::vector<std::future<cv::Mat>> f;
        for (std::size_t i = start; i < std::min(e.samples.size(), start + kBatch); ++i)
            f.push_back(std::async(std::launch::async, decode, e.samples[i]));
        return f;
    };
    auto pending = launch(0);
    for (std::size_t start = 0; start < e.samples.size(); start += kBatch) {
        std::vector<cv::Mat> batch;
        for (std::size_t k = 0; k < pending.size(); ++k) {
            try {
                batch.push_back(pending[k].get());
                out.used.push_back(start + k);
            } catch (const std::exception& ex) {
                out.skipped.push_back({e.samples[start + k].path, ex.what()});
            }
        }
        pending = launch(start + kBatch);
        if (!batch.empty())
            for (auto& p : clf.probabilities(batch)) out.probs.push_back(std::move(p));
        bar.update(std::min(e.samples.size(), start + kBatch));
    }
    bar.finish();
    return out;
}

// Metrics over the classified samples, and the same figures per source (data root, SOURCES.tsv).
struct Evaluation {
    eval::Metrics all;
    std::vector<fs::path> files;           // of each entry below, for the maps in the report
    std::vector<int> truth, predicted;
    std::map<std::string, eval::Metrics> by_source;
    std::vector<std::pair<std::string, std::string>> errors;  // (file, "true -> predicted")
};

Evaluation evaluate(const EvalSet& e, const Classified& c, const std::vector<int>& to_model, const std::vector<std::string>& model_classes,
                    const std::vector<double>& thresholds) {
    const data::SourceIndex sources(e.roots);
    std::map<std::string, std::pair<std::vector<int>, std::vector<int>>> grouped;
    Evaluation ev;
    auto& truth = ev.truth;
    auto& predicted = ev.predicted;
    for (std::size_t k = 0; k < c.used.size(); ++k) {
        const auto& s = e.samples[c.used[k]];
        const int t = to_model[static_cast<std::size_t>(s.label)], p = eval::decide(c.probs[k], thresholds);
        truth.push_back(t);
        predicted.push_back(p);
        ev.files.push_back(e.roots[static_cast<std::size_t>(s.root)] / s.path);
        // Each source, and its data root as a whole when the root has several sources.
        const std::string src = sources.source(s), root = src.substr(0, src.find('/'));
        for (const auto& key : root == src ? std::vector<std::string>{src} : std::vector<std::string>{root, src}) {
            grouped[key].first.push_back(t);
            grouped[key].second.push_back(p);
        }
        if (t != p) ev.errors.push_back({(e.roots[static_cast<std::size_t>(s.root)] / s.path).string(), model_classes[t] + " -> " + model_classes[p]});
    }
    ev.all = eval::compute_metrics(model_classes, truth, predicted);
    for (const auto& [name, g] : grouped) ev.by_source[name] = eval::compute_metrics(model_classes, g.first, g.second);
    return ev;
}

std::string source_table(const std::map<std::string, eval::Metrics>& by_source) {
    std::string out = "per source:\n";
    std::size_t w = 6;
    for (const auto& [name, m] : by_source) w = std::max(w, name.size());
    char buf[512];
    std::snprintf(buf, sizeof buf, "  %-*s %7s %9s %9s %14s %14s\n", static_cast<int>(w), "source", "images", "accuracy", "balanced",
                  "alarm recall", "false alarms");
    out += buf;
    for (const auto& [name, m] : by_source) {
        auto pct = [](int num, int den) {
            if (!den) return std::string("-");
            char b[32];
            std::snprintf(b, sizeof b, "%.1f%% (%d)", 100.0 * num / den, num);
            return b + std::string();
        };
        std::snprintf(buf, sizeof buf, "  %-*s %7d %8.1f%% %8.1f%% %14s %14s\n", static_cast<int>(w), name.c_str(), m.total, 100 * m.accuracy,
                      100 * m.balanced_accuracy, pct(m.alarm.caught, m.alarm.alarm_images).c_str(),
                      pct(m.alarm.false_alarms, m.alarm.other_images).c_str());
        out += buf;
    }
    return out;
}

std::vector<int> map_classes(const EvalSet& e, const std::vector<std::string>& model_classes) {
    // Folder classes map onto the model's classes by name.
    std::vector<int> to_model(e.classes.size(), -1);
    for (std::size_t i = 0; i < e.classes.size(); ++i)
        for (std::size_t j = 0; j < model_classes.size(); ++j)
            if (e.classes[i] == model_classes[j]) to_model[i] = static_cast<int>(j);
    const auto counts = data::class_counts(e.samples, e.classes.size());
    for (std::size_t i = 0; i < e.classes.size(); ++i)
        if (to_model[i] < 0 && counts[i] > 0)
            throw Error(join_roots(e.roots) + ": class folder '" + e.classes[i] + "' is not a class of the model");
    return to_model;
}

std::vector<double> thresholds_of(const EvalOptions& o, const std::vector<std::string>& model_classes) {
    auto t = eval::parse_thresholds(o.thresholds, model_classes);
    if (o.fire_threshold >= 0) {  // the older spelling of --threshold fire=T
        const int fire = eval::fire_class_index(model_classes);
        if (fire < 0) throw Error("--fire-threshold: the model has no class named 'fire'");
        if (o.fire_threshold > 1) throw Error("--fire-threshold must be within 0..1");
        t[static_cast<std::size_t>(fire)] = o.fire_threshold;
    }
    return t;
}

nlohmann::json source_json(const std::map<std::string, eval::Metrics>& by_source) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, m] : by_source) j[name] = eval::to_json(m);
    return j;
}

int run_eval(const EvalOptions& o) {
    keep_freed_memory();  // batches of large tensors: see allocator.h
    if (o.split != "all" && o.split != "train" && o.split != "val" && o.split != "test")
        throw Error("--split '" + o.split + "': expected test, val, train or all");
    auto clf = open_classifier(o.model);
    const auto& model_classes = clf->class_names();
    const auto thresholds = thresholds_of(o, model_classes);
    const EvalSet e = choose_samples(o);
    const auto to_model = map_classes(e, model_classes);
    if (e.samples.empty()) throw Error(join_roots(e.roots) + ": no images to evaluate");

    const auto plain = classify_all(*clf, e, "eval", o.progress, {});
    for (const auto& s : plain.skipped) std::fprintf(stderr, "warning: skipped %s: %s\n", s.path.string().c_str(), s.reason.c_str());
    const auto ev = evaluate(e, plain, to_model, model_classes, thresholds);
    std::optional<Evaluation> degraded;
    if (o.degraded) {
        const auto d = classify_all(*clf, e, "eval (as thumbnails)", o.progress, [](const cv::Mat& bgr) { return data::degrade_like_thumbnail(bgr); });
        degraded = evaluate(e, d, to_model, model_classes, thresholds);
    }

    const std::string decision = eval::describe_thresholds(thresholds, model_classes);
    auto j = eval::to_json(ev.all);
    j["split"] = o.split;
    j["images_from"] = e.source;
    j["data"] = join_roots(e.roots);
    j["decision"] = decision;
    j["per_source"] = source_json(ev.by_source);
    j["roots_not_in_split"] = e.roots_not_in_split;
    if (degraded) {
        j["degraded"] = eval::to_json(degraded->all);
        j["degraded"]["how"] = "longer side shrunk to 275 px, JPEG quality 70 (the look of the web thumbnails)";
    }
    nlohmann::json sk = nlohmann::json::array();
    for (const auto& s : plain.skipped) sk.push_back({{"file", s.path.string()}, {"reason", s.reason}});
    j["skipped"] = sk;
    nlohmann::json errs = nlohmann::json::array();
    for (const auto& [file, what] : ev.errors) errs.push_back({{"file", file}, {"error", what}});
    j["errors"] = errs;
    // Every image's probabilities, so thresholds and operating points can be studied afterwards.
    nlohmann::json preds = nlohmann::json::array();
    for (std::size_t k = 0; k < plain.used.size(); ++k)
        preds.push_back({{"file", ev.files[k].string()}, {"truth", model_classes[static_cast<std::size_t>(ev.truth[k])]}, {"probabilities", plain.probs[k]}});
    j["predictions"] = preds;
    if (o.json) {
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("%s: %s\n", join_roots(e.roots).c_str(), e.source.c_str());
        std::printf("%s", eval::to_text(ev.all).c_str());
        std::printf("decision: %s\n", decision.c_str());
        std::printf("%s", source_table(ev.by_source).c_str());
        for (const auto& r : e.roots_not_in_split)
            std::printf("  %s: no image in the %s split (train %d, val %d, test %d)\n", r["source"].get<std::string>().c_str(), o.split.c_str(),
                        r["train"].get<int>(), r["val"].get<int>(), r["test"].get<int>());
        if (degraded)
            std::printf("as thumbnails (275 px, JPEG 70): accuracy %.1f%%, balanced accuracy %.1f%% (%+.1f points)\n", 100 * degraded->all.accuracy,
                        100 * degraded->all.balanced_accuracy, 100 * (degraded->all.balanced_accuracy - ev.all.balanced_accuracy));
    }
    if (!o.out.empty()) {
        fs::create_directories(o.out);
        const auto conf = eval::confusion_svg(ev.all, "Confusion matrix (" + o.split + ")");
        write_file_atomic(fs::path(o.out) / "eval.json", j.dump(1));
        write_file_atomic(fs::path(o.out) / "confusion.svg", conf);
        std::vector<std::string> lines = {"model: " + o.model, "data: " + join_roots(e.roots) + " (" + e.source + ")", "decision: " + decision,
                                          std::to_string(plain.skipped.size()) + " file(s) skipped"};
        std::string table = source_table(ev.by_source);
        for (std::size_t pos = 0, nl; (nl = table.find('\n', pos)) != std::string::npos; pos = nl + 1) lines.push_back(table.substr(pos, nl - pos));
        if (degraded) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "as thumbnails (275 px, JPEG 70): accuracy %.1f%%, balanced accuracy %.1f%%", 100 * degraded->all.accuracy,
                          100 * degraded->all.balanced_accuracy);
            lines.push_back(buf);
        }
        const auto maps = eval::activation_maps_html(*clf, ev.files, ev.truth, ev.predicted);
        write_file_atomic(fs::path(o.out) / "report.html", eval::report_html("firesight evaluation", lines, ev.all, conf, "", maps));
    }
    return 0;
}

void add_eval(CLI::App& app) {
    auto o = std::make_shared<EvalOptions>();
    auto* sub = app.add_subcommand("eval", "Accuracy, balanced accuracy, per-class precision/recall/F1 and confusion matrix on an image folder");
    sub->add_option("--model,-m", o->model, "Run folder or model.pt (or a .tflite whose labels match the folder)")->required();
    sub->add_option("--data,-d", o->data, "Image folder; repeat it for several roots (default: the folders the run was trained on)");
    sub->add_option("--split", o->split,
                    "test, val or train: the run's held-out lists (splits.json) when --data is its folder, else the "
                    "folder's train/val/test sub-folders; all: every image")
        ->capture_default_str();
    sub->add_flag("--json", o->json, "Print JSON");
    sub->add_option("--out,-o", o->out, "Folder for eval.json, confusion.svg and report.html");
    sub->add_option("--threshold", o->thresholds,
                    "Per-class thresholds, e.g. fire=0.3,smoke=0.4: a class is called when its probability reaches its threshold "
                    "(lower catches more, with more false alarms); default: the most likely class");
    sub->add_option("--fire-threshold", o->fire_threshold, "Same as --threshold fire=T");
    sub->add_flag("--no-degraded{false}", o->degraded, "Skip the second pass on copies degraded to web-thumbnail resolution and compression");
    sub->add_flag("--no-progress{false}", o->progress, "No progress bar");
    sub->callback([o]() { run_eval(*o); });
}

}  // namespace

FIRESIGHT_COMMAND(eval, 20, add_eval);

}  // namespace firesight::cli
