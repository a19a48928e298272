// Backend::Auto, the default: which backend a session resolves it to for f32 and int8 graphs, that
// it computes what that backend computes, and that firesight-run reports the resolved name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "firesight/engine/session.h"
#include "firesight/engine/format.h"
#include "firesight/builder/quantize.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

Graph small_classifier() {
    testing::GraphMaker m(31);
    auto x = m.input({1, 9, 9, 3});
    auto a = m.conv(x, 16, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto b = m.depthwise(a, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto c = m.conv(b, 12, 1, 1, {0, 0, 0, 0});
    auto l = m.fc(m.pool(c), 3);
    m.g.outputs = {m.softmax(l), l};
    m.g.metadata.class_names = {"fire", "neutral", "smoke"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 9;
    return m.g;
}

std::vector<float> sample_input(int batch) { return testing::GraphMaker(5).random(static_cast<std::size_t>(9 * 9 * 3 * batch)); }

Graph int8_classifier() {
    Graph g = small_classifier();
    const auto input = sample_input(2);
    quantize_int8(g, testing::minmax_ranges(g, {input}, 2));
    return g;
}

Backend float_backend() { return backend_available(Backend::Xnnpack) ? Backend::Xnnpack : Backend::Reference; }

TEST(AutoBackend, IsTheDefault) { EXPECT_EQ(SessionOptions{}.backend, Backend::Auto); }

TEST(AutoBackend, FloatGraphRunsOnXnnpack) {
    Session s(Engine::from_graph(small_classifier()));
    EXPECT_EQ(s.options().backend, Backend::Auto);
    EXPECT_EQ(s.backend(), float_backend()) << backend_name(s.backend());
}

TEST(AutoBackend, FloatGraphOnSeveralThreadsRunsFusedOnX86) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "this build has no xnnpack";
    const auto e = Engine::from_graph(small_classifier());
#if defined(__x86_64__)
    const Backend want = Backend::XnnpackFused;
#else
    const Backend want = Backend::Xnnpack;
#endif
    EXPECT_EQ(Session(e, {Backend::Auto, 2}).backend(), want) << backend_name(Session(e, {Backend::Auto, 2}).backend());
    EXPECT_EQ(Session(e, {Backend::Auto, 1}).backend(), Backend::Xnnpack);
    // int8 graphs are not fused: native-int8 where VNNI is, else xnnpack, at any thread count.
    EXPECT_NE(Session(Engine::from_graph(int8_classifier()), {Backend::Auto, 2}).backend(), Backend::XnnpackFused);
}

TEST(AutoBackend, Int8GraphRunsOnNativeInt8WhereVnniIsPresent) {
    if (!native_int8_fast())
        GTEST_SKIP() << "this CPU has no AVX512-VNNI: auto gives int8 graphs to xnnpack here, since native-int8 would "
                        "run its reference kernels";
    Session s(Engine::from_graph(int8_classifier()));
    EXPECT_EQ(s.backend(), Backend::NativeInt8) << backend_name(s.backend());
}

TEST(AutoBackend, Int8GraphAvoidsNativeInt8WithoutVnni) {
    if (native_int8_fast()) GTEST_SKIP() << "this CPU has AVX512-VNNI, so auto rightly picks native-int8 for int8 graphs";
    Session s(Engine::from_graph(int8_classifier()));
    EXPECT_EQ(s.backend(), float_backend()) << backend_name(s.backend());
}

TEST(AutoBackend, ExplicitBackendsAreKept) {
    const Graph f32 = small_classifier(), q8 = int8_classifier();
    for (auto b : {Backend::Reference, Backend::Xnnpack, Backend::NativeInt8, Backend::XnnpackFused}) {
        EXPECT_EQ(resolve_backend(b, f32, 2), b) << backend_name(b);
        EXPECT_EQ(resolve_backend(b, q8, 2), b) << backend_name(b);
    }
    Session s(Engine::from_graph(q8), {Backend::Reference, 1});
    EXPECT_EQ(s.backend(), Backend::Reference);
}

// Auto must be a choice of backend, nothing more: the same bytes as the backend it resolved to.
TEST(AutoBackend, ResultsEqualTheResolvedBackends) {
    for (int threads : {1, 2}) {
        for (const Graph& g : {small_classifier(), int8_classifier()}) {
            auto e = Engine::from_graph(g);
            Session automatic(e, {Backend::Auto, threads});
            Session explicit_backend(e, {automatic.backend(), threads});
            ASSERT_NE(automatic.backend(), Backend::Auto);
            for (int batch : {1, 2}) {
                const auto input = sample_input(batch);
                const auto a = automatic.run(input, batch);
                const auto b = explicit_backend.run(input, batch);
                ASSERT_EQ(a.size(), b.size());
                for (std::size_t k = 0; k < a.size(); ++k) {
                    const auto n = static_cast<std::size_t>(automatic.output_size(static_cast<int>(k)) * batch);
                    EXPECT_EQ(std::memcmp(a[k], b[k], n * sizeof(float)), 0) << "output " << k << ", batch " << batch << ", "
                                                                             << backend_name(automatic.backend()) << ", threads " << threads;
                }
            }
        }
    }
}

TEST(AutoBackend, NamesRoundTrip) {
    for (auto b : {Backend::Auto, Backend::Reference, Backend::Xnnpack, Backend::NativeInt8, Backend::XnnpackFused})
        EXPECT_EQ(parse_backend(backend_name(b)), b) << backend_name(b);
    EXPECT_STREQ(backend_name(Backend::Auto), "auto");
    EXPECT_TRUE(backend_available(Backend::Auto));
}

TEST(AutoBackend, UnknownNameIsAnErrorListingTheChoices) {
    for (const char* name : {"AUTO", "", "native_int8", "gpu"}) {
        try {
            parse_backend(name);
            ADD_FAILURE() << "'" << name << "' was accepted";
        } catch (const Error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find(std::string("'") + name + "'"), std::string::npos) << what;
            EXPECT_NE(what.find("auto"), std::string::npos) << what;
        }
    }
}

std::string run_cli() { return test::program_command(test::binary_dir() / "apps" / "firesight-run" / "firesight-run"); }

TEST(AutoBackend, FiresightRunReportsTheResolvedBackend) {
    test::TempDir dir;
    const Graph q8 = int8_classifier();
    save_engine(q8, dir / "q8.fse");
    const std::string model = test::shell_quote((dir / "q8.fse").string());
    const auto r = test::run_command(run_cli() + " --model " + model + " --bench 3 --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto line = r.out.substr(r.out.find('{'));
    const auto j = nlohmann::json::parse(line.substr(0, line.find('\n')));
    EXPECT_EQ(j.at("backend").get<std::string>(), backend_name(resolve_backend(Backend::Auto, q8))) << r.out;
    EXPECT_NE(r.out.find(std::string("(") + backend_name(resolve_backend(Backend::Auto, q8)) + ", 1 threads)"), std::string::npos)
        << "the load message names the resolved backend: " << r.out;

    const auto help = test::run_command(run_cli() + " --help");
    EXPECT_NE(help.out.find("auto (default"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace firesight::engine
