// watch_soak_model: writes the small engine file bench/watch_soak.sh watches with, so a soak of
// tens of thousands of frames takes minutes on a small machine instead of hours with MobileNetV2.
// It is a real engine graph run by the real runtime, with hand-set weights that make it a colour
// detector: a 1x1 convolution scores every pixel (orange: high red, low blue -> "fire"), the
// scores are averaged over the 64x64 input and a softmax gives P(fire), P(neutral). An orange
// blob over a quarter of the frame or more gives P(fire) above 0.6; the grey-green scene ~0.07.
//
// usage: watch_soak_model OUT.fse
#include <cstdio>
#include <exception>

#include "firesight/engine/ir.h"
#include "firesight/engine/format.h"

using namespace firesight::engine;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT.fse\n", argv[0]);
        return 2;
    }
    try {
        Graph g;
        Tensor in;
        in.name = "input";
        in.shape = {1, 64, 64, 3};
        const auto x = g.add_tensor(in);
        g.inputs.push_back(x);
        // Inputs are (pixel - 127.5) / 127.5 in RGB. fire = 8 R - 8 B - 2, neutral = 0.
        const auto w = g.add_constant("colour.weight", {2, 1, 1, 3}, {8.f, 0.f, -8.f, 0.f, 0.f, 0.f});
        const auto b = g.add_constant("colour.bias", {2}, {-2.f, 0.f});
        auto act = [&](const char* name, std::vector<std::int32_t> shape) {
            Tensor t;
            t.name = name;
            t.shape = std::move(shape);
            return g.add_tensor(t);
        };
        const auto scores = act("scores", {1, 64, 64, 2}), pooled = act("pooled", {1, 2}), probs = act("probabilities", {1, 2});
        Op conv;
        conv.kind = OpKind::Conv2D;
        conv.inputs = {x, w, b};
        conv.outputs = {scores};
        Op pool;
        pool.kind = OpKind::GlobalAveragePool;
        pool.inputs = {scores};
        pool.outputs = {pooled};
        Op softmax;
        softmax.kind = OpKind::Softmax;
        softmax.inputs = {pooled};
        softmax.outputs = {probs};
        g.ops = {conv, pool, softmax};
        g.outputs = {probs};
        g.metadata.class_names = {"fire", "neutral"};
        g.metadata.size = 64;
        g.metadata.resize_shorter = 64;
        g.metadata.build_json = R"({"source": "bench/watch_soak_model: a hand-set colour detector for soak tests"})";
        validate(g);
        save_engine(g, argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "watch_soak_model: %s\n", e.what());
        return 1;
    }
    return 0;
}
