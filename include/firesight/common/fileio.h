// Small file helpers shared by every component: whole-file reads with clear errors, and
// atomic writes (temp file + rename) so a crash never leaves a half-written file behind.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace firesight {

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);
std::string read_file_text(const std::filesystem::path& path);

// Writes to PATH.tmp.<pid> in the same directory, flushes, then renames over PATH.
void write_file_atomic(const std::filesystem::path& path, std::string_view data);

}  // namespace firesight
