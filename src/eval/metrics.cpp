#include <algorithm>
#include <cstdio>

#include "firesight/common/error.h"
#include "firesight/eval/eval.h"

namespace firesight::eval {

bool is_alarm_class(const std::string& name) { return name == "fire" || name == "smoke"; }

namespace {

AlarmMetrics alarm_metrics(const Metrics& m) {
    AlarmMetrics a;
    const auto k = m.classes.size();
    bool any_alarm = false, any_other = false;
    for (const auto& c : m.classes) (is_alarm_class(c) ? any_alarm : any_other) = true;
    a.defined = any_alarm && any_other;
    if (!a.defined) return a;
    for (std::size_t t = 0; t < k; ++t)
        for (std::size_t p = 0; p < k; ++p) {
            const int n = m.confusion[t][p];
            const bool alarmed = is_alarm_class(m.classes[p]);
            if (is_alarm_class(m.classes[t])) {
                a.alarm_images += n;
                if (alarmed) a.caught += n;
            } else {
                a.other_images += n;
                if (alarmed) a.false_alarms += n;
            }
        }
    a.recall = a.alarm_images ? static_cast<double>(a.caught) / a.alarm_images : 0.0;
    a.false_alarm_rate = a.other_images ? static_cast<double>(a.false_alarms) / a.other_images : 0.0;
    return a;
}

}  // namespace

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
    m.alarm = alarm_metrics(m);
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

std::vector<double> parse_thresholds(const std::string& text, const std::vector<std::string>& classes) {
    std::vector<double> t(classes.size(), -1.0);
    std::size_t pos = 0;
    while (pos <= text.size() && !text.empty()) {
        const auto end = std::min(text.find(',', pos), text.size());
        const std::string item = text.substr(pos, end - pos);
        const auto eq = item.find('=');
        if (eq == std::string::npos) throw Error("--threshold: '" + item + "' is not CLASS=VALUE (e.g. fire=0.3,smoke=0.4)");
        const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
        const auto it = std::find(classes.begin(), classes.end(), name);
        if (it == classes.end()) {
            std::string known;
            for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
            throw Error("--threshold: '" + name + "' is not a class of the model (" + known + ")");
        }
        double v = -1;
        try {
            std::size_t used = 0;
            v = std::stod(value, &used);
            if (used != value.size()) throw std::invalid_argument(value);
        } catch (const std::exception&) {
            throw Error("--threshold: '" + value + "' (for " + name + ") is not a number");
        }
        if (!(v >= 0 && v <= 1)) throw Error("--threshold: " + name + "=" + value + " must be within 0..1");
        t[static_cast<std::size_t>(it - classes.begin())] = v;
        pos = end + 1;
    }
    return t;
}

int decide(const std::vector<float>& probs, const std::vector<double>& thresholds) {
    if (probs.empty()) throw Error("decide: no probabilities");
    int over = -1, free_best = -1;
    for (std::size_t i = 0; i < probs.size(); ++i) {
        const double t = i < thresholds.size() ? thresholds[i] : -1.0;
        const int ii = static_cast<int>(i);
        if (t >= 0) {
            if (probs[i] >= t && (over < 0 || probs[i] > probs[static_cast<std::size_t>(over)])) over = ii;
        } else if (free_best < 0 || probs[i] > probs[static_cast<std::size_t>(free_best)]) {
            free_best = ii;
        }
    }
    if (over >= 0) return over;
    if (free_best >= 0) return free_best;
    return static_cast<int>(std::max_element(probs.begin(), probs.end()) - probs.begin());
}

std::string describe_thresholds(const std::vector<double>& thresholds, const std::vector<std::string>& classes) {
    std::string out;
    char buf[160];
    for (std::size_t i = 0; i < thresholds.size() && i < classes.size(); ++i)
        if (thresholds[i] >= 0) {
            std::snprintf(buf, sizeof buf, "%s if p(%s) >= %.2f, ", classes[i].c_str(), classes[i].c_str(), thresholds[i]);
            out += buf;
        }
    return out.empty() ? "argmax" : out + "else argmax";
}

nlohmann::json to_json(const Metrics& m) {
    nlohmann::json per = nlohmann::json::object();
    for (std::size_t c = 0; c < m.classes.size(); ++c) {
        const auto& p = m.per_class[c];
        per[m.classes[c]] = {{"precision", p.precision}, {"recall", p.recall}, {"f1", p.f1}, {"support", p.support}};
    }
    nlohmann::json j = {{"accuracy", m.accuracy}, {"balanced_accuracy", m.balanced_accuracy}, {"classes", m.classes},
                        {"confusion", m.confusion}, {"per_class", per}, {"total", m.total}};
    if (m.alarm.defined)
        j["alarm"] = {{"recall", m.alarm.recall}, {"false_alarm_rate", m.alarm.false_alarm_rate}, {"alarm_images", m.alarm.alarm_images},
                      {"caught", m.alarm.caught}, {"other_images", m.alarm.other_images}, {"false_alarms", m.alarm.false_alarms}};
    return j;
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
    if (m.alarm.defined) {
        std::snprintf(buf, sizeof buf, "alarm (fire or smoke): recall %.1f%% (%d of %d), false alarms %.1f%% (%d of %d other images)\n",
                      100 * m.alarm.recall, m.alarm.caught, m.alarm.alarm_images, 100 * m.alarm.false_alarm_rate, m.alarm.false_alarms,
                      m.alarm.other_images);
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
