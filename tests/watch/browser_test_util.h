// Headless Chromium for the dashboard tests, driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: it reads NUL-terminated JSON commands on fd 3 and answers on fd 4), so
// a test can open the page, read it and click on it with a real mouse event.
#pragma once
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "watch_test_util.h"

namespace firesight::test {

inline std::string find_chromium() { return find_program({"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}); }

class Browser {
public:
    Browser(const std::string& exe, const std::filesystem::path& profile) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
        // Move the child's ends out of the way first, so dup2 onto 3 and 4 cannot clobber them.
        const int child_in = ::fcntl(in[0], F_DUPFD_CLOEXEC, 100), child_out = ::fcntl(out[1], F_DUPFD_CLOEXEC, 100);
        ::close(in[0]);
        ::close(out[1]);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, child_in, 3);
        posix_spawn_file_actions_adddup2(&fa, child_out, 4);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        const std::string prof = "--user-data-dir=" + profile.string();
        std::vector<const char*> argv{exe.c_str(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                                      "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                      "--remote-debugging-pipe", "--window-size=1280,900", prof.c_str(), "about:blank", nullptr};
        ok_ = ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, const_cast<char**>(argv.data()), environ) == 0;
        posix_spawn_file_actions_destroy(&fa);
        ::close(child_in);
        ::close(child_out);
        to_ = in[1];
        from_ = out[0];
    }
    ~Browser() {
        if (ok_) call("Browser.close", nlohmann::json::object(), {}, 10);
        ::close(to_);
        ::close(from_);
        if (pid_ > 0 && !eventually([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, 20)) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Browser(const Browser&) = delete;
    Browser& operator=(const Browser&) = delete;
    bool ok() const { return ok_; }
    // Sends one command and waits for its answer (events in between are skipped).
    nlohmann::json call(const std::string& method, nlohmann::json params, const std::string& session = {}, double timeout_s = 60) {
        nlohmann::json msg{{"id", ++id_}, {"method", method}, {"params", std::move(params)}};
        if (!session.empty()) msg["sessionId"] = session;
        const std::string text = msg.dump() + '\0';
        if (::write(to_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return nullptr;
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        for (;;) {
            for (auto nul = buf_.find('\0'); nul != std::string::npos; nul = buf_.find('\0')) {
                auto reply = nlohmann::json::parse(buf_.substr(0, nul), nullptr, false);
                buf_.erase(0, nul + 1);
                if (reply.is_object() && reply.value("id", -1) == id_) return reply;
            }
            pollfd p{from_, POLLIN, 0};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
            if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return nullptr;
            char chunk[65536];
            const auto n = ::read(from_, chunk, sizeof chunk);
            if (n <= 0) return nullptr;
            buf_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    nlohmann::json eval(const std::string& js, const std::string& session) {
        auto r = call("Runtime.evaluate", {{"expression", js}, {"returnByValue", true}}, session);
        return r.is_object() && r.contains("result") ? r["result"]["result"].value("value", nlohmann::json()) : nlohmann::json();
    }
    // Opens `url` in a new tab and returns the tab's session id ("" when Chromium refused).
    std::string open(const std::string& url) {
        const auto target = call("Target.createTarget", {{"url", "about:blank"}});
        if (!target.is_object() || !target.contains("result")) return {};
        const auto attached = call("Target.attachToTarget", {{"targetId", target["result"]["targetId"]}, {"flatten", true}});
        if (!attached.is_object() || !attached.contains("result")) return {};
        const std::string session = attached["result"]["sessionId"];
        call("Page.navigate", {{"url", url}}, session);
        return session;
    }
    // Where the centre of the element `selector` is on screen, scrolled into view; null while the
    // page does not show it.
    nlohmann::json centre_of(const std::string& selector, const std::string& session) {
        return eval("(() => { const b = document.querySelector(" + nlohmann::json(selector).dump() +
                        "); if (!b) return null; b.scrollIntoView({block: 'center'});"
                        " const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()",
                    session);
    }
    // A real mouse click (move, press, release) on the element `selector`, repeated until `done`
    // holds: a page that redraws itself may replace the element while the click is on its way.
    // False when the element never showed or no click had the effect.
    bool click_until(const std::string& selector, const std::string& session, const std::function<bool()>& done, int attempts = 5) {
        nlohmann::json xy;
        if (!eventually([&] { return (xy = centre_of(selector, session)).is_array(); })) return false;
        for (int attempt = 0; attempt < attempts; ++attempt) {
            if (attempt) xy = centre_of(selector, session);
            if (!xy.is_array()) continue;
            for (const char* type : {"mouseMoved", "mousePressed", "mouseReleased"})
                call("Input.dispatchMouseEvent", {{"type", type}, {"x", xy[0]}, {"y", xy[1]}, {"button", "left"}, {"clickCount", 1}}, session);
            if (eventually(done, 10)) return true;
        }
        return false;
    }

private:
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1, id_ = 0;
    bool ok_ = false;
    std::string buf_;
};

}  // namespace firesight::test
