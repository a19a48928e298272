// Test helpers for the watcher: a fake classifier that calls orange pixels "fire", generated
// videos and image folders with a flickering fire-like region, free ports, a real mosquitto.
#pragma once
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "firesight/data/classifier.h"
#include "firesight/common/error.h"

extern char** environ;

namespace firesight::test {

// Scores a frame by its share of orange pixels: a quarter of the frame orange is certain fire.
class OrangeClassifier : public Classifier {
public:
    OrangeClassifier() {
        pre_.size = 64;
        pre_.resize_shorter = 64;
    }
    const std::vector<std::string>& class_names() const override { return names_; }
    const data::Preprocess& preprocessing() const override { return pre_; }
    std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) override {
        std::vector<std::vector<float>> out;
        for (const auto& in : inputs) {
            ++calls;
            const float fire = fire_score(in);
            out.push_back({fire, 1.f - fire});
        }
        return out;
    }
    float fire_score(const cv::Mat& in) const {
        int orange = 0;
        for (int y = 0; y < in.rows; ++y)
            for (int x = 0; x < in.cols; ++x) {
                const auto v = in.at<cv::Vec3f>(y, x);  // RGB, normalised
                const float r = v[0] / pre_.scale + pre_.mean, g = v[1] / pre_.scale + pre_.mean, b = v[2] / pre_.scale + pre_.mean;
                if (r > 180 && g > 50 && g < 210 && b < 100) ++orange;
            }
        return std::min(1.f, 4.f * orange / static_cast<float>(in.rows * in.cols));
    }
    // Maps with a real meaning too: the orange share of each cell of an 8x8 grid for "fire", its
    // complement for "neutral".
    std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& inputs) override {
        std::vector<Prediction> out;
        for (const auto& in : inputs) {
            Prediction p;
            const float score = fire_score(in);
            p.probabilities = {score, 1.f - score};
            cv::Mat fire(8, 8, CV_32F);
            for (int r = 0; r < 8; ++r)
                for (int c = 0; c < 8; ++c)
                    fire.at<float>(r, c) = fire_score(in(cv::Rect(c * in.cols / 8, r * in.rows / 8, in.cols / 8, in.rows / 8)));
            p.maps = {fire, 1.f - fire};
            out.push_back(std::move(p));
        }
        return out;
    }
    std::string describe() const override { return "orange-pixel test classifier"; }
    std::atomic<int> calls{0};  // images given to probabilities(), the watcher's per-frame path

private:
    std::vector<std::string> names_{"fire", "neutral"};
    data::Preprocess pre_;
};

// A neutral scene (grey-green with texture); when `fire` a flickering orange blob of about a third
// of the frame whose size and brightness change every frame.
inline cv::Mat scene_frame(int index, bool fire, cv::Size size = {160, 120}) {
    cv::Mat f(size, CV_8UC3, cv::Scalar(90, 110, 80));
    for (int y = 0; y < size.height; y += 8) cv::line(f, {0, y}, {size.width, y}, cv::Scalar(70 + (y * 7 + index) % 30, 100, 70), 1);
    if (fire) {
        const int w = size.width / 2 + (index % 3) * 6, h = size.height / 2 + (index % 4) * 5;
        const cv::Rect r(size.width / 4, size.height / 3, std::min(w, size.width - size.width / 4), std::min(h, size.height - size.height / 3));
        cv::rectangle(f, r, cv::Scalar(20, 120 + (index % 5) * 12, 230 + index % 3 * 8), cv::FILLED);
    }
    return f;
}

// Writes an MJPG .avi; fire_at(i) says which frames show fire.
inline void write_video(const std::filesystem::path& path, int frames, double fps, const std::function<bool(int)>& fire_at,
                        cv::Size size = {160, 120}) {
    cv::VideoWriter w(path.string(), cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), fps, size);
    ASSERT_TRUE(w.isOpened()) << "cannot write " << path;
    for (int i = 0; i < frames; ++i) w.write(scene_frame(i, fire_at(i), size));
}

inline int free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

inline bool port_accepts(int port) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    return ok;
}

// Polls `cond` until it holds or `seconds` pass; generous timeouts, never a timing assert.
inline bool eventually(const std::function<bool()>& cond, double seconds = 60) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return cond();
}

inline std::string find_program(const std::vector<std::string>& candidates) {
    for (const auto& c : candidates)
        if (::access(c.c_str(), X_OK) == 0) return c;
    return {};
}

// A real mosquitto broker on a loopback port with persistence, so a restarted broker keeps the
// sessions of persistent subscribers (as a production broker would).
class Broker {
public:
    explicit Broker(const std::filesystem::path& dir) : dir_(dir), port_(free_port()) {
        exe_ = find_program({"/usr/sbin/mosquitto", "/usr/bin/mosquitto"});
        std::filesystem::create_directories(dir_);
        // As root mosquitto drops to user "mosquitto", who cannot write our temp dir: stay us.
        const passwd* pw = ::getpwuid(::getuid());
        std::ofstream(dir_ / "mosquitto.conf") << "user " << (pw ? pw->pw_name : "root") << "\nlistener " << port_ << " 127.0.0.1\nallow_anonymous true\npersistence true\n"
                                              << "persistence_location " << dir_.string() << "/\nautosave_interval 1\n"
                                              << "log_dest file " << (dir_ / "mosquitto.log").string() << "\n";
    }
    ~Broker() { stop(); }
    bool installed() const { return !exe_.empty(); }
    int port() const { return port_; }
    void start() {
        ASSERT_TRUE(installed()) << "mosquitto is not installed (scripts/deps.txt lists it)";
        const std::string conf = (dir_ / "mosquitto.conf").string();
        const char* argv[] = {exe_.c_str(), "-c", conf.c_str(), nullptr};
        ASSERT_EQ(::posix_spawn(&pid_, exe_.c_str(), nullptr, nullptr, const_cast<char**>(argv), environ), 0);
        ASSERT_TRUE(eventually([&] { return port_accepts(port_); }, 30)) << "mosquitto did not start on port " << port_;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
    }

private:
    std::filesystem::path dir_;
    int port_;
    std::string exe_;
    pid_t pid_ = -1;
};

}  // namespace firesight::test
