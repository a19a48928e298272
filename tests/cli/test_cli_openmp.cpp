// firesight's libtorch commands start again with OMP_WAIT_POLICY=PASSIVE (common/openmp_env.h).
// libgomp itself is asked what it read: OMP_DISPLAY_ENV=verbose prints its settings when it is
// loaded, once per start, and GOMP_SPINCOUNT is 0 only under the passive policy.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

using namespace firesight;

namespace {

// The spin count libgomp printed last (the process that ran the command), or "" when none.
std::string last_spin_count(const std::string& env, const std::string& command) {
    const auto r = test::run_command("env -u OMP_WAIT_POLICY " + env + " OMP_DISPLAY_ENV=verbose " + test::firesight_cli() + " " +
                                     command + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    const std::string key = "GOMP_SPINCOUNT = '";
    const auto at = r.out.rfind(key);
    if (at == std::string::npos) return "";
    const auto from = at + key.size();
    return r.out.substr(from, r.out.find('\'', from) - from);
}

TEST(CliOpenmp, LibtorchCommandsRunWithPassiveWaiting) {
    for (const char* command : {"train", "optimize", "eval"}) {
        const auto spin = last_spin_count("", command);
        if (spin.empty()) GTEST_SKIP() << "this build's OpenMP runtime is not libgomp (no GOMP_SPINCOUNT shown)";
        EXPECT_EQ(spin, "0") << command;
    }
}

TEST(CliOpenmp, TheUsersChoiceIsKeptAndOtherCommandsStartOnce) {
    const auto active = last_spin_count("OMP_WAIT_POLICY=ACTIVE", "optimize");
    if (active.empty()) GTEST_SKIP() << "this build's OpenMP runtime is not libgomp";
    EXPECT_NE(active, "0");
    EXPECT_NE(last_spin_count("", "predict"), "0");
}

}  // namespace
