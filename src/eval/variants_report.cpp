// The views of a set of measured variants: a text table for the terminal, a hand-written SVG of
// accuracy against latency (marker area = file size, Pareto front as a line) and one HTML page
// with both and each variant's confusion matrix. Ratios are against the "fp32" variant when there
// is one (else the first), so "x smaller" and "x faster" read as what compression bought.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "firesight/eval/variants.h"

namespace firesight::eval {

namespace {

std::string fmt(const char* f, double v) {
    if (!std::isfinite(v)) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string svg_text(double x, double y, const std::string& s, const std::string& extra = {}) {
    return "<text x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y) + "\"" + (extra.empty() ? "" : " " + extra) + ">" +
           xml_escape(s) + "</text>\n";
}

const VariantResult* reference_of(const std::vector<VariantResult>& v) {
    for (const auto& r : v)
        if (r.name == "fp32") return &r;
    return v.empty() ? nullptr : &v.front();
}

// A tick spacing of 1, 2 or 5 times a power of ten giving about five ticks over `range`.
double nice_step(double range) {
    if (!(range > 0) || !std::isfinite(range)) return 1.0;
    const double raw = range / 5, mag = std::pow(10.0, std::floor(std::log10(raw))), norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

int decimals_for(double step) { return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9))); }

struct Box {
    double x0, y0, x1, y1;
};

double overlap(const Box& a, const Box& b) {
    const double w = std::min(a.x1, b.x1) - std::max(a.x0, b.x0), h = std::min(a.y1, b.y1) - std::max(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0.0;
}

std::string ratio(double num, double den) { return num > 0 && den > 0 ? fmt("%.2fx", num / den) : "-"; }

std::string mb(std::uint64_t bytes) { return fmt("%.2f", static_cast<double>(bytes) / 1e6); }

// The classes of the table's recall columns: the union of the variants' classes, in first-seen order.
std::vector<std::string> all_classes(const std::vector<VariantResult>& v) {
    std::vector<std::string> out;
    for (const auto& r : v)
        for (const auto& c : r.metrics.classes)
            if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
    return out;
}

std::string recall_of(const VariantResult& r, const std::string& cls) {
    for (std::size_t c = 0; c < r.metrics.classes.size() && c < r.metrics.per_class.size(); ++c)
        if (r.metrics.classes[c] == cls) return fmt("%.1f%%", 100 * r.metrics.per_class[c].recall);
    return "-";
}

// Header and one row of cells per variant, shared by the text and the HTML table.
struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

Table make_table(const std::vector<VariantResult>& v) {
    const auto* ref = reference_of(v);
    const auto classes = all_classes(v);
    Table t;
    t.header = {"variant", "accuracy", "drop (pts)"};
    for (const auto& c : classes) t.header.push_back("recall " + c);
    for (const char* h : {"size MB", "gzip MB", "x smaller", "latency ms", "p90 ms", "x faster", "RSS MB", "backend"}) t.header.push_back(h);
    for (const auto& r : v) {
        std::vector<std::string> row = {r.name, fmt("%.2f%%", 100 * r.metrics.accuracy), fmt("%+.2f", r.accuracy_drop)};
        for (const auto& c : classes) row.push_back(recall_of(r, c));
        row.push_back(mb(r.size_bytes));
        row.push_back(mb(r.gzip_bytes));
        row.push_back(ratio(static_cast<double>(ref->size_bytes), static_cast<double>(r.size_bytes)));
        row.push_back(r.latency_ms > 0 ? fmt("%.2f", r.latency_ms) : "-");
        row.push_back(r.latency_p90_ms > 0 ? fmt("%.2f", r.latency_p90_ms) : "-");
        row.push_back(ratio(ref->latency_ms, r.latency_ms));
        row.push_back(r.peak_rss_mb > 0 ? fmt("%.1f", r.peak_rss_mb) : "-");
        row.push_back(r.backend.empty() ? "-" : r.backend);
        t.rows.push_back(std::move(row));
    }
    return t;
}

}  // namespace

std::string variants_table(const std::vector<VariantResult>& v, const std::string& chosen) {
    if (v.empty()) return "no variants\n";
    const auto t = make_table(v);
    std::vector<std::size_t> width(t.header.size());
    for (std::size_t c = 0; c < width.size(); ++c) {
        width[c] = t.header[c].size();
        for (const auto& row : t.rows) width[c] = std::max(width[c], row[c].size());
    }
    auto line = [&](const std::vector<std::string>& cells, const std::string& mark) {
        std::string s = mark;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            const std::string pad(width[c] - cells[c].size(), ' ');
            s += c == 0 ? cells[c] + pad : "  " + pad + cells[c];  // names left, figures right
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        return s + "\n";
    };
    std::string out = line(t.header, "  ");
    for (std::size_t i = 0; i < v.size(); ++i) out += line(t.rows[i], v[i].name == chosen ? "* " : "  ");
    const auto* ref = reference_of(v);
    out += "drop: accuracy points below " + ref->name + "; x smaller / x faster: " + ref->name +
           " size/latency over the variant's (batch 1, 1 thread, median of a fresh process)\n";
    if (!chosen.empty()) out += "* chosen: " + chosen + "\n";
    return out;
}

namespace {

// The plot's geometry: canvas, plot area, axis ranges, and where a variant's point lies.
struct ParetoPlot {
    static constexpr double left = 80, top = 60, plot_w = 640, plot_h = 400, right_margin = 220;
    static constexpr double width = left + plot_w + right_margin, height = top + plot_h + 110;
    double x_hi = 1, x_step = 1, y_lo = 0, y_hi = 100, y_step = 10;
    std::uint64_t size_max = 0;
    std::vector<std::size_t> timed;  // variants with a latency, the only ones drawn

