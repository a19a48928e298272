// Helpers shared by the compression tests that look inside libtorch tensors (clustering, pruning,
// quantization): kept in one place so every test counts the same way.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <set>

namespace firesight::test {

// How many different float values a tensor holds, compared bit for bit: a clustered layer must
// hold at most k, and rounding that merely looks equal when printed must still count as different.
inline std::size_t distinct_values(const torch::Tensor& t) {
    const auto c = t.detach().contiguous();
    const float* p = c.data_ptr<float>();
    std::set<std::uint32_t> bits;
    for (std::int64_t i = 0; i < c.numel(); ++i) {
        std::uint32_t b;
        std::memcpy(&b, p + i, sizeof b);
        bits.insert(b);
    }
    return bits.size();
}

}  // namespace firesight::test
