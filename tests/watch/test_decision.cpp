// The decision layer on recorded probability sequences: spikes, onsets, hysteresis, minimum
// alarm duration, per-class thresholds and tiling.
#include <gtest/gtest.h>

#include "firesight/common/error.h"
#include "firesight/watch/decision.h"
#include "watch_test_util.h"

using namespace firesight;
using namespace firesight::watch;

namespace {

const std::vector<std::string> kFireNeutral{"fire", "neutral"};
const std::vector<std::string> kFireSmokeNeutral{"fire", "smoke", "neutral"};

// Feeds fire probabilities at 1 frame per second; returns the state after each frame.
std::vector<AlarmState> run(AlarmStateMachine& m, const std::vector<float>& fire, double t0 = 0) {
    std::vector<AlarmState> out;
    for (std::size_t i = 0; i < fire.size(); ++i) out.push_back(m.update({fire[i], 1 - fire[i]}, t0 + static_cast<double>(i)).to);
    return out;
}

int first(const std::vector<AlarmState>& s, AlarmState st) {
    for (std::size_t i = 0; i < s.size(); ++i)
        if (s[i] == st) return static_cast<int>(i);
    return -1;
}

std::vector<float> repeat(float v, int n) { return std::vector<float>(static_cast<std::size_t>(n), v); }
std::vector<float> cat(std::vector<float> a, const std::vector<float>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

}  // namespace

TEST(WatchDecision, SingleFrameSpikesNeverAlarm) {
    DecisionConfig c;
    c.min_alarm_seconds = 0;
    AlarmStateMachine m(c, kFireNeutral);
    std::vector<float> seq;
    // A spike of certainty every 4th frame, as a flash or a reflection would give.
    for (int i = 0; i < 60; ++i) seq.push_back(i % 4 == 0 ? 1.0f : 0.05f);
    const auto states = run(m, seq);
    EXPECT_EQ(first(states, AlarmState::alarm), -1);
}

TEST(WatchDecision, TwoFrameBurstIsSuspectedThenIdleNotAlarm) {
    DecisionConfig c;
    c.ema_alpha = 1.0f;  // no smoothing: only k-of-n protects here
    AlarmStateMachine m(c, kFireNeutral);
    const auto states = run(m, cat(cat(repeat(0.05f, 5), repeat(0.95f, 2)), repeat(0.05f, 10)));
    EXPECT_EQ(first(states, AlarmState::suspected), 5);
    EXPECT_EQ(first(states, AlarmState::alarm), -1);
    EXPECT_EQ(states.back(), AlarmState::idle);
}

TEST(WatchDecision, SustainedFireAlarmsWithinKofN) {
    for (int k : {2, 3, 4}) {
        DecisionConfig c;
        c.k = k;
        c.n = 5;
        AlarmStateMachine m(c, kFireNeutral);
        const int onset = 10;
        const auto states = run(m, cat(repeat(0.03f, onset), repeat(0.9f, 20)));
        const int a = first(states, AlarmState::alarm);
        ASSERT_GE(a, 0) << "k=" << k;
        EXPECT_GE(a, onset + k - 1) << "k=" << k;   // needs k hits
        EXPECT_LE(a, onset + c.n) << "k=" << k;     // and gets them within n frames of smoothing lag
        EXPECT_EQ(first(states, AlarmState::suspected), a - (k - 1)) << "k=" << k;
    }
}

TEST(WatchDecision, FlickeringFireStillAlarms) {
    DecisionConfig c;
    AlarmStateMachine m(c, kFireNeutral);
    std::vector<float> seq = repeat(0.05f, 5);
    // Real flames flicker: the per-frame score jumps between 0.5 and 1.
    for (int i = 0; i < 20; ++i) seq.push_back(i % 2 ? 0.5f : 1.0f);
    EXPECT_GE(first(run(m, seq), AlarmState::alarm), 0);
}

TEST(WatchDecision, HysteresisHoldsAlarmBetweenExitAndEnter) {
    DecisionConfig c;
    c.min_alarm_seconds = 0;
    c.clear_frames = 3;
    AlarmStateMachine m(c, kFireNeutral);
    // Alarm, then a long stretch at 0.5: below enter (0.6) but above exit (0.4).
    auto states = run(m, cat(cat(repeat(0.9f, 8), repeat(0.5f, 30)), repeat(0.02f, 12)));
    const int a = first(states, AlarmState::alarm);
    ASSERT_GE(a, 0);
    for (int i = a; i < 8 + 30; ++i) EXPECT_EQ(states[static_cast<std::size_t>(i)], AlarmState::alarm) << "frame " << i;
    const int cleared = first(states, AlarmState::cleared);
    ASSERT_GT(cleared, 38);
    // The EMA needs a frame or two to fall below exit, then clear_frames quiet frames.
    EXPECT_LE(cleared, 38 + c.clear_frames + 2);
    EXPECT_EQ(states.back(), AlarmState::idle);
}

TEST(WatchDecision, MinimumAlarmDurationHoldsAShortAlarm) {
    DecisionConfig c;
    c.min_alarm_seconds = 20;
    c.clear_frames = 2;
    AlarmStateMachine m(c, kFireNeutral);
    auto states = run(m, cat(repeat(0.95f, 6), repeat(0.0f, 40)));
    const int a = first(states, AlarmState::alarm);
    ASSERT_GE(a, 0);
    const int cleared = first(states, AlarmState::cleared);
    ASSERT_GE(cleared, 0);
    EXPECT_GE(cleared - a, 20);  // frames are one second apart
    EXPECT_LE(cleared - a, 21);
}

TEST(WatchDecision, StateChangesFollowTheLifecycle) {
    DecisionConfig c;
    c.min_alarm_seconds = 0;
    AlarmStateMachine m(c, kFireNeutral);
    std::vector<std::pair<AlarmState, AlarmState>> changes;
    const auto seq = cat(cat(repeat(0.02f, 5), repeat(0.9f, 10)), repeat(0.02f, 20));
    float peak = 0;
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const auto d = m.update({seq[i], 1 - seq[i]}, static_cast<double>(i));
        if (d.changed()) changes.emplace_back(d.from, d.to);
        if (d.to == AlarmState::alarm) {
            EXPECT_EQ(d.cls, "fire");
            peak = std::max(peak, d.peak);
        }
    }
    const std::vector<std::pair<AlarmState, AlarmState>> want{{AlarmState::idle, AlarmState::suspected},
                                                              {AlarmState::suspected, AlarmState::alarm},
                                                              {AlarmState::alarm, AlarmState::cleared},
                                                              {AlarmState::cleared, AlarmState::idle}};
    EXPECT_EQ(changes, want);
    EXPECT_GT(peak, 0.8f);
}

