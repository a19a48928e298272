// The memory budget picks batch size and accumulation; memory sizes parse; peak RSS is readable.
#include <gtest/gtest.h>

#include "firesight/common/error.h"
#include "firesight/train/train.h"

using namespace firesight;

TEST(MemoryBudget, SmallerBudgetGivesSmallerBatchAndMoreAccumulation) {
    const std::size_t fixed = std::size_t{400} << 20;
    const auto big = train::plan_batches(std::size_t{2} << 30, fixed, 224, 0, 0);
    const auto small = train::plan_batches(std::size_t{700} << 20, fixed, 224, 0, 0);
    EXPECT_LT(small.batch_size, big.batch_size);
    EXPECT_GT(small.accumulation, big.accumulation);
    EXPECT_GE(small.batch_size * small.accumulation, 32);
    EXPECT_LE(small.estimated_peak_bytes, std::size_t{700} << 20);
    EXPECT_LE(big.estimated_peak_bytes, std::size_t{2} << 30);
}

TEST(MemoryBudget, FewerTrainedBlocksCostLessPerImage) {
    const auto all = train::activation_bytes_per_image(224, 0);
    const auto last = train::activation_bytes_per_image(224, 15);
    EXPECT_GT(all, 4 * last);
    EXPECT_GT(train::activation_bytes_per_image(224, 15), train::activation_bytes_per_image(128, 15));
    // Full fine-tuning of MobileNetV2 at 224 keeps tens of MB per image; the estimate is in that range.
    EXPECT_GT(all, std::size_t{20} << 20);
    EXPECT_LT(all, std::size_t{400} << 20);
}

TEST(MemoryBudget, TooSmallBudgetIsAClearError) {
    try {
        train::plan_batches(std::size_t{300} << 20, std::size_t{400} << 20, 224, 0, 0);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--memory-budget"), std::string::npos);
    }
}

TEST(MemoryBudget, ExplicitBatchIsKept) {
    const auto p = train::plan_batches(std::size_t{2} << 30, std::size_t{400} << 20, 224, 15, 8);
    EXPECT_EQ(p.batch_size, 8);
    EXPECT_EQ(p.accumulation, 1);
}

TEST(MemoryBudget, ParsesSizesAndReadsRss) {
    EXPECT_EQ(train::parse_memory_size("2G"), std::size_t{2} << 30);
    EXPECT_EQ(train::parse_memory_size("512M"), std::size_t{512} << 20);
    EXPECT_EQ(train::parse_memory_size("1.5GiB"), std::size_t{3} << 29);
    EXPECT_EQ(train::parse_memory_size("1000"), 1000u);
    EXPECT_THROW(train::parse_memory_size("lots"), Error);
    EXPECT_THROW(train::parse_memory_size("2X"), Error);
    EXPECT_THROW(train::parse_memory_size("-1G"), Error);
    EXPECT_GT(train::peak_rss_bytes(), 0u);
    EXPECT_GE(train::peak_rss_bytes(), train::current_rss_bytes());
}

TEST(MemoryBudget, FinetuneStartBlock) {
    EXPECT_EQ(train::finetune_start_block(3, 5), 15);
    EXPECT_EQ(train::finetune_start_block(-1, 5), 0);
    EXPECT_EQ(train::finetune_start_block(3, 0), 19);
    EXPECT_EQ(train::finetune_start_block(0, 5), 19);
}
