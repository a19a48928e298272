// `firesight optimize` as a user runs it, on a tiny run: the outputs and the printed table, and
// one clear error line for bad options and inputs.
#include <nlohmann/json.hpp>

#include "firesight/common/fileio.h"
#include "optimize_fixture.h"

using namespace firesight;
using test::run_command;
using test::shell_quote;

namespace {

class OptimizeCli : public ::testing::Test {
protected:
    void SetUp() override {
        FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
        test::write_synthetic_images(dir / "data", 10);
        test::write_tiny_run(dir / "data", dir / "run");
    }
    std::string cmd(const std::string& extra) const {
        return test::firesight_cli() + " optimize --model " + shell_quote((dir / "run").string()) + " --data " +
               shell_quote((dir / "data").string()) + " --out " + shell_quote((dir / "out").string()) + " " + extra;
    }
    void expect_one_error_line(const std::string& extra, const std::string& words) {
        const auto r = run_command(cmd(extra));
        EXPECT_NE(r.exit_code, 0) << r.out;
        EXPECT_LT(r.exit_code, 128) << "crashed: " << r.out;
        EXPECT_EQ(r.out.rfind("firesight: error: ", 0), 0u) << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
        EXPECT_NE(r.out.find(words), std::string::npos) << r.out;
    }
    test::TempDir dir;
};

}  // namespace

TEST_F(OptimizeCli, WritesModelResultsAndReportAndPrintsTheTable) {
    const auto r = run_command(cmd("--quiet --sparsity 0.5 --clusters 8 --methods auto --channel-fraction 0 --finetune-steps 8 "
                                   "--finetune-batch 4 --calibration 6 --bench-runs 2 --target size --max-accuracy-drop 100"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    for (const char* f : {"model.fse", "results.json", "report.html", "variants/fp32.fse", "variants/prune50-k8-int8.fse"})
        EXPECT_TRUE(std::filesystem::exists(dir / "out" / f)) << f;
    for (const char* v : {"fp32", "int8", "prune50", "prune50-k8-int8"}) EXPECT_NE(r.out.find(v), std::string::npos) << v;
    EXPECT_NE(r.out.find("chosen: "), std::string::npos) << r.out;
    const auto j = nlohmann::json::parse(read_file_text(dir / "out" / "results.json"));
    // With a budget of 100 points and target size, the smallest engine wins.
    std::string smallest;
    std::uint64_t best = UINT64_MAX;
    for (const auto& v : j["variants"])
        if (v["size_bytes"].get<std::uint64_t>() < best) best = v["size_bytes"].get<std::uint64_t>(), smallest = v["name"];
    EXPECT_EQ(j["chosen"], smallest);
    EXPECT_NE(r.out.find("chosen: " + smallest), std::string::npos) << r.out;
}

TEST_F(OptimizeCli, BadOptionsAreOneClearLine) {
    expect_one_error_line("--max-accuracy-drop -1", "--max-accuracy-drop");
    expect_one_error_line("--target speed", "latency, size");
    expect_one_error_line("--sparsity 0.5,1.2", "--sparsity");
    expect_one_error_line("--clusters 1", "--clusters");
    expect_one_error_line("--structured 1", "--structured");
    expect_one_error_line("--structured-tail 1", "--structured-tail");
    expect_one_error_line("--structured-embedding 1", "--structured-embedding");
    expect_one_error_line("--structured-stem 1.5", "--structured-stem");
    expect_one_error_line("--methods auto,kl", "kl");
    const auto r = run_command(test::firesight_cli() + " optimize --model " + shell_quote((dir / "missing").string()) + " --data " +
                               shell_quote((dir / "data").string()) + " --out " + shell_quote((dir / "o2").string()));
    EXPECT_EQ(r.out.rfind("firesight: error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("missing"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "out" / "model.fse"));
}
