#include "firesight/train/feature_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include "firesight/common/error.h"

namespace firesight::train {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

DiskStore::DiskStore(const std::filesystem::path& dir) : dir_(dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
#ifdef O_TMPFILE
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd_ < 0) {  // file systems without O_TMPFILE: a unique name, unlinked at once
        std::random_device rd;
        for (int attempt = 0; attempt < 20 && fd_ < 0; ++attempt) {
            const auto name = dir / (".firesight-cache-" + std::to_string(rd()) + std::to_string(rd()));
            fd_ = ::open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
            if (fd_ >= 0) ::unlink(name.c_str());
            else if (errno != EEXIST) break;
        }
    }
    if (fd_ < 0) throw Error(dir.string() + ": cannot create the training cache file: " + errno_text());
}

DiskStore::~DiskStore() {
    if (fd_ >= 0) ::close(fd_);
}

DiskStore::DiskStore(DiskStore&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), end_(std::exchange(o.end_, 0)), index_(std::move(o.index_)), dir_(std::move(o.dir_)) {}

DiskStore& DiskStore::operator=(DiskStore&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
        end_ = std::exchange(o.end_, 0);
        index_ = std::move(o.index_);
        dir_ = std::move(o.dir_);
    }
    return *this;
}

std::size_t DiskStore::append(const void* data, std::size_t bytes) {
    if (fd_ < 0) throw Error("training cache: the store was moved from");
    const auto* p = static_cast<const char*>(data);
    std::uint64_t off = end_;
    for (std::size_t done = 0; done < bytes;) {
        const auto n = ::pwrite(fd_, p + done, bytes - done, static_cast<off_t>(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(dir_.string() + ": cannot write the training cache (" + std::to_string(end_ >> 20) + " MB so far): " + errno_text());
        }
        done += static_cast<std::size_t>(n);
    }
    index_.push_back({off, bytes});
    end_ += bytes;
    return index_.size() - 1;
}

std::size_t DiskStore::record_bytes(std::size_t i) const {
    if (i >= index_.size()) throw Error("training cache: no record " + std::to_string(i) + " of " + std::to_string(index_.size()));
    return static_cast<std::size_t>(index_[i].bytes);
}

void DiskStore::read(std::size_t i, void* out) const {
    const auto bytes = record_bytes(i);
    auto* p = static_cast<char*>(out);
    for (std::size_t done = 0; done < bytes;) {
        const auto n = ::pread(fd_, p + done, bytes - done, static_cast<off_t>(index_[i].offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw Error(dir_.string() + ": cannot read the training cache: " + (n < 0 ? errno_text() : std::string("file truncated")));
        done += static_cast<std::size_t>(n);
    }
}

std::vector<unsigned char> DiskStore::read(std::size_t i) const {
    std::vector<unsigned char> out(record_bytes(i));
    read(i, out.data());
    return out;
}

}  // namespace firesight::train
