// A terminal progress bar with rate and ETA, for anything that runs longer than a few seconds.
// It draws on stderr, redraws in place on a terminal and prints a line every few seconds otherwise
// (CI logs), so a long stage is never silent.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace firesight {

class ProgressBar {
public:
    ProgressBar(std::string label, std::size_t total, bool enabled = true);
    ~ProgressBar();
    void update(std::size_t done, const std::string& suffix = {});
    void finish(const std::string& suffix = {});

private:
    void draw(bool final_line);
    std::string label_;
    std::size_t total_;
    std::size_t done_ = 0;
    std::string suffix_;
    bool enabled_;
    bool tty_;
    bool finished_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);

}  // namespace firesight
