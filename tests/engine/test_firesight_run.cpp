// firesight-run, the runtime-only CLI: raw tensors and PPM images in, the same top class as the
// Session API gives, and one clear error line for a bad input or engine file.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

std::string run_cli() { return test::program_command(test::binary_dir() / "apps" / "firesight-run" / "firesight-run"); }

Graph tiny_classifier() {
    testing::GraphMaker m(77);
    auto x = m.input({1, 8, 8, 3});
    auto c = m.conv(x, 6, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto l = m.fc(m.pool(c), 3);
    m.g.outputs = {m.softmax(l), l};
    m.g.metadata.class_names = {"fire", "neutral", "smoke"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 8;
    return m.g;
}

TEST(FiresightRun, RawTensorGivesTheSessionsTopClass) {
    test::TempDir dir;
    const auto g = tiny_classifier();
    save_engine(g, dir / "m.fse");
    testing::GraphMaker m(3);
    const auto x = m.random(8 * 8 * 3, -1.f, 1.f);
    {
        std::ofstream out(dir / "x.raw", std::ios::binary);
        out.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
    }
    Session s(Engine::from_graph(g), {Backend::Reference, 1});
    const auto p = s.probabilities(x)[0];
    const auto top = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
    for (const char* backend : {"reference", "xnnpack"}) {
        if (std::string(backend) == "xnnpack" && !backend_available(Backend::Xnnpack)) continue;
        const auto r = test::run_command(run_cli() + " --raw --top 1 --backend " + backend + " --model " +
                                         test::shell_quote((dir / "m.fse").string()) + " " + test::shell_quote((dir / "x.raw").string()));
        ASSERT_EQ(r.exit_code, 0) << r.out;
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * p[top]);
        EXPECT_NE(r.out.find("x.raw  " + g.metadata.class_names[top] + " " + pct), std::string::npos) << r.out;
    }
}

// --json prints every probability so that another machine's run can be compared bit for bit
// (scripts/arm64.sh compares x86 and arm64 this way).
TEST(FiresightRun, JsonHoldsEveryProbabilityExactly) {
    test::TempDir dir;
    const auto g = tiny_classifier();
    save_engine(g, dir / "m.fse");
    testing::GraphMaker m(4);
    const auto x = m.random(8 * 8 * 3, -1.f, 1.f);
    std::ofstream(dir / "x.raw", std::ios::binary).write(reinterpret_cast<const char*>(x.data()),
                                                         static_cast<std::streamsize>(x.size() * sizeof(float)));
    Session s(Engine::from_graph(g), {Backend::Reference, 1});
    const auto p = s.probabilities(x)[0];
    const auto r = test::run_command(run_cli() + " --raw --json --top 2 --backend reference --model " +
                                     test::shell_quote((dir / "m.fse").string()) + " " + test::shell_quote((dir / "x.raw").string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto line = r.out.find('{');  // after the "loaded ..." line on stderr
    ASSERT_NE(line, std::string::npos) << r.out;
    const auto j = nlohmann::json::parse(r.out.substr(line));
    EXPECT_EQ(j["input"], "x.raw");
    EXPECT_EQ(j["probabilities"].get<std::vector<float>>(), p);
    ASSERT_EQ(j["top"].size(), 2u);
    const auto top = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
    EXPECT_EQ(j["top"][0]["class"], g.metadata.class_names[top]);
    EXPECT_EQ(j["top"][0]["probability"].get<float>(), p[top]);
}

TEST(FiresightRun, DecodesPpmAndRefusesBadInputs) {
    test::TempDir dir;
    save_engine(tiny_classifier(), dir / "m.fse");
    {
        std::ofstream out(dir / "img.ppm", std::ios::binary);
        out << "P6\n# a comment\n12 10\n255\n";
        for (int i = 0; i < 12 * 10; ++i) out << static_cast<char>(i) << static_cast<char>(255 - i) << static_cast<char>(i * 7);
    }
    std::ofstream(dir / "bad.ppm", std::ios::binary) << "P6\n12 10\n255\nshort";
    const auto model = test::shell_quote((dir / "m.fse").string());
    auto ok = test::run_command(run_cli() + " --model " + model + " " + test::shell_quote((dir / "img.ppm").string()));
    EXPECT_EQ(ok.exit_code, 0) << ok.out;
    EXPECT_NE(ok.out.find("img.ppm  "), std::string::npos) << ok.out;
    auto bad = test::run_command(run_cli() + " --model " + model + " " + test::shell_quote((dir / "bad.ppm").string()));
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.out.find("bad.ppm: PPM pixel data is truncated"), std::string::npos) << bad.out;
    std::ofstream(dir / "junk.fse", std::ios::binary) << "not an engine at all, just some text to fill the header......"
                                                         "................................................................"
                                                         "................................................................";
    auto junk = test::run_command(run_cli() + " --model " + test::shell_quote((dir / "junk.fse").string()) + " " +
                                  test::shell_quote((dir / "img.ppm").string()));
    EXPECT_NE(junk.exit_code, 0);
    EXPECT_NE(junk.out.find("junk.fse: not a firesight engine file"), std::string::npos) << junk.out;
}

// The file: a 64x64 input with preprocess.size 2. firesight-run used to preprocess to 2x2
// and run the kernels past the end of that buffer; now the load refuses it in one line.
TEST(FiresightRun, RefusesAnEngineWhoseMetadataDisagreesWithItsInput) {
    test::TempDir dir;
    testing::GraphMaker m(5);
    auto l = m.fc(m.pool(m.input({1, 64, 64, 3})), 2);
    m.g.outputs = {m.softmax(l), l};
    m.g.metadata.class_names = {"fire", "neutral"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 2;
    save_engine(m.g, dir / "bad.fse");
    std::ofstream(dir / "img.ppm", std::ios::binary) << "P6\n2 2\n255\n" << std::string(12, '\x40');
    const auto r = test::run_command(run_cli() + " --backend reference --model " + test::shell_quote((dir / "bad.fse").string()) + " " +
                                     test::shell_quote((dir / "img.ppm").string()));
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("bad.fse: metadata disagrees with the graph: input 'input' is f32 1x64x64x3 but preprocess.size 2"),
              std::string::npos)
        << r.out;
}

}  // namespace
}  // namespace firesight::engine
