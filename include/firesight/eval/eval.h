// Evaluation of a classifier: accuracy, balanced accuracy, per-class precision/recall/F1, the
// confusion matrix, and the pictures and HTML report that show them (and training curves).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace firesight::eval {

struct ClassMetrics {
    double precision = 0, recall = 0, f1 = 0;
    int support = 0;  // images of this class
};

// Fire and smoke both raise the alarm: a missed plume is as bad as a missed flame, and calling
// smoke "fire" still alarms. These figures count the alarm as one decision.
struct AlarmMetrics {
    bool defined = false;                    // the classes include an alarm class and another one
    int alarm_images = 0, caught = 0;        // images of an alarm class; those predicted as any alarm class
    int other_images = 0, false_alarms = 0;  // images of the other classes; those predicted as an alarm class
    double recall = 0, false_alarm_rate = 0;
};

struct Metrics {
    std::vector<std::string> classes;
    std::vector<std::vector<int>> confusion;  // [true class][predicted class]
    double accuracy = 0;
    double balanced_accuracy = 0;  // mean recall over the classes present
    std::vector<ClassMetrics> per_class;
    int total = 0;
    AlarmMetrics alarm;
};

Metrics compute_metrics(const std::vector<std::string>& classes, const std::vector<int>& truth,
                        const std::vector<int>& predicted);

// The decision rule: argmax, except that when the model has a class named "fire" and
// fire_threshold >= 0, an image is called fire whenever p(fire) >= fire_threshold (a missed
// fire costs more than a false alarm, so a threshold below 0.5 trades precision for recall).
int fire_class_index(const std::vector<std::string>& classes);  // -1 when absent
int decide(const std::vector<float>& probs, int fire_index, double fire_threshold);
// "fire" and "smoke" are the alarm classes.
bool is_alarm_class(const std::string& name);

// Per-class thresholds from "fire=0.3,smoke=0.4" (class names of the model, values in 0..1);
// -1 where a class has none. Throws firesight::Error naming what is wrong.
std::vector<double> parse_thresholds(const std::string& text, const std::vector<std::string>& classes);
// The general rule: among the classes with a threshold that their probability reaches, the most
// probable; otherwise the most probable of the classes without a threshold (a class with a
// threshold is called only at or above it); otherwise plain argmax.
int decide(const std::vector<float>& probs, const std::vector<double>& thresholds);
// "fire if p(fire) >= 0.30, smoke if p(smoke) >= 0.40, else argmax" for reports.
std::string describe_thresholds(const std::vector<double>& thresholds, const std::vector<std::string>& classes);

// {"accuracy","balanced_accuracy","classes","confusion","per_class":{name:{precision,recall,f1,support}}}
nlohmann::json to_json(const Metrics& m);
// A text table for the terminal.
std::string to_text(const Metrics& m);

// One point of the training curves (one epoch of one stage).
struct EpochRecord {
    std::string stage;  // "head" or "finetune"
    int epoch = 0;      // within its stage, from 1
    double train_loss = 0, train_accuracy = 0, val_loss = 0, val_accuracy = 0;
    double learning_rate = 0, seconds = 0, peak_rss_mb = 0;
};
nlohmann::json to_json(const EpochRecord& r);
EpochRecord epoch_record_from_json(const nlohmann::json& j);

// Text escaped for XML/HTML content and attribute values (& < > " ').
std::string xml_escape(const std::string& s);

// Hand-written SVG: the confusion matrix with counts and row percentages, and the loss/accuracy
// curves of a run with both stages along one epoch axis.
std::string confusion_svg(const Metrics& m, const std::string& title);
std::string curves_svg(const std::vector<EpochRecord>& records, const std::string& title);
// A self-contained HTML page: summary lines, the two pictures (inlined) and the per-class table,
// then `extra_html` (a finished section, e.g. activation_maps_html's) at the end.
std::string report_html(const std::string& title, const std::vector<std::string>& summary_lines, const Metrics& m,
                        const std::string& confusion_svg_text, const std::string& curves_svg_text,
                        const std::string& extra_html = {});

}  // namespace firesight::eval
