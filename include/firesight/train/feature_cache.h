// An append-only store of records on disk (the training images as small JPEGs, the frozen
// prefix's activations, the embeddings), read back by index with pread(): the data never sits in
// the process's heap or mappings, only in the kernel's page cache, so the trainer's resident
// memory does not grow with the number of images. The file is anonymous (O_TMPFILE, or created
// and unlinked at once): it disappears when the store is destroyed or the process dies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace firesight::train {

class DiskStore {
public:
    // An empty store with its file in `dir` (created if missing). Throws firesight::Error.
    explicit DiskStore(const std::filesystem::path& dir);
    ~DiskStore();
    DiskStore(DiskStore&& o) noexcept;
    DiskStore& operator=(DiskStore&& o) noexcept;
    DiskStore(const DiskStore&) = delete;
    DiskStore& operator=(const DiskStore&) = delete;

    // Appends one record; returns its index. Not to be called while others read.
    std::size_t append(const void* data, std::size_t bytes);
    std::size_t size() const { return index_.size(); }
    std::size_t record_bytes(std::size_t i) const;
    std::uint64_t total_bytes() const { return end_; }
    // Copies record i into out (record_bytes(i) bytes). Thread-safe among readers.
    void read(std::size_t i, void* out) const;
    std::vector<unsigned char> read(std::size_t i) const;

private:
    struct Entry {
        std::uint64_t offset = 0, bytes = 0;
    };
    int fd_ = -1;
    std::uint64_t end_ = 0;
    std::vector<Entry> index_;
    std::filesystem::path dir_;
};

}  // namespace firesight::train
