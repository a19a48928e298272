// Which BLAS libtorch really got: the check that train, optimize and bench print.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "firesight/common/blas_info.h"

using namespace firesight;

TEST(BlasInfo, NamesDebianLayouts) {
    EXPECT_EQ(blas_variant_of_path("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"), "openblas-pthread");
    EXPECT_EQ(blas_variant_of_path("/usr/lib/aarch64-linux-gnu/openblas-openmp/libblas.so.3"), "openblas-openmp");
    EXPECT_EQ(blas_variant_of_path("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"), "reference");
    EXPECT_EQ(blas_variant_of_path("/opt/intel/libmkl_rt.so"), "other");
    EXPECT_EQ(blas_variant_of_path(""), "none");
}

TEST(BlasInfo, FindsTheBlasLibtorchLoaded) {
    // A matrix product through libtorch, so the library is surely in use.
    const auto c = torch::ones({64, 64}).mm(torch::ones({64, 64}));
    ASSERT_FLOAT_EQ(c[0][0].item<float>(), 64.0f);
    const auto b = loaded_blas();
    ASSERT_FALSE(b.path.empty()) << "no libblas.so / libopenblas.so among the loaded objects";
    EXPECT_EQ(b.variant, blas_variant_of_path(b.path));
    if (b.variant.rfind("openblas", 0) == 0) {
        EXPECT_NE(b.config.find("OpenBLAS"), std::string::npos) << b.config;
    }
    // scripts/deps.txt installs OpenBLAS; under CI the reference BLAS means the list is wrong.
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") {
        EXPECT_FALSE(b.is_reference()) << b.path;
    }
}
