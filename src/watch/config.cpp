// `firesight watch --config firesight.toml`: the TOML config file, read with toml11 (Debian
// libtoml11-dev). Unknown keys and wrong types are errors naming the file and the key, so a typo
// never silently falls back to a default.
#include <toml.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/watch/watch.h"

namespace firesight::watch {

namespace {

using Value = toml::value;

struct Reader {
    std::string file;

    [[noreturn]] void fail(const std::string& key, const std::string& what) const { throw Error(file + ": " + key + ": " + what); }

    void only(const Value& table, const std::string& where, const std::set<std::string>& allowed) const {
        if (!table.is_table()) fail(where, "must be a table");
        for (const auto& [k, v] : table.as_table())
            if (!allowed.count(k)) fail(where.empty() ? k : where + "." + k, "unknown key");
    }
    double number(const Value& v, const std::string& key) const {
        if (v.is_integer()) return static_cast<double>(v.as_integer());
        if (v.is_floating()) return v.as_floating();
        fail(key, "must be a number");
    }
    int integer(const Value& v, const std::string& key) const {
        if (!v.is_integer()) fail(key, "must be an integer");
        return static_cast<int>(v.as_integer());
    }
    std::string string(const Value& v, const std::string& key) const {
        if (!v.is_string()) fail(key, "must be a string");
        return v.as_string().str;
    }
    bool boolean(const Value& v, const std::string& key) const {
        if (!v.is_boolean()) fail(key, "must be true or false");
        return v.as_boolean();
    }
};

// Length of the valid UTF-8 sequence at s[i], or 0 (overlong forms, surrogates and code points
// past U+10FFFF are invalid too).
std::size_t utf8_sequence(const std::string& s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned c = b(i);
    if (c < 0x80) return 1;
    const std::size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k)
        if ((b(i + k) & 0xC0) != 0x80) return 0;
    const unsigned c1 = b(i + 1);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F)) return 0;
    return n;
}

// TOML files are UTF-8. Checked before toml11 sees the text: toml11 3.7.1 reads out of bounds
// while reporting invalid UTF-8 in a literal string (found by tests/fuzz/fuzz_watch_config).
void check_utf8(const std::string& text, const std::string& file) {
    std::size_t line = 1;
    for (std::size_t i = 0; i < text.size();) {
        const auto n = utf8_sequence(text, i);
        if (n == 0) throw Error(file + ": line " + std::to_string(line) + ": invalid UTF-8 (a TOML file must be UTF-8 text)");
        line += text[i] == '\n';
        i += n;
    }
}

using Table = toml::value::table_type;
bool has(const Table& tab, const char* k) { return tab.count(k) > 0; }

// A section's own validate(), its message prefixed with the file.
template <class T>
void validate_in_file(const T& section, const std::string& file) {
    try {
        section.validate();
    } catch (const Error& e) {
        throw Error(file + ": " + e.what());
    }
}

RetentionConfig read_retention(Reader& r, const Value& rt, RetentionConfig p) {
    r.only(rt, "retention", {"max_age_days", "max_disk_mb", "prune_interval_s"});
    const auto& tt = rt.as_table();
    if (has(tt, "max_age_days")) p.max_age_days = r.number(tt.at("max_age_days"), "retention.max_age_days");
    if (has(tt, "max_disk_mb")) {
        const double mb = r.number(tt.at("max_disk_mb"), "retention.max_disk_mb");
        if (!(mb >= 0) || mb > 1e9) r.fail("retention.max_disk_mb", "must be 0 (no limit) or a size in MiB");
        p.max_bytes = static_cast<std::uint64_t>(mb * 1048576.0);
    }
    if (has(tt, "prune_interval_s")) p.interval_s = r.number(tt.at("prune_interval_s"), "retention.prune_interval_s");
    validate_in_file(p, r.file);
    return p;
}

