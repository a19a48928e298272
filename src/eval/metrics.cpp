#include <algorithm>
#include <cstdio>

#include "firesight/error.h"
#include "firesight/eval.h"

namespace firesight::eval {

Metrics compute_metrics(const std::vector<std::string>& classes, const std::vector<int>& truth,
                        const std::vector<int>& predicted) {
    if (truth.size() != predicted.size())
        throw Error("metrics: " + std::to_string(truth.size()) + " labels but " + std::to_string(predicted.size()) + " predictions");
    const auto k = classes.size();
    Metrics m;
    m.classes = classes;
    m.confusion.assign(k, std::vector<int>(k, 0));
    for (std::size_t i = 0; i < truth.size(); ++i) {
        const auto t = static_cast<std::size_t>(truth[i]), p = static_cast<std::size_t>(predicted[i]);
        if (t >= k || p >= k) throw Error("metrics: class index out of range");
        ++m.confusion[t][p];
    }
    m.total = static_cast<int>(truth.size());
    int correct = 0;
    double recall_sum = 0;
    int present = 0;
    m.per_class.resize(k);
    for (std::size_t c = 0; c < k; ++c) {
        int support = 0, predicted_c = 0;
        for (std::size_t j = 0; j < k; ++j) {
            support += m.confusion[c][j];
            predicted_c += m.confusion[j][c];
        }
        const int tp = m.confusion[c][c];
        correct += tp;
        auto& pc = m.per_class[c];
        pc.support = support;
        pc.precision = predicted_c ? static_cast<double>(tp) / predicted_c : 0.0;
        pc.recall = support ? static_cast<double>(tp) / support : 0.0;
        pc.f1 = pc.precision + pc.recall > 0 ? 2 * pc.precision * pc.recall / (pc.precision + pc.recall) : 0.0;
        if (support) {
            recall_sum += pc.recall;
            ++present;
        }
    }
    m.accuracy = m.total ? static_cast<double>(correct) / m.total : 0.0;
    m.balanced_accuracy = present ? recall_sum / present : 0.0;
    return m;
}

int fire_class_index(const std::vector<std::string>& classes) {
    for (std::size_t i = 0; i < classes.size(); ++i)
        if (classes[i] == "fire") return static_cast<int>(i);
    return -1;
}

int decide(const std::vector<float>& probs, int fire_index, double fire_threshold) {
    if (probs.empty()) throw Error("decide: no probabilities");
    if (fire_index >= 0 && fire_threshold >= 0 && static_cast<std::size_t>(fire_index) < probs.size()) {
        if (probs[static_cast<std::size_t>(fire_index)] >= fire_threshold) return fire_index;
        int best = -1;  // below the threshold: the most likely of the other classes
        for (std::size_t i = 0; i < probs.size(); ++i)
            if (static_cast<int>(i) != fire_index && (best < 0 || probs[i] > probs[static_cast<std::size_t>(best)])) best = static_cast<int>(i);
        return best < 0 ? fire_index : best;
    }
    return static_cast<int>(std::max_element(probs.begin(), probs.end()) - probs.begin());
}

nlohmann::json to_json(const Metrics& m) {
    nlohmann::json per = nlohmann::json::object();
    for (std::size_t c = 0; c < m.classes.size(); ++c) {
        const auto& p = m.per_class[c];
        per[m.classes[c]] = {{"precision", p.precision}, {"recall", p.recall}, {"f1", p.f1}, {"support", p.support}};
    }
    return {{"accuracy", m.accuracy}, {"balanced_accuracy", m.balanced_accuracy}, {"classes", m.classes},
            {"confusion", m.confusion}, {"per_class", per}, {"total", m.total}};
}

std::string to_text(const Metrics& m) {
    std::string out;
    char buf[256];
    std::snprintf(buf, sizeof buf, "accuracy %.1f%%  balanced accuracy %.1f%%  (%d images)\n", 100 * m.accuracy,
                  100 * m.balanced_accuracy, m.total);
    out += buf;
    std::size_t w = 9;
    for (const auto& c : m.classes) w = std::max(w, c.size());
    std::snprintf(buf, sizeof buf, "%-*s %9s %9s %9s %8s\n", static_cast<int>(w), "class", "precision", "recall", "f1", "support");
    out += buf;
    for (std::size_t c = 0; c < m.classes.size(); ++c) {
        const auto& p = m.per_class[c];
        std::snprintf(buf, sizeof buf, "%-*s %8.1f%% %8.1f%% %8.1f%% %8d\n", static_cast<int>(w), m.classes[c].c_str(),
                      100 * p.precision, 100 * p.recall, 100 * p.f1, p.support);
        out += buf;
    }
    out += "confusion (rows: true class, columns: predicted)\n";
    std::snprintf(buf, sizeof buf, "%-*s", static_cast<int>(w), "");
    out += buf;
    for (const auto& c : m.classes) {
        std::snprintf(buf, sizeof buf, " %*s", static_cast<int>(std::max<std::size_t>(7, c.size())), c.c_str());
        out += buf;
    }
    out += "\n";
    for (std::size_t r = 0; r < m.classes.size(); ++r) {
        std::snprintf(buf, sizeof buf, "%-*s", static_cast<int>(w), m.classes[r].c_str());
        out += buf;
        for (std::size_t c = 0; c < m.classes.size(); ++c) {
            std::snprintf(buf, sizeof buf, " %*d", static_cast<int>(std::max<std::size_t>(7, m.classes[c].size())), m.confusion[r][c]);
            out += buf;
        }
        out += "\n";
    }
    return out;
}

nlohmann::json to_json(const EpochRecord& r) {
    return {{"stage", r.stage}, {"epoch", r.epoch}, {"train_loss", r.train_loss}, {"train_accuracy", r.train_accuracy},
            {"val_loss", r.val_loss}, {"val_accuracy", r.val_accuracy}, {"learning_rate", r.learning_rate},
            {"seconds", r.seconds}, {"peak_rss_mb", r.peak_rss_mb}};
}

EpochRecord epoch_record_from_json(const nlohmann::json& j) {
    EpochRecord r;
    r.stage = j.at("stage").get<std::string>();
    r.epoch = j.at("epoch").get<int>();
    r.train_loss = j.at("train_loss").get<double>();
    r.train_accuracy = j.at("train_accuracy").get<double>();
    r.val_loss = j.at("val_loss").get<double>();
    r.val_accuracy = j.at("val_accuracy").get<double>();
    r.learning_rate = j.at("learning_rate").get<double>();
    r.seconds = j.at("seconds").get<double>();
    r.peak_rss_mb = j.at("peak_rss_mb").get<double>();
    return r;
}

}  // namespace firesight::eval
