#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "firesight/common/parallel.h"

using firesight::parallel_for;
using firesight::worker_count;

TEST(ParallelFor, EveryIndexOnceOnTheWorkersAsked) {
    for (const std::size_t n : {0u, 1u, 7u, 1000u})
        for (const unsigned workers : {1u, 2u, 5u}) {
            std::vector<std::atomic<int>> seen(n);
            std::vector<std::atomic<int>> by_worker(workers);
            parallel_for(n, workers, [&](std::size_t i, unsigned w) {
                ASSERT_LT(w, workers);
                ++seen[i];
                ++by_worker[w];
            });
            int total = 0;
            for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(seen[i].load(), 1) << "n " << n << " workers " << workers << " index " << i;
            for (auto& c : by_worker) total += c.load();
            EXPECT_EQ(static_cast<std::size_t>(total), n);
        }
}

TEST(ParallelFor, RunsConcurrentlyWhenAskedForTwoWorkers) {
    // Two items that each wait for the other to start: only finishes if both run at once.
    std::atomic<int> started{0};
    parallel_for(2, 2, [&](std::size_t, unsigned) {
        ++started;
        while (started.load() < 2) std::this_thread::yield();
    });
    EXPECT_EQ(started.load(), 2);
}

TEST(ParallelFor, TheFirstErrorIsRethrownAfterAllStopped) {
    std::atomic<int> after{0};
    EXPECT_THROW(parallel_for(10000, 2,
                              [&](std::size_t i, unsigned) {
                                  if (i == 3) throw std::runtime_error("item 3");
                                  if (i > 3) {
                                      ++after;
                                      std::this_thread::sleep_for(std::chrono::microseconds(100));
                                  }
                              }),
                 std::runtime_error);
    // Workers stop taking new items once one failed (a few in flight may still finish).
    EXPECT_LT(after.load(), 10000 - 4);
}

TEST(ParallelFor, WorkerCountIsBetweenOneAndTheItems) {
    EXPECT_EQ(worker_count(0), 1u);
    EXPECT_EQ(worker_count(1), 1u);
    EXPECT_GE(worker_count(1000), 1u);
    EXPECT_LE(worker_count(1000), firesight::core_count());
    EXPECT_EQ(firesight::core_count(), std::max(1u, std::thread::hardware_concurrency()));
}
