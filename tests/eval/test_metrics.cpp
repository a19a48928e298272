// Metrics, the fire decision threshold, and the SVG/HTML outputs.
#include <gtest/gtest.h>

#include "firesight/common/error.h"
#include "firesight/eval/eval.h"

using namespace firesight;

TEST(Metrics, CountsAndRatesOnAKnownCase) {
    // 4 fire (3 caught), 6 neutral (1 false alarm).
    const std::vector<int> truth = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    const std::vector<int> pred = {0, 0, 0, 1, 1, 1, 1, 1, 1, 0};
    const auto m = eval::compute_metrics({"fire", "neutral"}, truth, pred);
    EXPECT_EQ(m.confusion, (std::vector<std::vector<int>>{{3, 1}, {1, 5}}));
    EXPECT_DOUBLE_EQ(m.accuracy, 0.8);
    EXPECT_DOUBLE_EQ(m.per_class[0].recall, 0.75);
    EXPECT_DOUBLE_EQ(m.per_class[0].precision, 0.75);
    EXPECT_NEAR(m.per_class[1].recall, 5.0 / 6, 1e-12);
    EXPECT_NEAR(m.balanced_accuracy, (0.75 + 5.0 / 6) / 2, 1e-12);
    EXPECT_EQ(m.per_class[1].support, 6);
    const auto j = eval::to_json(m);
    EXPECT_DOUBLE_EQ(j["per_class"]["fire"]["recall"].get<double>(), 0.75);
    EXPECT_TRUE(j.contains("balanced_accuracy"));
    EXPECT_EQ(j["classes"][1], "neutral");
    EXPECT_THROW(eval::compute_metrics({"a"}, {0}, {1}), Error);
}

TEST(Metrics, FireThresholdMovesTheDecision) {
    const std::vector<std::string> classes = {"fire", "neutral", "smoke"};
    const int fire = eval::fire_class_index(classes);
    ASSERT_EQ(fire, 0);
    const std::vector<float> p = {0.3f, 0.5f, 0.2f};
    EXPECT_EQ(eval::decide(p, fire, -1), 1);   // argmax
    EXPECT_EQ(eval::decide(p, fire, 0.25), 0);  // fire at a low threshold
    EXPECT_EQ(eval::decide({0.6f, 0.1f, 0.3f}, fire, 0.7), 2);  // below it: best other class
    EXPECT_EQ(eval::fire_class_index({"a", "b"}), -1);
}

TEST(Metrics, PicturesAndReportShowLabelsCountsAndPercentages) {
    const auto m = eval::compute_metrics({"fire", "neutral"}, {0, 0, 1, 1, 1}, {0, 1, 1, 1, 1});
    const auto svg = eval::confusion_svg(m, "Test <split>");
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    EXPECT_NE(svg.find("predicted class"), std::string::npos);
    EXPECT_NE(svg.find("true class"), std::string::npos);
    EXPECT_NE(svg.find(">neutral<"), std::string::npos);
    EXPECT_NE(svg.find("50.0%"), std::string::npos);
    EXPECT_NE(svg.find("100.0%"), std::string::npos);
    EXPECT_NE(svg.find("&lt;split&gt;"), std::string::npos) << "titles are escaped";
    std::vector<eval::EpochRecord> recs;
    for (int i = 1; i <= 4; ++i) recs.push_back({i <= 2 ? "head" : "finetune", i, 1.0 / i, 0.5 + 0.1 * i, 1.2 / i, 0.6, 1e-3, 1.0, 500});
    const auto curves = eval::curves_svg(recs, "curves");
    EXPECT_NE(curves.find("polyline"), std::string::npos);
    EXPECT_NE(curves.find("val loss"), std::string::npos);
    EXPECT_NE(curves.find(">finetune<"), std::string::npos);
    const auto html = eval::report_html("run", {"line one"}, m, svg, curves);
    EXPECT_NE(html.find("<table>"), std::string::npos);
    EXPECT_NE(html.find("precision"), std::string::npos);
    const auto back = eval::epoch_record_from_json(eval::to_json(recs[2]));
    EXPECT_EQ(back.stage, "finetune");
    EXPECT_DOUBLE_EQ(back.val_loss, recs[2].val_loss);
}

TEST(Metrics, FireAndSmokeCountAsOneAlarm) {
    const std::vector<std::string> classes = {"fire", "neutral", "smoke"};
    // truth: 3 fire, 4 neutral, 3 smoke. A smoke called fire still alarms; a fire called neutral does not.
    const std::vector<int> truth = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
    const std::vector<int> pred = {0, 2, 1, 1, 1, 0, 2, 2, 0, 2};
    const auto m = eval::compute_metrics(classes, truth, pred);
    ASSERT_TRUE(m.alarm.defined);
    EXPECT_EQ(m.alarm.alarm_images, 6);
    EXPECT_EQ(m.alarm.caught, 5);
    EXPECT_EQ(m.alarm.other_images, 4);
    EXPECT_EQ(m.alarm.false_alarms, 2);
    EXPECT_DOUBLE_EQ(m.alarm.recall, 5.0 / 6.0);
    EXPECT_DOUBLE_EQ(m.alarm.false_alarm_rate, 0.5);
    const auto j = eval::to_json(m);
    EXPECT_DOUBLE_EQ(j["alarm"]["false_alarm_rate"].get<double>(), 0.5);
    EXPECT_NE(eval::to_text(m).find("false alarms 50.0%"), std::string::npos) << eval::to_text(m);
    EXPECT_FALSE(eval::compute_metrics({"cat", "dog"}, {0, 1}, {0, 1}).alarm.defined);
}

TEST(Metrics, PerClassThresholds) {
    const std::vector<std::string> classes = {"fire", "neutral", "smoke"};
    const auto t = eval::parse_thresholds("fire=0.3,smoke=0.4", classes);
    EXPECT_EQ(t, (std::vector<double>{0.3, -1.0, 0.4}));
    EXPECT_EQ(eval::parse_thresholds("", classes), (std::vector<double>{-1.0, -1.0, -1.0}));
    EXPECT_EQ(eval::decide({0.25f, 0.45f, 0.30f}, t), 1);  // neither reaches its threshold: neutral
    EXPECT_EQ(eval::decide({0.31f, 0.60f, 0.09f}, t), 0);  // fire reaches 0.3: fire, though neutral is likelier
    EXPECT_EQ(eval::decide({0.35f, 0.20f, 0.45f}, t), 2);  // both reach theirs: the likelier of the two
    EXPECT_EQ(eval::decide({0.20f, 0.30f, 0.50f}, eval::parse_thresholds("smoke=0.6", classes)), 1);  // a class is called only at its threshold
    EXPECT_EQ(eval::decide({0.2f, 0.3f, 0.5f}, {}), 2);  // no thresholds: argmax
    EXPECT_THROW(eval::parse_thresholds("flame=0.3", classes), Error);
    EXPECT_THROW(eval::parse_thresholds("fire=1.5", classes), Error);
    EXPECT_THROW(eval::parse_thresholds("fire=abc", classes), Error);
    EXPECT_THROW(eval::parse_thresholds("fire", classes), Error);
    EXPECT_EQ(eval::describe_thresholds(t, classes), "fire if p(fire) >= 0.30, smoke if p(smoke) >= 0.40, else argmax");
}
