// Measuring an engine variant with the runtime itself: accuracy on preprocessed images through a
// Session, the file's size raw and gzipped, and latency / peak memory from a fresh firesight-run
// process (so one variant's packed weights and allocator state never colour the next one's figures).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/common/error.h"
#include "firesight/common/parallel.h"
#include "firesight/common/stats.h"
#include "firesight/data/engine_classifier.h"
#include "firesight/common/fileio.h"
#include "firesight/data/image.h"
#include "firesight/common/progress.h"
#include "firesight/eval/variants.h"

extern char** environ;

namespace fs = std::filesystem;

namespace firesight::eval {

namespace {

struct ChildOutput {
    int exit_code = -1;
    std::string out, err;
};

// Runs argv[0] with the arguments, without a shell (paths with spaces or quotes stay intact),
// and collects stdout and stderr separately. Both pipes are drained together so a chatty child
// can never block on a full pipe while we wait on the other.
ChildOutput run_child(const std::vector<std::string>& args) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        throw Error(std::string("pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        throw Error(args[0] + ": cannot start: " + std::strerror(rc));
    }
    ChildOutput r;
    std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
    std::array<std::string*, 2> sinks{&r.out, &r.err};
    int open_fds = 2;
    std::array<char, 4096> buf;
    while (open_fds > 0) {
        if (poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t n = read(fds[i].fd, buf.data(), buf.size());
            if (n > 0) {
                sinks[i]->append(buf.data(), static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

bool is_executable_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0;
}

std::string last_line(const std::string& text) {
    auto end = text.find_last_not_of("\n \t");
    if (end == std::string::npos) return {};
    const auto start = text.rfind('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

double number_field(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.contains(key) || !j[key].is_number()) throw Error(where + ": field '" + key + "' is missing or not a number");
    return j[key].get<double>();
}

}  // namespace

std::uint64_t gzip_size(const std::string& bytes) {
    z_stream z{};
    // windowBits 15 + 16 writes a gzip header and trailer, so the figure is what `gzip -9` would give.
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) throw Error("gzip: deflateInit2 failed");
    std::array<unsigned char, 1 << 16> out;
    std::uint64_t total = 0;
    std::size_t offset = 0;
    int rc = Z_OK;
    do {
        // zlib counts in uInt; feed large inputs in pieces.
        const std::size_t chunk = std::min<std::size_t>(bytes.size() - offset, 1u << 30);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + offset));
        z.avail_in = static_cast<uInt>(chunk);
        offset += chunk;
        const int flush = offset == bytes.size() ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = out.data();
            z.avail_out = static_cast<uInt>(out.size());
            rc = deflate(&z, flush);
            if (rc == Z_STREAM_ERROR) {
                deflateEnd(&z);
                throw Error("gzip: deflate failed");
            }
            total += out.size() - z.avail_out;
        } while (z.avail_out == 0);
    } while (offset < bytes.size());
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw Error("gzip: deflate did not finish");
    return total;
}

fs::path find_firesight_run() {
    if (const char* env = std::getenv("FIRESIGHT_RUN"); env && *env) {
        // An explicit choice is honoured or refused, never silently replaced by another binary.
        if (!is_executable_file(env))
            throw Error(std::string("firesight-run not found: $FIRESIGHT_RUN=") + env + " is not an executable file");
        return env;
    }
    std::vector<fs::path> tried;
    std::error_code ec;
    const auto self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        tried.push_back(self.parent_path() / "firesight-run");
        tried.push_back(self.parent_path().parent_path() / "firesight-run" / "firesight-run");  // build tree: apps/firesight/ vs apps/firesight-run/
    }
    for (const auto& p : tried)
        if (is_executable_file(p)) return p;
    std::string where;
    for (const auto& p : tried) where += (where.empty() ? "" : ", ") + p.string();
    throw Error("firesight-run not found (needed to time engine variants); tried " + where +
                "; build the firesight-run target or set $FIRESIGHT_RUN");
}

BenchFigures bench_engine(const fs::path& firesight_run, const fs::path& engine, int runs, int threads, const std::string& backend_name) {
    if (!is_executable_file(firesight_run))
        throw Error("firesight-run not found: " + firesight_run.string() + " is not an executable file");
    if (runs < 1) throw Error("bench: runs must be at least 1");
    const std::string backend = backend_name.empty() ? "auto" : backend_name;
    const auto r = run_child({firesight_run.string(), "--model", engine.string(), "--bench", std::to_string(runs), "--json",
                              "--threads", std::to_string(threads), "--backend", backend});
    if (r.exit_code != 0)
        throw Error(engine.string() + ": firesight-run --bench failed (exit " + std::to_string(r.exit_code) + "): " + last_line(r.err));
    const std::string line = last_line(r.out);
    const std::string where = "firesight-run --bench output for " + engine.string();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
        throw Error(where + ": not JSON: '" + line + "'");
    }
    BenchFigures b;
    b.load_ms = number_field(j, "load_ms", where);
    b.latency_ms = number_field(j, "latency_median_ms", where);
    b.latency_p90_ms = number_field(j, "latency_p90_ms", where);
    b.latency_min_ms = number_field(j, "latency_min_ms", where);
    b.peak_rss_mb = number_field(j, "peak_rss_mb", where);
    b.runs = static_cast<int>(number_field(j, "runs", where));
    b.backend = j.value("backend", backend);
    return b;
}