TEST(WatchDecision, PerClassThresholds) {
    DecisionConfig c;
    c.thresholds["fire"] = {0.95f, 0.5f};  // fire must be very sure; smoke uses the default 0.6
    AlarmStateMachine m(c, kFireSmokeNeutral);
    bool fire_alarm = false, smoke_alarm = false;
    for (int i = 0; i < 30; ++i) {
        const auto d = m.update({0.8f, 0.1f, 0.1f}, i);
        fire_alarm |= d.to == AlarmState::alarm;
    }
    EXPECT_FALSE(fire_alarm);
    AlarmStateMachine m2(c, kFireSmokeNeutral);
    std::string cls;
    for (int i = 0; i < 30; ++i) {
        const auto d = m2.update({0.1f, 0.8f, 0.1f}, i);
        if (d.to == AlarmState::alarm) {
            smoke_alarm = true;
            cls = d.cls;
        }
    }
    EXPECT_TRUE(smoke_alarm);
    EXPECT_EQ(cls, "smoke");
}

TEST(WatchDecision, NeutralClassNeverAlarms) {
    AlarmStateMachine m(DecisionConfig{}, kFireNeutral);
    for (int i = 0; i < 30; ++i) EXPECT_NE(m.update({0.0f, 1.0f}, i).to, AlarmState::alarm);
}

