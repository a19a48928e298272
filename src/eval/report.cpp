// SVG and HTML are written by hand: a few rectangles, lines and texts need no chart library,
// and the files open in any browser.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "firesight/eval/eval.h"

namespace firesight::eval {

std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}

namespace {

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string text(double x, double y, const std::string& s, const std::string& extra = {}) {
    return "<text x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y) + "\" " + extra + ">" + xml_escape(s) + "</text>\n";
}

}  // namespace

std::string confusion_svg(const Metrics& m, const std::string& title) {
    const int k = static_cast<int>(m.classes.size());
    const double cell = 110, left = 140, top = 100;
    const double width = std::max(640.0, left + cell * k + 40), height = top + cell * k + 80;
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", width) + "\" height=\"" +
                    fmt("%.0f", height) + "\" font-family=\"sans-serif\" font-size=\"14\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += text(width / 2, 26, title, "text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\"");
    s += text(left + cell * k / 2, top - 48, "predicted class", "text-anchor=\"middle\" font-weight=\"bold\"");
    s += text(24, top + cell * k / 2, "true class",
              "text-anchor=\"middle\" font-weight=\"bold\" transform=\"rotate(-90 24 " + fmt("%.1f", top + cell * k / 2) + ")\"");
    for (int c = 0; c < k; ++c) {
        s += text(left + cell * (c + 0.5), top - 12, m.classes[static_cast<std::size_t>(c)], "text-anchor=\"middle\"");
        s += text(left - 10, top + cell * (c + 0.5) + 5, m.classes[static_cast<std::size_t>(c)], "text-anchor=\"end\"");
    }
    for (int r = 0; r < k; ++r) {
        int row_total = 0;
        for (int c = 0; c < k; ++c) row_total += m.confusion[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
        for (int c = 0; c < k; ++c) {
            const int n = m.confusion[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
            const double share = row_total ? static_cast<double>(n) / row_total : 0.0;
            // Diagonal cells in green, errors in red, the shade growing with the row share.
            const int shade = static_cast<int>(std::lround(255 - 175 * share));
            const std::string fill = r == c ? "rgb(" + std::to_string(shade) + ",255," + std::to_string(shade) + ")"
                                            : "rgb(255," + std::to_string(shade) + "," + std::to_string(shade) + ")";
            const double x = left + cell * c, y = top + cell * r;
            s += "<rect x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y) + "\" width=\"" + fmt("%.1f", cell) +
                 "\" height=\"" + fmt("%.1f", cell) + "\" fill=\"" + fill + "\" stroke=\"#444\"/>\n";
            s += text(x + cell / 2, y + cell / 2 - 2, std::to_string(n), "text-anchor=\"middle\" font-size=\"22\"");
            s += text(x + cell / 2, y + cell / 2 + 20, fmt("%.1f%%", 100 * share), "text-anchor=\"middle\" fill=\"#333\"");
        }
    }
    s += text(24, top + cell * k + 30,
              "accuracy " + fmt("%.1f%%", 100 * m.accuracy) + ", balanced accuracy " + fmt("%.1f%%", 100 * m.balanced_accuracy) +
                  ", " + std::to_string(m.total) + " images");
    s += text(24, top + cell * k + 52, "percentages are shares of each true class (row)", "fill=\"#555\"");
    s += "</svg>\n";
    return s;
}

std::string curves_svg(const std::vector<EpochRecord>& records, const std::string& title) {
    const double panel_w = 640, panel_h = 220, left = 70, gap = 70, top = 60;
    const double width = left + panel_w + 170, height = top + 2 * panel_h + gap + 60;
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", width) + "\" height=\"" +
                    fmt("%.0f", height) + "\" font-family=\"sans-serif\" font-size=\"13\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += text(width / 2, 26, title, "text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\"");
    const std::size_t n = records.size();
    auto xpos = [&](std::size_t i) { return left + (n > 1 ? panel_w * static_cast<double>(i) / static_cast<double>(n - 1) : panel_w / 2); };
    struct Series {
        const char* name;
        const char* colour;
        double EpochRecord::*field;
        bool dashed;
    };
    auto panel = [&](double y0, const std::string& ylabel, std::vector<Series> series, bool percent) {
        double lo = 0, hi = percent ? 1.0 : 0.0;
        if (!percent) {
            for (const auto& r : records)
                for (const auto& se : series) hi = std::max(hi, r.*se.field);
            hi = hi > 0 ? hi * 1.1 : 1.0;
        } else {
            lo = 1.0;
            for (const auto& r : records)
                for (const auto& se : series) lo = std::min(lo, r.*se.field);
            lo = std::max(0.0, std::floor(lo * 10 - 0.5) / 10);  // zoom in on the range that matters
            if (lo >= 1.0) lo = 0.9;
        }
        auto ypos = [&](double v) { return y0 + panel_h - panel_h * (v - lo) / (hi - lo); };
        s += "<rect x=\"" + fmt("%.1f", left) + "\" y=\"" + fmt("%.1f", y0) + "\" width=\"" + fmt("%.1f", panel_w) +
             "\" height=\"" + fmt("%.1f", panel_h) + "\" fill=\"none\" stroke=\"#222\"/>\n";
        for (int t = 0; t <= 4; ++t) {
            const double v = lo + (hi - lo) * t / 4.0, y = ypos(v);
            s += "<line x1=\"" + fmt("%.1f", left) + "\" x2=\"" + fmt("%.1f", left + panel_w) + "\" y1=\"" + fmt("%.1f", y) +
                 "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#ddd\"/>\n";
            s += text(left - 6, y + 4, percent ? fmt("%.0f%%", 100 * v) : fmt("%.2f", v), "text-anchor=\"end\"");
        }
        s += text(18, y0 + panel_h / 2, ylabel,
                  "text-anchor=\"middle\" transform=\"rotate(-90 18 " + fmt("%.1f", y0 + panel_h / 2) + ")\"");
        // Stage boundaries as dashed verticals with the stage name.
        for (std::size_t i = 0; i < n; ++i) {
            if (i == 0 || records[i].stage != records[i - 1].stage) {
                const double x = xpos(i);
                s += "<line x1=\"" + fmt("%.1f", x) + "\" x2=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", y0) + "\" y2=\"" +
                     fmt("%.1f", y0 + panel_h) + "\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n";
                const bool near_right = x > left + panel_w - 70;
                s += text(near_right ? x - 4 : x + 4, y0 + 14, records[i].stage,
                          near_right ? "fill=\"#666\" text-anchor=\"end\"" : "fill=\"#666\"");
            }
        }
        double ly = y0 + 40;
        for (const auto& se : series) {
            std::string pts;
            for (std::size_t i = 0; i < n; ++i) pts += fmt("%.1f", xpos(i)) + "," + fmt("%.1f", ypos(records[i].*se.field)) + " ";
            s += "<polyline fill=\"none\" stroke=\"" + std::string(se.colour) + "\" stroke-width=\"2\"" +
                 (se.dashed ? " stroke-dasharray=\"6 3\"" : "") + " points=\"" + pts + "\"/>\n";
            s += "<line x1=\"" + fmt("%.1f", left + panel_w + 14) + "\" x2=\"" + fmt("%.1f", left + panel_w + 40) + "\" y1=\"" +
                 fmt("%.1f", ly - 4) + "\" y2=\"" + fmt("%.1f", ly - 4) + "\" stroke=\"" + se.colour + "\" stroke-width=\"2\"" +
                 (se.dashed ? " stroke-dasharray=\"6 3\"" : "") + "/>\n";
            s += text(left + panel_w + 46, ly, se.name);
            ly += 20;
        }
    };
    panel(top, "loss", {{"train loss", "#1f77b4", &EpochRecord::train_loss, false}, {"val loss", "#d62728", &EpochRecord::val_loss, true}},
          false);
    panel(top + panel_h + gap, "accuracy",
          {{"train accuracy", "#1f77b4", &EpochRecord::train_accuracy, false}, {"val accuracy", "#d62728", &EpochRecord::val_accuracy, true}},
          true);
    // Epoch ticks along the lower panel.
    const double yb = top + 2 * panel_h + gap;
    const std::size_t step = std::max<std::size_t>(1, n / 10);
    for (std::size_t i = 0; i < n; i += step) s += text(xpos(i), yb + 16, std::to_string(i + 1), "text-anchor=\"middle\"");
    s += text(left + panel_w / 2, yb + 38, "epoch (both stages in order)", "text-anchor=\"middle\"");
    s += "</svg>\n";
    return s;
}