    double xpos(double ms) const { return left + plot_w * ms / x_hi; }
    double ypos(double acc_pct) const { return top + plot_h - plot_h * (acc_pct - y_lo) / (y_hi - y_lo); }
    double radius(std::uint64_t bytes) const {
        constexpr double r_max = 26, r_min = 3;
        if (size_max == 0) return r_min;
        return std::max(r_min, r_max * std::sqrt(static_cast<double>(bytes) / static_cast<double>(size_max)));
    }
};

ParetoPlot plan_pareto_plot(const std::vector<VariantResult>& v) {
    ParetoPlot p;
    double lat_max = 0, acc_lo = 100, acc_hi = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!(v[i].latency_ms > 0) || !std::isfinite(v[i].latency_ms)) continue;
        p.timed.push_back(i);
        lat_max = std::max(lat_max, v[i].latency_ms);
        acc_lo = std::min(acc_lo, 100 * v[i].metrics.accuracy);
        acc_hi = std::max(acc_hi, 100 * v[i].metrics.accuracy);
        p.size_max = std::max(p.size_max, v[i].size_bytes);
    }
    // Latency from zero, so distances read as ratios; accuracy zoomed to the range that matters.
    p.x_step = nice_step(lat_max > 0 ? lat_max * 1.1 : 1.0);
    p.x_hi = p.x_step * std::max(1.0, std::ceil((lat_max > 0 ? lat_max * 1.1 : 1.0) / p.x_step - 1e-9));
    if (!p.timed.empty()) p.y_lo = std::max(0.0, acc_lo - 0.5), p.y_hi = std::min(100.0, acc_hi + 0.5);
    p.y_step = nice_step(p.y_hi - p.y_lo);
    p.y_lo = std::max(0.0, std::floor(p.y_lo / p.y_step + 1e-9) * p.y_step);
    p.y_hi = std::max(p.y_lo + p.y_step, std::ceil(p.y_hi / p.y_step - 1e-9) * p.y_step);
    return p;
}