EvalImages load_eval_images(const fs::path& engine_path, const std::vector<std::string>& paths, const std::vector<int>& labels,
                            const std::vector<std::string>& classes, std::vector<std::string>* skipped) {
    if (paths.size() != labels.size())
        throw Error("evaluation images: " + std::to_string(paths.size()) + " paths but " + std::to_string(labels.size()) + " labels");
    const auto e = engine::Engine::load(engine_path);
    const auto& meta = e->metadata();
    const data::Preprocess pre = preprocessing_of(meta);
    EvalImages out;
    out.classes = classes.empty() ? meta.class_names : classes;
    const std::size_t per = static_cast<std::size_t>(pre.size) * static_cast<std::size_t>(pre.size) * 3;
    for (std::size_t i = 0; i < paths.size(); ++i)
        if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= out.classes.size())
            throw Error(paths[i] + ": label " + std::to_string(labels[i]) + " is not a class index (0.." +
                        std::to_string(out.classes.size()) + ")");
    // Decoded on every core, kept in the order given.
    std::vector<std::vector<float>> inputs(paths.size());
    std::vector<std::string> errors(paths.size());
    ProgressBar bar("decode", paths.size(), paths.size() > 200);
    std::atomic<std::size_t> done{0};
    parallel_for(paths.size(), worker_count(paths.size()), [&](std::size_t i, unsigned w) {
        try {
            const cv::Mat x = data::preprocess(data::decode_image(paths[i]), pre);
            if (!x.isContinuous() || x.total() * 3 != per) throw Error(paths[i] + ": preprocessing gave an unexpected size");
            const auto* p = x.ptr<float>();
            inputs[i].assign(p, p + per);
        } catch (const std::exception& err) {
            errors[i] = err.what();
        }
        ++done;
        if (w == 0) bar.update(done);
    });
    for (std::size_t i = 0; i < paths.size(); ++i) {
        if (!errors[i].empty()) {
            if (skipped) skipped->push_back(errors[i]);
            continue;
        }
        out.inputs.push_back(std::move(inputs[i]));
        out.labels.push_back(labels[i]);
        out.paths.push_back(paths[i]);
    }
    bar.finish();
    return out;
}