TEST(WatchDecision, BadConfigurationIsAClearError) {
    DecisionConfig c;
    c.alarm_classes = {"smoke"};
    try {
        AlarmStateMachine m(c, kFireNeutral);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("alarm_classes"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("fire, neutral"), std::string::npos) << e.what();
    }
    DecisionConfig k;
    k.k = 6;
    EXPECT_THROW(k.validate(), Error);
    DecisionConfig t;
    t.thresholds["fire"] = {0.3f, 0.5f};
    EXPECT_THROW(t.validate(), Error);
    AlarmStateMachine m(DecisionConfig{}, kFireNeutral);
    EXPECT_THROW(m.update({0.5f}, 0), Error);
}

// A config reload (SIGHUP) changes thresholds without dropping the alarm in progress; a config
// the model cannot use is refused and the old one stays.
TEST(WatchDecision, ReconfigureKeepsTheAlarmAndRefusesABadConfig) {
    DecisionConfig c;
    c.min_alarm_seconds = 0;
    AlarmStateMachine m(c, kFireNeutral);
    EXPECT_EQ(run(m, repeat(0.5f, 6)).back(), AlarmState::idle);  // under the default 0.6
    DecisionConfig lower = c;
    lower.default_threshold = {0.45f, 0.3f};
    m.reconfigure(lower);
    EXPECT_EQ(m.config().default_threshold.enter, 0.45f);
    const auto s = run(m, repeat(0.5f, 6), 6);
    EXPECT_EQ(first(s, AlarmState::alarm), 2);  // the old config's smoothing carried over: alarm after k frames
    DecisionConfig none = c;
    none.alarm_classes = {"smoke"};
    EXPECT_THROW(m.reconfigure(none), Error);
    DecisionConfig bad = c;
    bad.k = 9;
    EXPECT_THROW(m.reconfigure(bad), Error);
    EXPECT_EQ(m.config().default_threshold.enter, 0.45f);
    DecisionConfig higher = lower;
    higher.default_threshold = {0.9f, 0.4f};  // 0.5 stays over exit: the alarm holds
    m.reconfigure(higher);
    EXPECT_EQ(m.state(), AlarmState::alarm);
    EXPECT_EQ(run(m, repeat(0.5f, 10), 12).back(), AlarmState::alarm);
    EXPECT_EQ(run(m, repeat(0.0f, 7), 22).back(), AlarmState::cleared);
}

TEST(WatchTiling, TilesOverlapAndCoverTheFrame) {
    TilingConfig t;
    t.enabled = true;
    t.rows = 2;
    t.cols = 3;
    t.overlap = 0.25f;
    const cv::Size frame(640, 360);
    const auto rects = tile_rects(frame, t);
    ASSERT_EQ(rects.size(), 6u);
    cv::Mat covered(frame, CV_8U, cv::Scalar(0));
    for (const auto& r : rects) {
        EXPECT_EQ(r & cv::Rect(0, 0, frame.width, frame.height), r);
        covered(r) += 1;
    }
    EXPECT_EQ(cv::countNonZero(covered == 0), 0);
    EXPECT_GT(cv::countNonZero(covered > 1), 0);  // neighbours overlap
}

TEST(WatchTiling, SmallFireInAWideFrameIsFoundOnlyWithTiles) {
    firesight::test::OrangeClassifier clf;
    cv::Mat frame(360, 1280, CV_8UC3, cv::Scalar(90, 110, 80));
    cv::rectangle(frame, cv::Rect(100, 60, 120, 90), cv::Scalar(20, 140, 240), cv::FILLED);
    TilingConfig off;
    TilingConfig on;
    on.enabled = true;
    on.rows = 2;
    on.cols = 4;
    std::vector<cv::Rect> where_off, where_on;
    const float whole = classify_frame(clf, frame, off, &where_off)[0];
    const float tiled = classify_frame(clf, frame, on, &where_on)[0];
    EXPECT_LT(whole, 0.6f);
    EXPECT_GT(tiled, 0.6f);
    // The region that fired: the whole frame without tiles, the tile holding the fire with them.
    ASSERT_EQ(where_off.size(), 2u);
    EXPECT_EQ(where_off[0], cv::Rect(0, 0, 1280, 360));
    ASSERT_EQ(where_on.size(), 2u);
    EXPECT_EQ(where_on[0] & cv::Rect(100, 60, 120, 90), cv::Rect(100, 60, 120, 90)) << where_on[0];
    EXPECT_LT(where_on[0].area(), 1280 * 360 / 4);
}