std::vector<SourceSpec> read_sources(Reader& r, const Value& s) {
    if (!s.is_table()) r.fail("sources", "must be a table of name = \"URI\"");
    std::vector<SourceSpec> sources;
    for (const auto& [name, uri] : s.as_table()) {
        // parse_source_arg speaks of --source; the file and key say where the value came from.
        try {
            sources.push_back(parse_source_arg(name + "=" + r.string(uri, "sources." + name)));
        } catch (const Error& e) {
            if (std::string(e.what()).rfind(r.file, 0) == 0) throw;  // already names the file
            r.fail("sources." + name, e.what());
        }
    }
    // toml11 keeps tables unordered; name order makes the thread and dashboard order stable.
    std::sort(sources.begin(), sources.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return sources;
}

void read_thresholds(Reader& r, const Value& th, DecisionConfig& d) {
    if (!th.is_table()) r.fail("decision.thresholds", "must be a table of class = { enter = .., exit = .. }");
    for (const auto& [cls, v] : th.as_table()) {
        const std::string where = "decision.thresholds." + cls;
        r.only(v, where, {"enter", "exit"});
        ClassThreshold ct = d.default_threshold;
        if (v.as_table().count("enter")) ct.enter = static_cast<float>(r.number(v.as_table().at("enter"), where + ".enter"));
        if (v.as_table().count("exit")) ct.exit = static_cast<float>(r.number(v.as_table().at("exit"), where + ".exit"));
        d.thresholds[cls] = ct;
    }
}

DecisionConfig read_decision(Reader& r, const Value& dv, DecisionConfig d) {
    r.only(dv, "decision", {"alarm_classes", "enter", "exit", "ema_alpha", "k", "n", "clear_frames", "min_alarm_seconds", "thresholds"});
    const auto& dt = dv.as_table();
    if (has(dt, "alarm_classes")) {
        const auto& a = dt.at("alarm_classes");
        if (!a.is_array()) r.fail("decision.alarm_classes", "must be an array of class names");
        d.alarm_classes.clear();
        for (const auto& v : a.as_array()) d.alarm_classes.push_back(r.string(v, "decision.alarm_classes"));
    }
    if (has(dt, "enter")) d.default_threshold.enter = static_cast<float>(r.number(dt.at("enter"), "decision.enter"));
    if (has(dt, "exit")) d.default_threshold.exit = static_cast<float>(r.number(dt.at("exit"), "decision.exit"));
    if (has(dt, "ema_alpha")) d.ema_alpha = static_cast<float>(r.number(dt.at("ema_alpha"), "decision.ema_alpha"));
    if (has(dt, "k")) d.k = r.integer(dt.at("k"), "decision.k");
    if (has(dt, "n")) d.n = r.integer(dt.at("n"), "decision.n");
    if (has(dt, "clear_frames")) d.clear_frames = r.integer(dt.at("clear_frames"), "decision.clear_frames");
    if (has(dt, "min_alarm_seconds")) d.min_alarm_seconds = r.number(dt.at("min_alarm_seconds"), "decision.min_alarm_seconds");
    if (has(dt, "thresholds")) read_thresholds(r, dt.at("thresholds"), d);
    validate_in_file(d, r.file);
    return d;
}

TilingConfig read_tiling(Reader& r, const Value& tl, TilingConfig t) {
    r.only(tl, "tiling", {"enabled", "rows", "cols", "overlap"});
    const auto& tt = tl.as_table();
    t.enabled = true;
    if (has(tt, "enabled")) t.enabled = r.boolean(tt.at("enabled"), "tiling.enabled");
    if (has(tt, "rows")) t.rows = r.integer(tt.at("rows"), "tiling.rows");
    if (has(tt, "cols")) t.cols = r.integer(tt.at("cols"), "tiling.cols");
    if (has(tt, "overlap")) t.overlap = static_cast<float>(r.number(tt.at("overlap"), "tiling.overlap"));
    validate_in_file(t, r.file);
    return t;
}

MqttConfig read_mqtt(Reader& r, const Value& m) {
    r.only(m, "mqtt", {"host", "port", "client_id", "topic_prefix", "discovery_prefix", "username", "password"});
    const auto& mt = m.as_table();
    MqttConfig mc;
    if (has(mt, "host")) mc.host = r.string(mt.at("host"), "mqtt.host");
    if (has(mt, "port")) mc.port = r.integer(mt.at("port"), "mqtt.port");
    if (mc.port < 1 || mc.port > 65535) r.fail("mqtt.port", "out of range");
    if (has(mt, "client_id")) mc.client_id = r.string(mt.at("client_id"), "mqtt.client_id");
    if (has(mt, "topic_prefix")) mc.topic_prefix = r.string(mt.at("topic_prefix"), "mqtt.topic_prefix");
    if (has(mt, "discovery_prefix")) mc.discovery_prefix = r.string(mt.at("discovery_prefix"), "mqtt.discovery_prefix");
    if (has(mt, "username")) mc.username = r.string(mt.at("username"), "mqtt.username");
    if (has(mt, "password")) mc.password = r.string(mt.at("password"), "mqtt.password");
    return mc;
}

HttpConfig read_http(Reader& r, const Value& h) {
    r.only(h, "http", {"listen", "token"});
    const auto& ht = h.as_table();
    HttpConfig hc;
    if (has(ht, "listen")) {
        const auto listen = r.string(ht.at("listen"), "http.listen");
        try {
            hc = parse_http_arg(listen);
        } catch (const Error& e) {
            r.fail("http.listen", e.what());  // parse_http_arg speaks of --http, not of the file
        }
    }
    if (has(ht, "token")) hc.token = r.string(ht.at("token"), "http.token");
    return hc;
}

Value parse_toml_file(const std::filesystem::path& path) {
    const std::string text = read_file_text(path);
    check_utf8(text, path.string());
    try {
        std::istringstream in(text);
        return toml::parse(in, path.string());
    } catch (const std::exception& e) {
        // toml11 reports the line and column with a caret; keep its text.
        throw Error(path.string() + ": " + e.what());
    }
}

}  // namespace