namespace {

// The backends an engine is timed on: the float one (XNNPACK where built), and native-int8 too for
// int8 engines. Debian's XNNPACK has no VNNI int8 kernels and native-int8 falls back to the
// reference kernels on CPUs without VNNI, so which serves an int8 engine best depends on the machine.
std::vector<engine::Backend> timing_backends(const engine::Engine& e) {
    bool int8 = false;
    for (const auto& t : e.graph().tensors) int8 = int8 || t.dtype == engine::DType::I8;
    std::vector<engine::Backend> out = {engine::backend_available(engine::Backend::Xnnpack) ? engine::Backend::Xnnpack
                                                                                            : engine::Backend::Reference};
    if (int8 && engine::backend_available(engine::Backend::NativeInt8)) out.push_back(engine::Backend::NativeInt8);
    return out;
}

}  // namespace

VariantResult evaluate_variant(const std::string& name, const nlohmann::json& settings, const fs::path& engine_path,
                               const EvalImages& images, int bench_runs) {
    if (images.inputs.size() != images.labels.size())
        throw Error("evaluate " + name + ": " + std::to_string(images.inputs.size()) + " images but " +
                    std::to_string(images.labels.size()) + " labels");
    // Find the timing binary before the slow part, so a missing one fails at once.
    if (bench_runs > 0) find_firesight_run();
    VariantResult r;
    r.name = name;
    r.settings = settings;
    r.engine = engine_path;

    const auto e = engine::Engine::load(engine_path);
    const auto& engine_classes = e->metadata().class_names;
    // Labels index the images' classes; the engine may order its classes differently, so match by name.
    const auto& image_classes = images.classes.empty() ? engine_classes : images.classes;
    std::vector<int> to_engine(image_classes.size(), -1);
    for (std::size_t i = 0; i < image_classes.size(); ++i)
        for (std::size_t j = 0; j < engine_classes.size(); ++j)
            if (image_classes[i] == engine_classes[j]) to_engine[i] = static_cast<int>(j);
    engine::SessionOptions opt;
    // The accuracy comes from the last candidate: native-int8 for int8 engines (its bytes equal the
    // int8 reference), else the float backend.
    opt.backend = timing_backends(*e).back();
    opt.threads = 1;
    const auto in = e->inputs().at(0);
    std::size_t per = 1;
    for (std::size_t i = 1; i < in.shape.size(); ++i) per *= static_cast<std::size_t>(in.shape[i]);
    const std::size_t n = images.inputs.size();
    std::vector<int> truth(n), predicted(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::string where = i < images.paths.size() ? images.paths[i] : "image " + std::to_string(i);
        const int label = images.labels[i];
        if (label < 0 || static_cast<std::size_t>(label) >= image_classes.size())
            throw Error(where + ": label " + std::to_string(label) + " is not a class index");
        if (to_engine[static_cast<std::size_t>(label)] < 0)
            throw Error(where + ": class '" + image_classes[static_cast<std::size_t>(label)] + "' is not a class of " + engine_path.string());
        if (images.inputs[i].size() != per)
            throw Error(where + ": " + std::to_string(images.inputs[i].size()) + " input values, " + engine_path.string() + " expects " +
                        std::to_string(per));
        truth[i] = to_engine[static_cast<std::size_t>(label)];
    }
    // One single-threaded session per core, each taking the next image: batch-1 answers (the same
    // bytes as one session gives), in about half the time on 2 cores.
    const unsigned workers = worker_count(n);
    std::vector<std::unique_ptr<engine::Session>> sessions;
    for (unsigned w = 0; w < workers; ++w) sessions.push_back(std::make_unique<engine::Session>(e, opt));
    parallel_for(n, workers, [&](std::size_t i, unsigned w) {
        // The rule `firesight eval` uses by default (no fire threshold): argmax, so the figures agree.
        predicted[i] = decide(sessions[w]->probabilities(images.inputs[i])[0], -1, -1);
    });
    r.metrics = compute_metrics(engine_classes, truth, predicted);

    const auto bytes = read_file_bytes(engine_path);
    r.size_bytes = bytes.size();
    r.gzip_bytes = gzip_size(std::string(bytes.begin(), bytes.end()));

    r.backend = engine::backend_name(opt.backend);
    if (bench_runs > 0) {
        std::vector<VariantResult*> one = {&r};
        time_variants_interleaved(one, 1, bench_runs);
    }
    return r;
}