std::string pareto_axes_svg(const ParetoPlot& p) {
    const double left = p.left, top = p.top, plot_w = p.plot_w, plot_h = p.plot_h;
    std::string s = "<rect x=\"" + fmt("%.1f", left) + "\" y=\"" + fmt("%.1f", top) + "\" width=\"" + fmt("%.1f", plot_w) + "\" height=\"" +
                    fmt("%.1f", plot_h) + "\" fill=\"none\" stroke=\"#222\"/>\n";
    const std::string y_fmt = "%." + std::to_string(decimals_for(p.y_step)) + "f%%", x_fmt = "%." + std::to_string(decimals_for(p.x_step)) + "f";
    for (double acc = p.y_lo; acc <= p.y_hi + p.y_step * 1e-6; acc += p.y_step) {
        const double y = p.ypos(acc);
        s += "<line x1=\"" + fmt("%.1f", left) + "\" x2=\"" + fmt("%.1f", left + plot_w) + "\" y1=\"" + fmt("%.1f", y) + "\" y2=\"" +
             fmt("%.1f", y) + "\" stroke=\"#e4e4e4\"/>\n";
        s += svg_text(left - 6, y + 4, fmt(y_fmt.c_str(), acc), "text-anchor=\"end\"");
    }
    for (double ms = 0; ms <= p.x_hi + p.x_step * 1e-6; ms += p.x_step) {
        const double x = p.xpos(ms);
        s += "<line x1=\"" + fmt("%.1f", x) + "\" x2=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", top) + "\" y2=\"" +
             fmt("%.1f", top + plot_h) + "\" stroke=\"#e4e4e4\"/>\n";
        s += svg_text(x, top + plot_h + 18, fmt(x_fmt.c_str(), ms), "text-anchor=\"middle\"");
    }
    s += svg_text(left + plot_w / 2, top + plot_h + 40, "latency, ms (batch 1, 1 thread, median)", "text-anchor=\"middle\"");
    s += svg_text(22, top + plot_h / 2, "accuracy", "text-anchor=\"middle\" transform=\"rotate(-90 22 " + fmt("%.1f", top + plot_h / 2) + ")\"");
    return s;
}

// The front first, so the markers sit on top of it; large markers before small ones.
std::string pareto_markers_svg(const std::vector<VariantResult>& v, const std::string& chosen, const ParetoPlot& p,
                               const std::vector<std::size_t>& front) {
    std::string s;
    if (!front.empty()) {
        std::string pts;
        for (auto i : front) pts += fmt("%.1f", p.xpos(v[i].latency_ms)) + "," + fmt("%.1f", p.ypos(100 * v[i].metrics.accuracy)) + " ";
        s += "<polyline class=\"pareto-front\" fill=\"none\" stroke=\"#2c7fb8\" stroke-width=\"2\" stroke-dasharray=\"7 4\" points=\"" +
             pts + "\"/>\n";
    }
    auto order = p.timed;
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return v[a].size_bytes > v[b].size_bytes; });
    for (auto i : order) {
        const auto& r = v[i];
        const bool is_chosen = r.name == chosen;
        const bool on_front = std::find(front.begin(), front.end(), i) != front.end();
        const double x = p.xpos(r.latency_ms), y = p.ypos(100 * r.metrics.accuracy), rad = p.radius(r.size_bytes);
        s += "<circle cx=\"" + fmt("%.1f", x) + "\" cy=\"" + fmt("%.1f", y) + "\" r=\"" + fmt("%.1f", rad) + "\" fill=\"" +
             (on_front ? "#2c7fb8" : "#999999") + "\" fill-opacity=\"0.35\" stroke=\"" + (is_chosen ? "#e6550d" : "#333") +
             "\" stroke-width=\"" + (is_chosen ? "3.5" : "1") + "\"><title>" + xml_escape(r.name) + ": " +
             fmt("%.2f%%", 100 * r.metrics.accuracy) + ", " + fmt("%.2f ms", r.latency_ms) + ", " + mb(r.size_bytes) +
             " MB</title></circle>\n";
    }
    return s;
}