WatchConfig load_watch_config(const std::filesystem::path& path) {
    const Value root = parse_toml_file(path);
    Reader r{path.string()};
    WatchConfig c;
    r.only(root, "", {"model", "fps", "loop", "data_dir", "feedback_dir", "sources", "decision", "tiling", "mqtt", "webhook", "http",
                      "retention"});
    const auto& t = root.as_table();
    if (has(t, "model")) c.model = r.string(t.at("model"), "model");
    if (has(t, "fps")) c.fps = r.number(t.at("fps"), "fps");
    if (c.fps < 0) r.fail("fps", "must not be negative");
    if (has(t, "loop")) c.loop = r.boolean(t.at("loop"), "loop");
    if (has(t, "data_dir")) c.data_dir = r.string(t.at("data_dir"), "data_dir");
    if (has(t, "feedback_dir")) c.feedback_dir = r.string(t.at("feedback_dir"), "feedback_dir");
    if (has(t, "retention")) c.retention = read_retention(r, t.at("retention"), c.retention);
    if (has(t, "sources")) c.sources = read_sources(r, t.at("sources"));
    if (has(t, "decision")) c.decision = read_decision(r, t.at("decision"), c.decision);
    if (has(t, "tiling")) c.tiling = read_tiling(r, t.at("tiling"), c.tiling);
    if (has(t, "mqtt")) c.mqtt = read_mqtt(r, t.at("mqtt"));
    if (has(t, "webhook")) {
        const auto& w = t.at("webhook");
        r.only(w, "webhook", {"url"});
        if (w.as_table().count("url")) c.webhook = r.string(w.as_table().at("url"), "webhook.url");
    }
    if (has(t, "http")) c.http = read_http(r, t.at("http"));
    return c;
}

}  // namespace firesight::watch