void time_variants_interleaved(std::vector<VariantResult*>& variants, int rounds, int runs) {
    if (variants.empty()) return;
    if (rounds < 1 || runs < 1) throw Error("timing: rounds and runs must be at least 1");
    const fs::path runner = find_firesight_run();
    struct Series {
        std::string backend;
        std::vector<double> median, p90;
        double rss = 0;
    };
    std::vector<std::vector<Series>> series(variants.size());
    for (std::size_t i = 0; i < variants.size(); ++i)
        for (const auto b : timing_backends(*engine::Engine::load(variants[i]->engine)))
            series[i].push_back({engine::backend_name(b), {}, {}, 0});
    for (int round = 0; round < rounds; ++round) {
        for (std::size_t k = 0; k < variants.size(); ++k) {
            const std::size_t i = (k + static_cast<std::size_t>(round)) % variants.size();  // rotated: no variant always first
            for (auto& s : series[i]) {
                const auto f = bench_engine(runner, variants[i]->engine, runs, 1, s.backend);
                s.median.push_back(f.latency_ms);
                s.p90.push_back(f.latency_p90_ms);
                s.rss = std::max(s.rss, f.peak_rss_mb);
            }
        }
        // A backend more than kClearlySlower behind an engine's fastest after the first round is
        // not timed again: it cannot win, and int8 engines would otherwise be timed twice a round.
        constexpr double kClearlySlower = 1.3;
        if (round == 0)
            for (auto& ss : series)
                if (ss.size() > 1) {
                    double fastest = ss.front().median.front();
                    for (const auto& s : ss) fastest = std::min(fastest, s.median.front());
                    std::erase_if(ss, [&](const Series& s) { return s.median.front() > kClearlySlower * fastest; });
                }
    }
    for (std::size_t i = 0; i < variants.size(); ++i) {
        const Series* best = nullptr;
        for (const auto& s : series[i])
            if (!best || percentile(s.median, 0.5) < percentile(best->median, 0.5)) best = &s;
        auto& r = *variants[i];
        r.latency_ms = percentile(best->median, 0.5);
        r.latency_p90_ms = percentile(best->p90, 0.5);
        r.peak_rss_mb = best->rss;
        r.backend = best->backend;
    }
}

void set_accuracy_drops(std::vector<VariantResult>& v, const std::string& reference) {
    const auto ref = std::find_if(v.begin(), v.end(), [&](const VariantResult& r) { return r.name == reference; });
    if (ref == v.end()) throw Error("accuracy drop: no variant named '" + reference + "'");
    const double base = ref->metrics.accuracy;
    for (auto& r : v) r.accuracy_drop = 100.0 * (base - r.metrics.accuracy);
}

std::vector<std::size_t> pareto_front(const std::vector<VariantResult>& v) {
    std::vector<std::size_t> front;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!(v[i].latency_ms > 0)) continue;  // not timed: no place on a latency axis
        bool dominated = false;
        for (std::size_t j = 0; j < v.size() && !dominated; ++j) {
            if (j == i || !(v[j].latency_ms > 0)) continue;
            const double ai = v[i].metrics.accuracy, aj = v[j].metrics.accuracy;
            const double li = v[i].latency_ms, lj = v[j].latency_ms;
            dominated = aj >= ai && lj <= li && (aj > ai || lj < li);
        }
        if (!dominated) front.push_back(i);
    }
    std::sort(front.begin(), front.end(), [&](std::size_t a, std::size_t b) {
        return v[a].latency_ms != v[b].latency_ms ? v[a].latency_ms < v[b].latency_ms : a < b;
    });
    return front;
}

