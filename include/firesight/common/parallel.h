// Spreading independent items (images to decode, to run through an engine) over a few threads.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace firesight {

// The cores this machine shows (logical ones, at least 1).
inline unsigned core_count() { return std::max(1u, std::thread::hardware_concurrency()); }

// The number of workers worth starting for n items on this machine (at least 1).
inline unsigned worker_count(std::size_t n) { return static_cast<unsigned>(std::clamp<std::size_t>(n, 1, core_count())); }

// Calls fn(index, worker) for every index in [0, n), on `workers` threads (the calling thread is
// one of them) taking the next index as they finish: items of uneven cost keep every thread busy.
// `worker` (0..workers-1) lets fn keep per-thread state (a session, a buffer). The first exception
// thrown stops the others taking new items and is rethrown here once all have stopped.
template <class Fn>
void parallel_for(std::size_t n, unsigned workers, Fn&& fn) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&](unsigned worker) {
        for (std::size_t i; !failed && (i = next++) < n;) {
            try {
                fn(i, worker);
            } catch (...) {
                std::lock_guard lock(error_mutex);
                if (!error) error = std::current_exception();
                failed = true;
            }
        }
    };
    workers = std::max(1u, std::min<unsigned>(workers, static_cast<unsigned>(std::max<std::size_t>(n, 1))));
    std::vector<std::thread> threads;
    for (unsigned w = 1; w < workers; ++w) threads.emplace_back(work, w);
    work(0);
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace firesight
