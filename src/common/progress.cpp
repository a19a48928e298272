#include "firesight/common/progress.h"

#include <cstdio>
#include <unistd.h>

namespace firesight {

std::string format_duration(double s) {
    if (s < 0) s = 0;
    char buf[32];
    const int total = static_cast<int>(s + 0.5);
    if (total >= 3600)
        std::snprintf(buf, sizeof buf, "%dh%02dm", total / 3600, total / 60 % 60);
    else
        std::snprintf(buf, sizeof buf, "%d:%02d", total / 60, total % 60);
    return buf;
}

ProgressBar::ProgressBar(std::string label, std::size_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() {
    if (!finished_) finish();
}

void ProgressBar::update(std::size_t done, const std::string& suffix) {
    done_ = done;
    suffix_ = suffix;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (since < (tty_ ? 0.1 : 5.0)) return;
    last_draw_ = now;
    draw(false);
}

void ProgressBar::finish(const std::string& suffix) {
    if (finished_) return;
    finished_ = true;
    if (!suffix.empty()) suffix_ = suffix;
    done_ = total_;
    draw(true);
}

void ProgressBar::draw(bool final_line) {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    const int width = 24;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
    std::fprintf(stderr, "%s%-18s [%s] %zu/%zu %5.1f/s %s %s %s%s", tty_ ? "\r" : "", label_.c_str(),
                 bar.c_str(), done_, total_, rate, final_line ? "took" : "eta",
                 format_duration(final_line ? elapsed : eta).c_str(), suffix_.c_str(),
                 tty_ ? "\033[K" : "");
    if (final_line || !tty_) std::fputc('\n', stderr);
    std::fflush(stderr);
}

}  // namespace firesight