// ---- JSON -------------------------------------------------------------------------------------

Metrics metrics_from_json(const nlohmann::json& j) {
    try {
        Metrics m;
        m.classes = j.at("classes").get<std::vector<std::string>>();
        m.confusion = j.at("confusion").get<std::vector<std::vector<int>>>();
        m.accuracy = j.at("accuracy").get<double>();
        m.balanced_accuracy = j.at("balanced_accuracy").get<double>();
        m.total = j.value("total", 0);
        if (m.confusion.size() != m.classes.size()) throw Error("metrics: confusion has " + std::to_string(m.confusion.size()) +
                                                                " rows for " + std::to_string(m.classes.size()) + " classes");
        for (const auto& row : m.confusion)
            if (row.size() != m.classes.size()) throw Error("metrics: a confusion row has " + std::to_string(row.size()) + " entries");
        const auto& per = j.at("per_class");
        m.per_class.resize(m.classes.size());
        for (std::size_t c = 0; c < m.classes.size(); ++c) {
            const auto& p = per.at(m.classes[c]);
            m.per_class[c].precision = p.at("precision").get<double>();
            m.per_class[c].recall = p.at("recall").get<double>();
            m.per_class[c].f1 = p.at("f1").get<double>();
            m.per_class[c].support = p.at("support").get<int>();
        }
        return m;
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("metrics JSON: ") + e.what());
    }
}

nlohmann::json variant_to_json(const VariantResult& r) {
    return {{"name", r.name},
            {"settings", r.settings},
            {"engine", r.engine.string()},
            {"metrics", to_json(r.metrics)},
            {"size_bytes", r.size_bytes},
            {"gzip_bytes", r.gzip_bytes},
            {"latency_ms", r.latency_ms},
            {"latency_p90_ms", r.latency_p90_ms},
            {"peak_rss_mb", r.peak_rss_mb},
            {"accuracy_drop", r.accuracy_drop},
            {"backend", r.backend}};
}

VariantResult variant_from_json(const nlohmann::json& j) {
    const std::string who = j.is_object() && j.contains("name") && j["name"].is_string() ? "variant '" + j["name"].get<std::string>() + "'"
                                                                                       : std::string("variant");
    try {
        VariantResult r;
        r.name = j.at("name").get<std::string>();
        r.settings = j.value("settings", nlohmann::json::object());
        r.engine = j.at("engine").get<std::string>();
        r.metrics = metrics_from_json(j.at("metrics"));
        r.size_bytes = j.at("size_bytes").get<std::uint64_t>();
        r.gzip_bytes = j.at("gzip_bytes").get<std::uint64_t>();
        r.latency_ms = j.at("latency_ms").get<double>();
        r.latency_p90_ms = j.at("latency_p90_ms").get<double>();
        r.peak_rss_mb = j.at("peak_rss_mb").get<double>();
        r.accuracy_drop = j.at("accuracy_drop").get<double>();
        r.backend = j.value("backend", "");  // absent in results written before it was recorded
        return r;
    } catch (const nlohmann::json::exception& e) {
        throw Error(who + " in results JSON: " + e.what());
    } catch (const Error& e) {
        throw Error(who + " in results JSON: " + e.what());
    }
}

nlohmann::json variants_json(const std::vector<VariantResult>& v, const std::string& chosen) {
    nlohmann::json arr = nlohmann::json::array(), front = nlohmann::json::array();
    for (const auto& r : v) arr.push_back(variant_to_json(r));
    for (auto i : pareto_front(v)) front.push_back(v[i].name);
    return {{"chosen", chosen}, {"variants", arr}, {"pareto_front", front}};
}

std::vector<VariantResult> variants_from_json(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("variants") || !j["variants"].is_array())
        throw Error("results JSON: no 'variants' array");
    std::vector<VariantResult> v;
    for (const auto& e : j["variants"]) v.push_back(variant_from_json(e));
    return v;
}

}  // namespace firesight::eval
