// Which BLAS the process really loaded. Debian's libtorch links libblas.so.3, which the
// alternatives system points at whatever BLAS is installed: Debian's reference BLAS, unless an
// optimized one (OpenBLAS) is. Training and libtorch inference are several times slower on the
// reference one (docs/blas.md), and nothing else says so, hence this check.
#pragma once
#include <cstdio>
#include <string>

namespace firesight {

struct BlasInfo {
    std::string path;     // real path of the loaded libblas.so.3 (or libopenblas.so.0); empty: none loaded
    std::string variant;  // "openblas-pthread", "openblas-openmp", "openblas-serial", "reference", "other", "none"
    std::string config;   // openblas_get_config() when OpenBLAS is loaded
    bool is_reference() const { return variant == "reference"; }
};

// What a BLAS library's real path says it is (Debian's layout): "openblas-pthread", ...,
// "reference" for .../blas/libblas.so.3, "other", or "none" for an empty path.
std::string blas_variant_of_path(const std::string& real_path);

// Inspects the shared objects loaded into this process. Call it after libtorch is loaded (any
// program linking libtorch has it from the start).
BlasInfo loaded_blas();

// One line naming the BLAS, and a second one-line warning when it is the reference BLAS,
// written to `out` (stderr by default). Returns the info.
BlasInfo report_blas(std::FILE* out = stderr);

}  // namespace firesight
