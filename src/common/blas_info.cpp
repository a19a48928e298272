#include "firesight/common/blas_info.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <filesystem>

namespace firesight {

namespace {

std::string real_path(const char* p) {
    std::error_code ec;
    auto r = std::filesystem::canonical(p, ec);
    return ec ? std::string(p) : r.string();
}

int visit(dl_phdr_info* info, size_t, void* data) {
    auto* found = static_cast<std::string*>(data);
    const std::string name = info->dlpi_name ? info->dlpi_name : "";
    const auto base = name.substr(name.find_last_of('/') + 1);
    // libblas.so.3 is what libtorch asks for; prefer it over libopenblas.so.0, which LAPACK may pull in.
    if (base.rfind("libblas.so", 0) == 0) {
        *found = real_path(name.c_str());
        return 1;
    }
    if (base.rfind("libopenblas.so", 0) == 0 && found->empty()) *found = real_path(name.c_str());
    return 0;
}

}  // namespace

std::string blas_variant_of_path(const std::string& path) {
    if (path.empty()) return "none";
    for (const char* v : {"openblas-pthread", "openblas-openmp", "openblas-serial"})
        if (path.find(v) != std::string::npos) return v;
    // Debian's reference BLAS (package libblas3) lives in .../blas/libblas.so.3.
    if (path.find("/blas/libblas.so") != std::string::npos) return "reference";
    return "other";
}

BlasInfo loaded_blas() {
    BlasInfo b;
    dl_iterate_phdr(visit, &b.path);
    b.variant = blas_variant_of_path(b.path);
    using ConfigFn = const char* (*)();
    // Only when libblas.so.3 is OpenBLAS: LAPACK may load libopenblas.so.0 beside the reference BLAS.
    if (b.variant.rfind("openblas", 0) == 0)
        if (auto fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) b.config = fn();
    return b;
}

BlasInfo report_blas(std::FILE* out) {
    const auto b = loaded_blas();
    if (b.variant == "none") return b;  // nothing here uses BLAS
    std::fprintf(out, "BLAS: %s%s%s (%s)\n", b.variant.c_str(), b.config.empty() ? "" : ", ", b.config.c_str(), b.path.c_str());
    if (b.is_reference())
        std::fprintf(out, "warning: libtorch runs on Debian's reference BLAS, several times slower: install libopenblas0-pthread (scripts/deps.txt)\n");
    return b;
}

}  // namespace firesight
