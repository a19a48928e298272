// The native-int8 session's threads: a fixed set of workers created once with the session, which
// split one layer's chunks with the calling thread, so a parallel layer costs a wake-up, not a spawn.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace firesight::engine::native {

class WorkerPool {
public:
    // threads - 1 workers: the thread calling run() is the last one.
    explicit WorkerPool(int threads);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    int threads() const { return static_cast<int>(workers_.size()) + 1; }
    static constexpr int kMaxChunks = 0xffff;

    // Calls chunk(i) once for every i in [0, chunks), chunks <= kMaxChunks, on the workers and the
    // caller, and returns when all calls have returned. Chunks go first come first served, so a
    // worker that the OS keeps waiting on a busy machine takes fewer. `chunk` must not throw.
    template <class Chunk>
    void run(int chunks, Chunk& chunk) {
        run_erased(chunks, [](void* c, int i) { (*static_cast<Chunk*>(c))(i); }, &chunk);
    }

private:
    using ChunkFn = void (*)(void*, int);
    void run_erased(int chunks, ChunkFn fn, void* ctx);
    void worker_loop();
    // Claims and runs chunks of job `job` until it has none left (or a newer job replaced it).
    void take_chunks(std::uint32_t job);

    std::vector<std::thread> workers_;
    // The current job. fn_ and ctx_ are read only after a chunk of the job was claimed: the job
    // cannot finish, and so cannot be replaced, before that chunk is done.
    ChunkFn fn_ = nullptr;
    void* ctx_ = nullptr;
    // job number << 32 | chunk count << 16 | next chunk: one word, so a worker that wakes late
    // cannot claim a chunk of a job other than the one whose count it compared against.
    std::atomic<std::uint64_t> claim_{0};
    std::atomic<int> done_{0};
    std::atomic<std::uint32_t> job_{0};  // what idle workers wait on
    std::atomic<bool> stop_{false};
    // Where a thread sleeps once polling gave up: workers for the next job, the caller for the last
    // chunk of its job. Changes to job_ and the last change to done_ pass through `sleep_`, so a
    // wake-up cannot fall between a sleeper's check and its wait.
    std::mutex sleep_;
    std::condition_variable job_posted_, job_done_;
};

}  // namespace firesight::engine::native