// Labels: the chosen variant first, then the front, each at the first spot around its marker
// that overlaps no marker and no label placed before it.
std::string pareto_labels_svg(const std::vector<VariantResult>& v, const std::string& chosen, const ParetoPlot& p,
                              const std::vector<std::size_t>& front) {
    std::string s;
    std::vector<Box> taken;
    for (auto i : p.timed) {
        const double x = p.xpos(v[i].latency_ms), y = p.ypos(100 * v[i].metrics.accuracy), rad = p.radius(v[i].size_bytes);
        taken.push_back({x - rad, y - rad, x + rad, y + rad});
    }
    auto label_order = p.timed;
    std::stable_sort(label_order.begin(), label_order.end(), [&](auto a, auto b) {
        auto rank = [&](std::size_t i) { return v[i].name == chosen ? 0 : std::find(front.begin(), front.end(), i) != front.end() ? 1 : 2; };
        return rank(a) < rank(b);
    });
    for (auto i : label_order) {
        const auto& r = v[i];
        const bool is_chosen = r.name == chosen;
        const double x = p.xpos(r.latency_ms), y = p.ypos(100 * r.metrics.accuracy), rad = p.radius(r.size_bytes);
        const std::string label = is_chosen ? r.name + " (chosen)" : r.name;
        const double w = 7.2 * static_cast<double>(label.size()), h = 14;
        struct Spot {
            double x, y;
            const char* anchor;
        };
        const Spot spots[] = {{x + rad + 4, y + 4, "start"},      {x - rad - 4, y + 4, "end"},
                              {x, y - rad - 5, "middle"},         {x, y + rad + 15, "middle"},
                              {x + rad + 4, y - rad - 2, "start"}, {x + rad + 4, y + rad + 12, "start"},
                              {x - rad - 4, y - rad - 2, "end"},   {x - rad - 4, y + rad + 12, "end"}};
        auto box_of = [&](const Spot& sp) {
            const double x0 = sp.anchor[0] == 's' ? sp.x : sp.anchor[0] == 'e' ? sp.x - w : sp.x - w / 2;
            return Box{x0, sp.y - h + 3, x0 + w, sp.y + 3};
        };
        std::size_t best = 0;
        double best_cost = -1;
        for (std::size_t k = 0; k < std::size(spots); ++k) {
            const Box b = box_of(spots[k]);
            double cost = 0;
            for (std::size_t t = 0; t < taken.size(); ++t) {
                // A marker's own circle is not in the way of its label spots.
                if (t < p.timed.size() && p.timed[t] == i) continue;
                cost += overlap(b, taken[t]);
            }
            if (b.x0 < p.left || b.x1 > p.width - 4 || b.y0 < p.top) cost += 1e6;  // stay on the canvas, below the title
            if (best_cost < 0 || cost < best_cost) best = k, best_cost = cost;
            if (cost == 0) break;
        }
        taken.push_back(box_of(spots[best]));
        s += svg_text(spots[best].x, spots[best].y, label,
                      std::string("text-anchor=\"") + spots[best].anchor + "\" " +
                          (is_chosen ? "font-weight=\"bold\" fill=\"#e6550d\"" : "fill=\"#222\""));
    }
    return s;
}

// The legend on the right, and the variants that could not be drawn.
std::string pareto_legend_svg(const std::vector<VariantResult>& v, const ParetoPlot& p) {
    const double lx = p.left + p.plot_w + 20;
    double ly = p.top + 14;
    std::string s = "<line x1=\"" + fmt("%.1f", lx) + "\" x2=\"" + fmt("%.1f", lx + 28) + "\" y1=\"" + fmt("%.1f", ly - 4) + "\" y2=\"" +
                    fmt("%.1f", ly - 4) + "\" stroke=\"#2c7fb8\" stroke-width=\"2\" stroke-dasharray=\"7 4\"/>\n";
    s += svg_text(lx + 34, ly, "Pareto front");
    ly += 18;
    s += svg_text(lx, ly, "(nothing is both more accurate", "fill=\"#555\" font-size=\"11\"");
    ly += 14;
    s += svg_text(lx, ly, "and faster)", "fill=\"#555\" font-size=\"11\"");
    ly += 26;
    s += "<circle cx=\"" + fmt("%.1f", lx + 12) + "\" cy=\"" + fmt("%.1f", ly - 4) +
         "\" r=\"8\" fill=\"#999\" fill-opacity=\"0.35\" stroke=\"#e6550d\" stroke-width=\"3.5\"/>\n";
    s += svg_text(lx + 34, ly, "chosen variant");
    ly += 26;
    s += svg_text(lx, ly, "largest marker: " + mb(p.size_max) + " MB", "fill=\"#555\"");
    std::string untimed;
    for (const auto& r : v)
        if (!(r.latency_ms > 0)) untimed += (untimed.empty() ? "" : ", ") + r.name;
    if (!untimed.empty()) s += svg_text(p.left, p.top + p.plot_h + 70, "not timed (not shown): " + untimed, "fill=\"#555\"");
    return s;
}

}  // namespace

