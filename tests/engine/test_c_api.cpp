// The C API (include/firesight_runtime.h) from a C program linked to libfiresight_runtime.so, against
// the C++ Session on the same engine and image.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

#include "firesight/common/fileio.h"
#include "firesight/engine/format.h"
#include "firesight/engine/preprocess.h"
#include "firesight/engine/session.h"
#include "firesight_runtime.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

Graph small_classifier() {
    testing::GraphMaker m(21);
    auto x = m.input({1, 16, 16, 3});
    auto c = m.conv(x, 8, 3, 2, {1, 1, 1, 1}, Activation::Relu6);
    auto l = m.fc(m.pool(c), 3);
    m.g.outputs = {m.softmax(l), l};
    m.g.metadata.class_names = {"fire", "neutral", "smoke"};
    m.g.metadata.size = 16;
    m.g.metadata.resize_shorter = 18;
    return m.g;
}

TEST(CApi, CProgramGetsTheSessionsProbabilities) {
    test::TempDir dir;
    const Graph g = small_classifier();
    save_engine(g, dir / "m.fse");
    // The probe's image: 37x23, rows of 116 bytes.
    const int w = 37, h = 23;
    const std::size_t stride = w * 3 + 5;
    std::vector<std::uint8_t> rgb(stride * h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) rgb[y * stride + x * 3 + c] = static_cast<std::uint8_t>((x * 7 + y * 13 + c * 50) & 255);
    Session s(Engine::load(dir / "m.fse"), {Backend::Reference, 1});
    const auto p = s.probabilities(preprocess_rgb(rgb.data(), w, h, stride, g.metadata))[0];

    const auto r = test::run_command(test::program_command(test::binary_dir() / "tests" / "engine" / "c_api_probe") + " " +
                                     test::shell_quote((dir / "m.fse").string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("backend reference\ninput 16\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nok\n"), std::string::npos) << r.out;
    std::istringstream lines(r.out);
    std::string word, name;
    std::size_t k = 0;
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("class ", 0) != 0) continue;
        float prob = 0.f;
        std::istringstream(line) >> word >> name >> prob;
        ASSERT_LT(k, p.size()) << r.out;
        EXPECT_EQ(name, g.metadata.class_names[k]);
        EXPECT_NEAR(prob, p[k], 1e-7f) << name;  // printed with 9 significant digits
        ++k;
    }
    EXPECT_EQ(k, p.size()) << r.out;
}

TEST(CApi, RefusesATruncatedEngineWithTheReason) {
    test::TempDir dir;
    save_engine(small_classifier(), dir / "m.fse");
    const auto bytes = read_file_bytes(dir / "m.fse");
    {
        std::FILE* f = std::fopen((dir / "cut.fse").c_str(), "wb");
        std::fwrite(bytes.data(), 1, bytes.size() / 2, f);
        std::fclose(f);
    }
    firesight_engine* e = nullptr;
    EXPECT_EQ(firesight_open((dir / "cut.fse").c_str(), nullptr, &e), FIRESIGHT_ERROR);
    EXPECT_EQ(e, nullptr);
    EXPECT_NE(std::string(firesight_last_error()).find("cut.fse"), std::string::npos) << firesight_last_error();
}

}  // namespace
}  // namespace firesight::engine