std::string report_html(const std::string& title, const std::vector<std::string>& summary_lines, const Metrics& m,
                        const std::string& confusion, const std::string& curves, const std::string& extra_html) {
    std::string h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + xml_escape(title) +
                    "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
                    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 10px;text-align:right}"
                    "th:first-child,td:first-child{text-align:left}</style></head><body>\n";
    h += "<h1>" + xml_escape(title) + "</h1>\n<ul>\n";
    for (const auto& l : summary_lines) h += "<li>" + xml_escape(l) + "</li>\n";
    h += "</ul>\n<h2>Per class</h2>\n<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\n";
    for (std::size_t c = 0; c < m.classes.size(); ++c) {
        const auto& p = m.per_class[c];
        h += "<tr><td>" + xml_escape(m.classes[c]) + "</td><td>" + fmt("%.1f%%", 100 * p.precision) + "</td><td>" +
             fmt("%.1f%%", 100 * p.recall) + "</td><td>" + fmt("%.1f%%", 100 * p.f1) + "</td><td>" + std::to_string(p.support) +
             "</td></tr>\n";
    }
    h += "<tr><th>all</th><th colspan=\"4\">accuracy " + fmt("%.1f%%", 100 * m.accuracy) + ", balanced accuracy " +
         fmt("%.1f%%", 100 * m.balanced_accuracy) + "</th></tr>\n</table>\n";
    h += "<h2>Confusion matrix</h2>\n" + confusion;
    if (!curves.empty()) h += "<h2>Training curves</h2>\n" + curves;
    h += extra_html;
    h += "</body></html>\n";
    return h;
}

}  // namespace firesight::eval
