// The "where the model looked" section of report.html (see firesight/eval/maps.h).
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "firesight/eval/eval.h"
#include "firesight/eval/maps.h"
#include "firesight/data/heatmap.h"

namespace firesight::eval {

std::string base64(const std::vector<unsigned char>& bytes) {
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        std::uint32_t v = static_cast<std::uint32_t>(bytes[i]) << 16;
        if (n > 1) v |= static_cast<std::uint32_t>(bytes[i + 1]) << 8;
        if (n > 2) v |= bytes[i + 2];
        for (std::size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63u] : '=';
    }
    return out;
}

namespace {

// The model's square view of the photo with the map over it, as an <img> with a JPEG data URI.
std::string thumbnail(const cv::Mat& bgr, const cv::Mat& map, const data::Preprocess& p, int side, const std::string& alt) {
    const cv::Rect view = data::model_view(bgr.size(), p);
    cv::Mat small;
    cv::resize(data::overlay_activation_map(bgr, map, p)(view), small, cv::Size(side, side), 0, 0, cv::INTER_AREA);
    std::vector<unsigned char> jpeg;
    cv::imencode(".jpg", small, jpeg, {cv::IMWRITE_JPEG_QUALITY, 80});
    return "<img width=\"" + std::to_string(side) + "\" height=\"" + std::to_string(side) + "\" alt=\"" + xml_escape(alt) +
           "\" src=\"data:image/jpeg;base64," + base64(jpeg) + "\">";
}

std::string percent(float p) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * p);
    return buf;
}

// One photo: the maps of `shown` classes side by side, captioned with the file and the call.
std::string figure(Classifier& clf, const std::filesystem::path& file, int truth, int predicted, bool both, int side) {
    const auto& names = clf.class_names();
    const std::string name = file.filename().string();
    std::string caption = xml_escape(name) + "<br>";
    caption += truth == predicted ? xml_escape(names.at(static_cast<std::size_t>(truth)))
                                  : "true " + xml_escape(names.at(static_cast<std::size_t>(truth))) + ", called " +
                                        xml_escape(names.at(static_cast<std::size_t>(predicted)));
    std::string imgs;
    try {
        const cv::Mat bgr = data::decode_image(file);
        const auto pred = clf.classify_with_maps(bgr);
        caption += " (" + percent(pred.probabilities.at(static_cast<std::size_t>(predicted))) + ")";
        std::vector<int> classes{predicted};
        if (both && truth != predicted) classes.push_back(truth);
        for (int c : classes)
            imgs += "<span class=\"map\">" +
                    thumbnail(bgr, pred.maps.at(static_cast<std::size_t>(c)), clf.preprocessing(), side, name + ": " + names[static_cast<std::size_t>(c)]) +
                    "<br>map: " + xml_escape(names[static_cast<std::size_t>(c)]) + "</span>";
    } catch (const Error& e) {
        imgs = "<span class=\"map\">no map: " + xml_escape(e.what()) + "</span>";
    }
    return "<figure>" + imgs + "<figcaption>" + caption + "</figcaption></figure>\n";
}

}  // namespace

std::string activation_maps_html(Classifier& clf, const std::vector<std::filesystem::path>& files, const std::vector<int>& truth,
                                 const std::vector<int>& predicted, const MapGalleryOptions& o) {
    if (files.size() != truth.size() || files.size() != predicted.size())
        throw Error("activation maps: " + std::to_string(files.size()) + " files for " + std::to_string(truth.size()) + " labels and " +
                    std::to_string(predicted.size()) + " predictions");
    std::string h =
        "<h2>Where the model looked</h2>\n<style>figure{display:inline-block;margin:6px;vertical-align:top;font-size:80%}"
        ".map{display:inline-block;margin-right:4px;text-align:center}</style>\n"
        "<p>Class activation maps: the final layer applied at each position of the last feature map, drawn over the square "
        "the model sees (red: where it found most evidence for the class; the colours are relative within each map).</p>\n";
    try {
        clf.predict_with_maps({});  // an empty batch: only asks whether the model has maps
    } catch (const Error& e) {
        return h + "<p>No maps for this model: " + xml_escape(e.what()) + "</p>\n";
    }
    int errors = 0;
    std::string err_html;
    for (std::size_t i = 0; i < files.size(); ++i)
        if (truth[i] != predicted[i] && errors++ < o.max_errors) err_html += figure(clf, files[i], truth[i], predicted[i], true, o.thumbnail);
    h += "<h3>Errors (" + std::to_string(errors) + ")</h3>\n";
    if (errors > o.max_errors) h += "<p>The first " + std::to_string(o.max_errors) + " are shown.</p>\n";
    h += errors ? err_html : "<p>None.</p>\n";
    h += "<h3>Correct, the first " + std::to_string(o.correct_per_class) + " of each class</h3>\n";
    std::vector<int> shown(clf.class_names().size(), 0);
    for (std::size_t i = 0; i < files.size(); ++i) {
        const auto c = static_cast<std::size_t>(truth[i]);
        if (truth[i] != predicted[i] || c >= shown.size() || shown[c] >= o.correct_per_class) continue;
        ++shown[c];
        h += figure(clf, files[i], truth[i], predicted[i], false, o.thumbnail);
    }
    return h;
}

}  // namespace firesight::eval