// The yellow box mark_class_evidence draws, as the bounding box of its exact colour.
static cv::Rect yellow_box(const cv::Mat& bgr) {
    cv::Mat mask;
    cv::inRange(bgr, cv::Scalar(0, 255, 255), cv::Scalar(0, 255, 255), mask);
    return cv::boundingRect(mask);
}

// The box must cover the fire and not much more: the fake classifier's 8x8 cells (60 px here) and
// the label above the box make it somewhat larger than the fire, the whole view would be 7x larger.
static void expect_box_on(const cv::Rect& box, const cv::Rect& fire) {
    EXPECT_GT((box & fire).area(), 0.9 * fire.area()) << box;
    EXPECT_GT(fire.area(), 0.4 * box.area()) << box;
}

TEST(WatchSnapshot, AlarmBoxSitsOnTheFire) {
    firesight::test::OrangeClassifier clf;
    cv::Mat frame(480, 640, CV_8UC3, cv::Scalar(90, 110, 80));
    const cv::Rect fire(300, 150, 140, 120);
    cv::rectangle(frame, fire, cv::Scalar(20, 140, 240), cv::FILLED);
    const cv::Mat marked = mark_class_evidence(clf, frame, TilingConfig{}, 0);
    ASSERT_EQ(marked.size(), frame.size());
    const cv::Rect box = yellow_box(marked);
    expect_box_on(box, fire);
    EXPECT_THROW(mark_class_evidence(clf, frame, TilingConfig{}, 2), Error);
}

TEST(WatchSnapshot, WithTilesTheBoxComesFromTheTileThatSawTheFire) {
    firesight::test::OrangeClassifier clf;
    cv::Mat frame(360, 1280, CV_8UC3, cv::Scalar(90, 110, 80));
    const cv::Rect fire(100, 60, 120, 90);  // outside the whole frame's centre square
    cv::rectangle(frame, fire, cv::Scalar(20, 140, 240), cv::FILLED);
    TilingConfig on;
    on.enabled = true;
    on.rows = 2;
    on.cols = 4;
    const cv::Rect box = yellow_box(mark_class_evidence(clf, frame, on, 0));
    expect_box_on(box, fire);
}

// A camera frame's model input made the cheap way (cut out the model's view, whole-factor box
// filter, then resize) is the input data::preprocess makes from the whole frame, within a few grey
// levels; small frames take data::preprocess itself.
TEST(WatchFrameInput, MatchesThePreprocessingOfTheWholeFrame) {
    data::Preprocess p;  // 224, [-1, 1]
    cv::Mat big(1080, 1920, CV_8UC3);
    for (int y = 0; y < big.rows; ++y)
        for (int x = 0; x < big.cols; ++x)
            big.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(x / 8), static_cast<uchar>(y / 5), static_cast<uchar>((x + y) / 12));
    cv::circle(big, {900, 500}, 180, cv::Scalar(30, 140, 250), cv::FILLED);  // an orange blob in the model's view
    cv::rectangle(big, {100, 100, 200, 800}, cv::Scalar(255, 255, 255), cv::FILLED);  // outside it: must not matter
    const cv::Mat want = data::preprocess(big, p), got = frame_input(big, p);
    ASSERT_EQ(got.size(), cv::Size(224, 224));
    ASSERT_EQ(got.type(), CV_32FC3);
    cv::Mat diff;
    cv::absdiff(got, want, diff);
    const cv::Scalar mean = cv::mean(diff);
    for (int c = 0; c < 3; ++c) EXPECT_LT(mean[c] * 127.5, 2.0) << "channel " << c;  // in grey levels
    // A tile (a view into the frame, not a copy) works the same way.
    const cv::Rect tile(960, 0, 960, 540);
    cv::absdiff(frame_input(big(tile), p), data::preprocess(big(tile).clone(), p), diff);
    EXPECT_LT(cv::mean(diff)[0] * 127.5, 2.0);
    // Under twice the input size: exactly data::preprocess.
    const cv::Mat small = big(cv::Rect(0, 0, 400, 300)).clone();
    EXPECT_EQ(cv::norm(frame_input(small, p), data::preprocess(small, p), cv::NORM_INF), 0);
}
