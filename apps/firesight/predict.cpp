// firesight predict: class probabilities for images, from any model kind open_classifier knows.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/classifier.h"
#include "firesight/error.h"
#include "firesight/eval.h"

namespace firesight::cli {

namespace {

struct PredictOptions {
    std::string model, labels, thresholds;
    int top = 5;
    bool json = false;
    std::vector<std::string> images;
};

int run_predict(const PredictOptions& o) {
    auto clf = open_classifier(o.model, o.labels);
    const auto& names = clf->class_names();
    const int k = std::clamp(o.top, 1, static_cast<int>(names.size()));
    const auto thresholds = eval::parse_thresholds(o.thresholds, names);
    // A fire / smoke model gets a decision per image (alarm or not); an ImageNet model does not.
    const bool alarm_model = std::any_of(names.begin(), names.end(), eval::is_alarm_class);
    nlohmann::json results = nlohmann::json::array();
    int failures = 0;
    for (const auto& path : o.images) {
        std::vector<float> probs;
        try {
            probs = clf->classify(data::decode_image(path));
        } catch (const Error& e) {
            // One bad image must not stop the others: report it and go on.
            std::fprintf(stderr, "firesight: error: %s\n", e.what());
            ++failures;
            continue;
        }
        std::vector<int> order(probs.size());
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int a, int b) { return probs[static_cast<std::size_t>(a)] > probs[static_cast<std::size_t>(b)]; });
        if (o.json) {
            nlohmann::json top = nlohmann::json::array();
            for (int i = 0; i < k; ++i) {
                const auto c = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
                top.push_back({{"index", c}, {"label", names[c]}, {"prob", probs[c]}});
            }
            nlohmann::json r = {{"image", path}, {"top", top}};
            if (alarm_model) {
                const auto& decided = names[static_cast<std::size_t>(eval::decide(probs, thresholds))];
                r["decision"] = decided;
                r["alarm"] = eval::is_alarm_class(decided);
            }
            results.push_back(std::move(r));
        } else {
            std::string line = std::filesystem::path(path).filename().string();
            for (int i = 0; i < k; ++i) {
                const auto c = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
                char buf[64];
                std::snprintf(buf, sizeof buf, " %.1f%%", 100.0 * probs[c]);
                line += "  " + names[c] + buf;
            }
            if (alarm_model) {
                const auto& decided = names[static_cast<std::size_t>(eval::decide(probs, thresholds))];
                if (eval::is_alarm_class(decided)) line += "  -> ALARM (" + decided + ")";
            }
            std::printf("%s\n", line.c_str());
        }
    }
    if (o.json) std::printf("%s\n", results.dump(2).c_str());
    return failures ? 1 : 0;
}

void add_predict(CLI::App& app) {
    auto opt = std::make_shared<PredictOptions>();
    auto* sub = app.add_subcommand("predict", "Print class probabilities for images");
    sub->add_option("--model,-m", opt->model, "Model: .tflite, run folder or model.pt")->required();
    sub->add_option("--labels", opt->labels, "Labels file (one per line) for a .tflite model");
    sub->add_option("--top,-k", opt->top, "How many classes to print per image")->check(CLI::PositiveNumber);
    sub->add_flag("--json", opt->json, "Print JSON instead of one line per image");
    sub->add_option("--threshold", opt->thresholds,
                    "Per-class thresholds for the alarm decision, e.g. fire=0.3,smoke=0.4 (default: the most likely class)");
    sub->add_option("images", opt->images, "Image files (JPEG, PNG, BMP)")->required();
    sub->callback([opt]() {
        const int rc = run_predict(*opt);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace

FIRESIGHT_COMMAND(predict, 30, add_predict);

}  // namespace firesight::cli