std::string pareto_svg(const std::vector<VariantResult>& v, const std::string& chosen) {
    const ParetoPlot p = plan_pareto_plot(v);
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", p.width) + "\" height=\"" + fmt("%.0f", p.height) +
                    "\" font-family=\"sans-serif\" font-size=\"13\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += svg_text(p.left + p.plot_w / 2, 28, "Accuracy vs batch-1 latency (marker area = engine file size)",
                  "text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\"");
    s += pareto_axes_svg(p);
    const auto front = pareto_front(v);
    s += pareto_markers_svg(v, chosen, p, front);
    s += pareto_labels_svg(v, chosen, p, front);
    s += pareto_legend_svg(v, p);
    s += "</svg>\n";
    return s;
}

std::string variants_report_html(const std::vector<VariantResult>& v, const std::string& chosen, const std::string& title) {
    std::string h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + xml_escape(title) +
                    "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:75em}"
                    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 10px;text-align:right}"
                    "th:first-child,td:first-child{text-align:left}tr.chosen{background:#fdd9b5;font-weight:bold}"
                    "pre{background:#f4f4f4;padding:8px;overflow-x:auto}</style></head><body>\n";
    h += "<h1>" + xml_escape(title) + "</h1>\n";
    if (v.empty()) return h + "<p>No variants were measured.</p>\n</body></html>\n";
    const auto* ref = reference_of(v);
    h += "<p>" + std::to_string(v.size()) + " variants measured with the firesight runtime (backend per variant in the table). Accuracy on " +
         std::to_string(ref->metrics.total) + " held-out images; latency is the median of batch-1, single-thread runs in a fresh "
         "process (int8 engines on the faster of xnnpack and native-int8); sizes are the engine files on disk and gzipped. "
         "Ratios are against <b>" + xml_escape(ref->name) + "</b>.";
    if (!chosen.empty()) h += " Chosen: <b>" + xml_escape(chosen) + "</b>.";
    h += "</p>\n<h2>Variants</h2>\n<table>\n<tr>";
    const auto t = make_table(v);
    for (const auto& c : t.header) h += "<th>" + xml_escape(c) + "</th>";
    h += "</tr>\n";
    for (std::size_t i = 0; i < v.size(); ++i) {
        h += v[i].name == chosen ? "<tr class=\"chosen\">" : "<tr>";
        for (const auto& c : t.rows[i]) h += "<td>" + xml_escape(c) + "</td>";
        h += "</tr>\n";
    }
    h += "</table>\n<h2>Accuracy vs latency</h2>\n" + pareto_svg(v, chosen);
    h += "<h2>Each variant</h2>\n";
    for (const auto& r : v) {
        h += "<h3 id=\"" + xml_escape(r.name) + "\">" + xml_escape(r.name) + (r.name == chosen ? " (chosen)" : "") + "</h3>\n";
        h += "<p>engine " + xml_escape(r.engine.filename().string()) + ", " + mb(r.size_bytes) + " MB (" + mb(r.gzip_bytes) +
             " MB gzipped), accuracy " + fmt("%.2f%%", 100 * r.metrics.accuracy) + ", balanced accuracy " +
             fmt("%.2f%%", 100 * r.metrics.balanced_accuracy) + ", latency " +
             (r.latency_ms > 0 ? fmt("%.2f ms", r.latency_ms) + " (p90 " + fmt("%.2f ms", r.latency_p90_ms) + ")" : std::string("not timed")) +
             ", peak RSS " + (r.peak_rss_mb > 0 ? fmt("%.1f MB", r.peak_rss_mb) : std::string("-")) +
             (r.backend.empty() ? std::string() : ", backend " + xml_escape(r.backend)) + "</p>\n";
        h += "<p>settings:</p>\n<pre>" + xml_escape(r.settings.is_null() ? std::string("{}") : r.settings.dump(2)) + "</pre>\n";
        if (!r.metrics.classes.empty()) h += confusion_svg(r.metrics, r.name + ": confusion matrix");
    }
    h += "</body></html>\n";
    return h;
}

}  // namespace firesight::eval
