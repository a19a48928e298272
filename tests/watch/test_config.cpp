// The TOML config of `firesight watch`: values land where they should, mistakes name the key.
#include <gtest/gtest.h>

#include <fstream>

#include "firesight/common/error.h"
#include "firesight/watch/watch.h"
#include "test_util.h"

using namespace firesight;
using namespace firesight::watch;

namespace {
std::filesystem::path write(const test::TempDir& d, const std::string& text) {
    const auto p = d / "firesight.toml";
    std::ofstream(p) << text;
    return p;
}
std::string error_of(const std::filesystem::path& p) {
    try {
        load_watch_config(p);
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}
}  // namespace

TEST(WatchConfig, ReadsEverySection) {
    test::TempDir d;
    const auto c = load_watch_config(write(d, R"(
model = "runs/fire/model.fse"
fps = 3
data_dir = "/var/lib/firesight"
[sources]
cam1 = "rtsp://10.0.0.5/stream?x=1"
garage = "/dev/video0"
[decision]
alarm_classes = ["fire"]
k = 2
n = 4
ema_alpha = 0.7
min_alarm_seconds = 5.5
[decision.thresholds.fire]
enter = 0.8
exit = 0.3
[tiling]
rows = 2
cols = 3
[mqtt]
host = "broker.lan"
port = 8883
[webhook]
url = "http://hooks.lan/fire"
[http]
listen = "0.0.0.0:9000"
token = "abc"
)"));
    EXPECT_EQ(c.model, "runs/fire/model.fse");
    EXPECT_DOUBLE_EQ(c.fps, 3);
    ASSERT_EQ(c.sources.size(), 2u);
    EXPECT_EQ(c.sources[0].name, "cam1");
    EXPECT_EQ(c.sources[0].uri, "rtsp://10.0.0.5/stream?x=1");
    EXPECT_EQ(c.sources[1].name, "garage");
    EXPECT_EQ(c.decision.alarm_classes, std::vector<std::string>{"fire"});
    EXPECT_EQ(c.decision.k, 2);
    EXPECT_EQ(c.decision.n, 4);
    EXPECT_FLOAT_EQ(c.decision.threshold("fire").enter, 0.8f);
    EXPECT_DOUBLE_EQ(c.decision.min_alarm_seconds, 5.5);
    EXPECT_TRUE(c.tiling.enabled);
    EXPECT_EQ(c.tiling.cols, 3);
    ASSERT_TRUE(c.mqtt);
    EXPECT_EQ(c.mqtt->host, "broker.lan");
    EXPECT_EQ(c.mqtt->port, 8883);
    EXPECT_EQ(c.webhook, "http://hooks.lan/fire");
    ASSERT_TRUE(c.http);
    EXPECT_EQ(c.http->host, "0.0.0.0");
    EXPECT_EQ(c.http->port, 9000);
    EXPECT_EQ(c.http->token, "abc");
}

TEST(WatchConfig, MistakesNameTheKey) {
    test::TempDir d;
    EXPECT_NE(error_of(write(d, "[decision]\nkk = 3\n")).find("decision.kk: unknown key"), std::string::npos);
    EXPECT_NE(error_of(write(d, "fps = \"fast\"\n")).find("fps: must be a number"), std::string::npos);
    EXPECT_NE(error_of(write(d, "[decision]\nk = 9\nn = 3\n")).find("decision.k/n"), std::string::npos);
    EXPECT_NE(error_of(write(d, "[mqtt]\nport = 0\n")).find("mqtt.port"), std::string::npos);
    const auto syntax = error_of(write(d, "fps = = 2\n"));
    EXPECT_NE(syntax.find("firesight.toml"), std::string::npos) << syntax;
    EXPECT_NE(error_of(d / "missing.toml").find("missing.toml"), std::string::npos);
    // Values checked by the command-line parsers still name the file and the key (fuzz_watch_config).
    const auto http = error_of(write(d, "[http]\nlisten = \":80#80\"\n"));
    EXPECT_NE(http.find("firesight.toml: http.listen: "), std::string::npos) << http;
    const auto source = error_of(write(d, "[sources]\ncam = \"\"\n"));
    EXPECT_NE(source.find("firesight.toml: sources.cam: "), std::string::npos) << source;
}

// toml11 read out of bounds on invalid UTF-8 in a literal string (fuzz_watch_config found it);
// such a file is now refused before parsing, naming the file and the line, and UTF-8 still loads.
TEST(WatchConfig, InvalidUtf8IsRefusedNamingTheLine) {
    test::TempDir d;
    for (const std::string bad : {"\xff\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
        const auto msg = error_of(write(d, "fps = 2\nmodel = '" + bad + "'\n"));
        EXPECT_NE(msg.find("firesight.toml: line 2: invalid UTF-8"), std::string::npos) << msg;
    }
    const auto c = load_watch_config(write(d, "model = 'feu \xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5.fse'\n"));
    EXPECT_EQ(c.model, "feu \xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5.fse");
}

TEST(WatchConfig, CommandLineArguments) {
    const auto s = parse_source_arg("cam1=rtsp://host/a?b=c");
    EXPECT_EQ(s.name, "cam1");
    EXPECT_EQ(s.uri, "rtsp://host/a?b=c");
    EXPECT_EQ(parse_source_arg("rtsp://host/a?b=c").uri, "rtsp://host/a?b=c");
    EXPECT_EQ(parse_source_arg("rtsp://cam.lan:554/a").name, "cam_lan");
    EXPECT_EQ(parse_source_arg("/videos/yard.avi").name, "yard");
    EXPECT_THROW(parse_source_arg("bad name=/dev/video0"), Error);
    EXPECT_EQ(source_kind("/dev/video0"), SourceKind::camera);
    EXPECT_EQ(source_kind("http://cam/mjpg"), SourceKind::stream);
    EXPECT_EQ(source_kind("/tmp"), SourceKind::image_folder);
    EXPECT_EQ(source_kind("/tmp/x.mp4"), SourceKind::video_file);
    EXPECT_EQ(parse_mqtt_arg("broker:1884").port, 1884);
    EXPECT_THROW(parse_mqtt_arg("broker:x"), Error);
    const auto h = parse_http_arg(":8081");
    EXPECT_EQ(h.host, "127.0.0.1");
    EXPECT_EQ(h.port, 8081);
    EXPECT_THROW(parse_http_arg("host:99999"), Error);
}

TEST(WatchConfig, RetentionAndFeedbackKeys) {
    test::TempDir d;
    const auto c = load_watch_config(write(d, R"(
feedback_dir = "/srv/feedback"
[retention]
max_age_days = 7.5
max_disk_mb = 256
prune_interval_s = 60
)"));
    EXPECT_EQ(c.feedback_dir, "/srv/feedback");
    EXPECT_DOUBLE_EQ(c.retention.max_age_days, 7.5);
    EXPECT_EQ(c.retention.max_bytes, 256ull << 20);
    EXPECT_DOUBLE_EQ(c.retention.interval_s, 60);
    // Defaults that fit a small SD card.
    const auto def = load_watch_config(write(d, "fps = 1\n"));
    EXPECT_DOUBLE_EQ(def.retention.max_age_days, 30);
    EXPECT_EQ(def.retention.max_bytes, 1024ull << 20);
    EXPECT_NE(error_of(write(d, "[retention]\nmax_age_days = -1\n")).find("max_age_days"), std::string::npos);
    EXPECT_NE(error_of(write(d, "[retention]\nmax_disk_mb = \"1G\"\n")).find("retention.max_disk_mb: must be a number"), std::string::npos);
    EXPECT_NE(error_of(write(d, "[retention]\nprune_interval_s = 0\n")).find("interval"), std::string::npos);
    EXPECT_NE(error_of(write(d, "[retention]\nmax_days = 3\n")).find("retention.max_days: unknown key"), std::string::npos);
}
