// The native-int8 worker pool: workers poll briefly for the next job, then sleep on a condition
// variable, so the serial ops between two parallel layers don't cost a kernel wake-up each, while
// an idle session does not hold a core that other processes share. (Not std::atomic::wait: GCC
// 12's can miss a notify and leave a worker asleep for good.)
#include "worker_pool.h"

#include <string>

#include "firesight/common/error.h"

namespace firesight::engine::native {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Polls before sleeping for longer than the serial stretch (an add, a small layer) between two
// parallel layers of MobileNetV2, so workers are still polling when the next layer is posted
// (the measurement behind the count: docs/architecture.md, "Constants chosen by measurement").
constexpr int kSpins = 2000;

template <class T, class Done>
void wait_until(const std::atomic<T>& value, Done done, std::mutex& m, std::condition_variable& cv) {
    for (int i = 0; i < kSpins; ++i) {
        if (done(value.load(std::memory_order_acquire))) return;
        cpu_relax();
    }
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done(value.load(std::memory_order_acquire)); });
}

}  // namespace

WorkerPool::WorkerPool(int threads) {
    if (threads < 1) throw Error("native-int8 backend: threads must be at least 1, not " + std::to_string(threads));
    workers_.reserve(static_cast<std::size_t>(threads - 1));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

WorkerPool::~WorkerPool() {
    stop_.store(true, std::memory_order_release);
    {
        std::lock_guard lock(sleep_);
        job_.fetch_add(1, std::memory_order_release);
    }
    job_posted_.notify_all();
    for (auto& w : workers_) w.join();
}

void WorkerPool::worker_loop() {
    // Job 0 is "none yet", not job_'s value when this thread starts: a thread the OS starts late
    // must still see the jobs (and the stop) posted before it ran.
    std::uint32_t seen = 0;
    for (;;) {
        wait_until(job_, [seen](std::uint32_t j) { return j != seen; }, sleep_, job_posted_);
        seen = job_.load(std::memory_order_acquire);
        if (stop_.load(std::memory_order_acquire)) return;
        take_chunks(seen);
    }
}

void WorkerPool::take_chunks(std::uint32_t job) {
    for (;;) {
        std::uint64_t c = claim_.load(std::memory_order_acquire);
        int chunk = 0, chunks = 0;
        for (;;) {
            chunks = static_cast<int>((c >> 16) & 0xffff);
            chunk = static_cast<int>(c & 0xffff);
            if (static_cast<std::uint32_t>(c >> 32) != job || chunk >= chunks) return;
            if (claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
        }
        fn_(ctx_, chunk);
        if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
            { std::lock_guard lock(sleep_); }
            job_done_.notify_one();
        }
    }
}

void WorkerPool::run_erased(int chunks, ChunkFn fn, void* ctx) {
    if (chunks <= 0) return;
    if (workers_.empty() || chunks == 1) {
        for (int i = 0; i < chunks; ++i) fn(ctx, i);
        return;
    }
    if (chunks > kMaxChunks) throw Error("native-int8 backend: " + std::to_string(chunks) + " chunks in one job (at most 65535)");
    fn_ = fn;
    ctx_ = ctx;
    done_.store(0, std::memory_order_relaxed);
    std::uint32_t job = job_.load(std::memory_order_relaxed) + 1;
    if (job == 0) job = 1;  // after 2^32 jobs: 0 stays "none yet"
    claim_.store(static_cast<std::uint64_t>(job) << 32 | static_cast<std::uint64_t>(chunks) << 16, std::memory_order_release);
    {
        std::lock_guard lock(sleep_);
        job_.store(job, std::memory_order_release);
    }
    job_posted_.notify_all();
    take_chunks(job);
    wait_until(done_, [chunks](int d) { return d == chunks; }, sleep_, job_done_);
}

}  // namespace firesight::engine::native
