// firesight predict: class probabilities for images, from any model kind open_classifier knows.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <set>

#include <opencv2/imgcodecs.hpp>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/common/error.h"
#include "firesight/eval/eval.h"
#include "firesight/common/fileio.h"
#include "firesight/data/heatmap.h"

namespace firesight::cli {

namespace {

struct PredictOptions {
    std::string model, labels, thresholds;
    int top = 5;
    bool json = false;
    std::string cam_dir;
    std::vector<std::string> images;
};

// Where an image's heat map goes: DIR/<input name>.jpg, with -2, -3... when two inputs share a name.
std::filesystem::path cam_path(const std::string& dir, const std::string& image, std::set<std::string>& used) {
    const std::string stem = std::filesystem::path(image).stem().string();
    std::string name = stem + ".jpg";
    for (int n = 2; !used.insert(name).second; ++n) name = stem + "-" + std::to_string(n) + ".jpg";
    return std::filesystem::path(dir) / name;
}

// The photo with the top class's activation map over it and the top classes written on it.
void write_cam(const std::filesystem::path& out, const cv::Mat& bgr, const Prediction& p, const std::vector<int>& order, int k,
               const Classifier& clf) {
    const auto top = static_cast<std::size_t>(order.at(0));
    cv::Mat img = data::overlay_activation_map(bgr, p.maps.at(top), clf.preprocessing());
    std::vector<std::string> lines{"map: " + clf.class_names()[top]};
    for (int i = 0; i < std::min(k, 3); ++i) {
        const auto c = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
        char buf[32];
        std::snprintf(buf, sizeof buf, " %.1f%%", 100.0 * p.probabilities[c]);
        lines.push_back(clf.class_names()[c] + buf);
    }
    data::draw_text_lines(img, lines);
    std::vector<unsigned char> jpeg;
    if (!cv::imencode(".jpg", img, jpeg, {cv::IMWRITE_JPEG_QUALITY, 88})) throw Error(out.string() + ": cannot encode the JPEG");
    write_file_atomic(out, std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
}

int run_predict(const PredictOptions& o) {
    auto clf = open_classifier(o.model, o.labels);
    const auto& names = clf->class_names();
    const int k = std::clamp(o.top, 1, static_cast<int>(names.size()));
    const auto thresholds = eval::parse_thresholds(o.thresholds, names);
    // A fire / smoke model gets a decision per image (alarm or not); an ImageNet model does not.
    const bool alarm_model = std::any_of(names.begin(), names.end(), eval::is_alarm_class);
    nlohmann::json results = nlohmann::json::array();
    int failures = 0;
    std::set<std::string> used_names;
    if (!o.cam_dir.empty()) std::filesystem::create_directories(o.cam_dir);
    for (const auto& path : o.images) {
        cv::Mat bgr;
        Prediction pred;
        try {
            bgr = data::decode_image(path);
            if (o.cam_dir.empty()) pred.probabilities = clf->classify(bgr);
        } catch (const Error& e) {
            // One bad image must not stop the others: report it and go on.
            std::fprintf(stderr, "firesight: error: %s\n", e.what());
            ++failures;
            continue;
        }
        // Outside the try: a model without maps would fail every image the same way, so it stops here.
        if (!o.cam_dir.empty()) pred = clf->classify_with_maps(bgr);
        const auto& probs = pred.probabilities;
        std::vector<int> order(probs.size());
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int a, int b) { return probs[static_cast<std::size_t>(a)] > probs[static_cast<std::size_t>(b)]; });
        std::string cam_file;
        if (!o.cam_dir.empty()) {
            const auto out = cam_path(o.cam_dir, path, used_names);
            write_cam(out, bgr, pred, order, k, *clf);
            cam_file = out.string();
        }
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
            if (!cam_file.empty()) r["cam"] = cam_file;
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
    sub->add_option("--model,-m", opt->model, "Model: .tflite, run folder, model.pt or engine .fse")->required();
    sub->add_option("--labels", opt->labels, "Labels file (one per line) for a .tflite model");
    sub->add_option("--top,-k", opt->top, "How many classes to print per image")->check(CLI::PositiveNumber);
    sub->add_flag("--json", opt->json, "Print JSON instead of one line per image");
    sub->add_option("--threshold", opt->thresholds,
                    "Per-class thresholds for the alarm decision, e.g. fire=0.3,smoke=0.4 (default: the most likely class)");
    sub->add_option("--cam", opt->cam_dir,
                    "Folder for each photo with the top class's activation map over it (DIR/<image name>.jpg): where the model saw that class");
    sub->add_option("images", opt->images, "Image files (JPEG, PNG, BMP)")->required();
    sub->callback([opt]() {
        const int rc = run_predict(*opt);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace

FIRESIGHT_COMMAND(predict, 30, add_predict);

}  // namespace firesight::cli
