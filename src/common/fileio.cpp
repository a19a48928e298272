#include "firesight/common/fileio.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>

#include "firesight/common/error.h"

namespace firesight {

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw Error(path.string() + ": no such file");
    if (std::filesystem::is_directory(path, ec))
        throw Error(path.string() + ": is a directory, expected a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(in.tellg());
    in.seekg(0);
    std::vector<std::uint8_t> bytes(size);
    if (size && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
        throw Error(path.string() + ": read failed");
    return bytes;
}

std::string read_file_text(const std::filesystem::path& path) {
    auto bytes = read_file_bytes(path);
    return std::string(bytes.begin(), bytes.end());
}

void write_file_atomic(const std::filesystem::path& path, std::string_view data) {
    const auto tmp = path.string() + ".tmp." + std::to_string(::getpid());
    {
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        if (!f) throw Error(tmp + ": cannot create: " + std::strerror(errno));
        const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size() &&
                        std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
        std::fclose(f);
        if (!ok) {
            std::remove(tmp.c_str());
            throw Error(tmp + ": write failed");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::remove(tmp.c_str());
        throw Error(path.string() + ": rename failed: " + ec.message());
    }
}

}  // namespace firesight
