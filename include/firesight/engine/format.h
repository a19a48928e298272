// The engine file (.fse): writing a graph, and loading one with every field checked (layout in
// docs/engine-format.md).
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "firesight/engine/ir.h"

namespace firesight::engine {

std::string serialize(const Graph& g);
void save_engine(const Graph& g, const std::filesystem::path& path);
// Parses an engine file held in memory. The weights of the returned graph point into `bytes`,
// which `keep_alive` must keep valid (pass the owner of the memory).
Graph parse_engine(const std::uint8_t* bytes, std::size_t size, std::shared_ptr<const void> keep_alive,
                   const std::string& name = "engine");
// Memory-maps the file (read-only) and parses it.
Graph load_graph(const std::filesystem::path& path);

// The CRC-32 (IEEE 802.3) the file's header and sections carry.
std::uint32_t crc32(const void* data, std::size_t size);

}  // namespace firesight::engine
