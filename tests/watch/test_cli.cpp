// `firesight detect` and `firesight watch` run as a user would, with the real ImageNet MobileNetV2
// (.tflite asset) on generated videos: timeline, annotated video, events, MQTT, errors.
#include <gtest/gtest.h>

#include <fstream>

#include <opencv2/videoio.hpp>

#include <nlohmann/json.hpp>

#include "firesight/watch/events.h"
#include "test_util.h"
#include "watch_test_util.h"

using namespace firesight;
using test::run_command;
using test::shell_quote;
namespace fs = std::filesystem;

TEST(WatchCli, DetectPrintsATimelineAndWritesAnAnnotatedVideo) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir dir;
    test::write_video(dir / "clip.avi", 24, 8, [](int i) { return i >= 8 && i < 16; }, {224, 168});
    const auto out = dir / "clip-annotated.avi";
    // ImageNet has no fire class; "volcano" stands in so the decision layer has an alarm class.
    const auto r = run_command(test::firesight_cli() + " detect --model " + shell_quote(test::mobilenet_quant().string()) +
                               " --alarm-class volcano --out " + shell_quote(out.string()) + " " + shell_quote((dir / "clip.avi").string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("24 frames"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("change"), std::string::npos) << r.out;
    cv::VideoCapture cap(out.string());
    ASSERT_TRUE(cap.isOpened());
    EXPECT_EQ(static_cast<int>(cap.get(cv::CAP_PROP_FRAME_COUNT)), 24);
    EXPECT_EQ(static_cast<int>(cap.get(cv::CAP_PROP_FRAME_WIDTH)), 224);
    EXPECT_FALSE(fs::exists(out.string() + ".part.avi"));

    const auto j = run_command(test::firesight_cli() + " detect --json --fps 4 --model " + shell_quote(test::mobilenet_quant().string()) +
                               " --alarm-class volcano --out " + shell_quote((dir / "j.avi").string()) + " " +
                               shell_quote((dir / "clip.avi").string()) + " 2>/dev/null");
    ASSERT_EQ(j.exit_code, 0) << j.out;
    const auto doc = nlohmann::json::parse(j.out);
    EXPECT_EQ(doc["frames"], 12);  // 3 s of video at 4 fps
    EXPECT_TRUE(doc["timeline"].is_array());
}

TEST(WatchCli, BadInputGivesOneClearError) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir dir;
    const auto r = run_command(test::firesight_cli() + " detect --model " + shell_quote(test::mobilenet_quant().string()) +
                               " --alarm-class volcano " + shell_quote((dir / "nope.avi").string()));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.out.find("nope.avi"), std::string::npos) << r.out;
    const auto c = run_command(test::firesight_cli() + " detect --model " + shell_quote(test::mobilenet_quant().string()) + " " +
                               shell_quote((dir / "nope.avi").string()));
    EXPECT_NE(c.exit_code, 0);
    EXPECT_NE(c.out.find("alarm_classes"), std::string::npos) << "an ImageNet model has no fire class: " << c.out;
    std::ofstream(dir / "bad.toml") << "[mqtt]\nprot = 1883\n";
    const auto t = run_command(test::firesight_cli() + " watch --config " + shell_quote((dir / "bad.toml").string()) + " --model " +
                               shell_quote(test::mobilenet_quant().string()) + " --source x=/dev/null");
    EXPECT_NE(t.exit_code, 0);
    EXPECT_NE(t.out.find("mqtt.prot: unknown key"), std::string::npos) << t.out;
}

TEST(WatchCli, WatchRunsAVideoToTheEndAndPublishes) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir dir;
    test::Broker broker(dir / "broker");
    broker.start();
    test::write_video(dir / "gate.avi", 12, 6, [](int) { return false; }, {224, 168});
    std::ofstream(dir / "firesight.toml") << "fps = 0\n[decision]\nalarm_classes = [\"volcano\"]\n[sources]\ngate = \""
                                          << (dir / "gate.avi").string() << "\"\n";
    const auto r = run_command(test::firesight_cli() + " watch --config " + shell_quote((dir / "firesight.toml").string()) + " --model " +
                               shell_quote(test::mobilenet_quant().string()) + " --data " + shell_quote((dir / "data").string()) +
                               " --mqtt 127.0.0.1:" + std::to_string(broker.port()) + " --http 127.0.0.1:0 --duration 120");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("gate: 12 frames"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ended"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("dashboard on http://127.0.0.1:"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(dir / "data" / "events.db"));
    // Every event, the "ended" one at least, was acknowledged by the broker before exit.
    watch::EventStore store(dir / "data");
    EXPECT_GE(store.count(), 1);
    EXPECT_EQ(store.pending_count("mqtt"), 0);
}

TEST(WatchCli, AGeneratedDashboardTokenGoesToAFileNeverToTheLog) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir dir;
    test::write_video(dir / "gate.avi", 6, 6, [](int) { return false; }, {224, 168});
    // Bound beyond loopback without --token: the watcher makes one up.
    const auto r = run_command(test::firesight_cli() + " watch --model " + shell_quote(test::mobilenet_quant().string()) +
                               " --alarm-class volcano --fps 0 --source gate=" + shell_quote((dir / "gate.avi").string()) +
                               " --data " + shell_quote((dir / "data").string()) + " --http 0.0.0.0:0 --keep-days 7 --max-disk-mb 64 --duration 120");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto file = dir / "data" / "dashboard-token";
    ASSERT_TRUE(fs::exists(file)) << r.out;
    std::string token;
    std::ifstream(file) >> token;
    EXPECT_EQ(token.size(), 32u);
    EXPECT_EQ(r.out.find(token), std::string::npos) << "the token was logged: " << r.out;
    EXPECT_NE(r.out.find(file.string()), std::string::npos) << "the log does not say where the token is: " << r.out;
    EXPECT_EQ(fs::status(file).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
    // A token given on the command line is not echoed either.
    const auto given = run_command(test::firesight_cli() + " watch --model " + shell_quote(test::mobilenet_quant().string()) +
                                   " --alarm-class volcano --fps 0 --source gate=" + shell_quote((dir / "gate.avi").string()) +
                                   " --data " + shell_quote((dir / "data2").string()) +
                                   " --http 127.0.0.1:0 --token Sup3rSecretValue --duration 120");
    ASSERT_EQ(given.exit_code, 0) << given.out;
    EXPECT_EQ(given.out.find("Sup3rSecretValue"), std::string::npos) << given.out;
    EXPECT_NE(given.out.find("token required"), std::string::npos) << given.out;
    const auto bad = run_command(test::firesight_cli() + " watch --model " + shell_quote(test::mobilenet_quant().string()) +
                                 " --source gate=" + shell_quote((dir / "gate.avi").string()) + " --max-disk-mb -5");
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.out.find("max-disk-mb"), std::string::npos) << bad.out;
}
