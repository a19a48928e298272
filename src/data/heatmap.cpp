// Heat maps and boxes from class activation maps (see firesight/data/heatmap.h).
#include "firesight/data/heatmap.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "firesight/common/error.h"

namespace firesight::data {
namespace {

void check_map(const cv::Mat& map) {
    if (map.empty() || map.type() != CV_32FC1) throw Error("activation map: expected a non-empty single-channel float map");
}

// The normalized map at the size of the model's view of the image. Cubic upsampling: a 7x7 map
// blown up with nearest or linear steps shows the grid rather than the object. Cubic only up to
// 32 pixels per cell, linear from there: the curve is smooth at that scale, and a camera frame's
// view (1080 x 1080) then costs a few milliseconds instead of a cubic pass over every pixel.
cv::Mat upsampled_to(const cv::Mat& map, cv::Size size) {
    cv::Mat up;
    cv::resize(normalized_map(map), up, size, 0, 0, cv::INTER_CUBIC);
    cv::Mat clipped = cv::max(up, 0.0);  // cubic overshoots a little at sharp peaks
    clipped = cv::min(clipped, 1.0);
    return clipped;
}

constexpr int kCubicPixelsPerCell = 32;

cv::Size cubic_size(const cv::Mat& map, cv::Size view) {
    const double most = static_cast<double>(kCubicPixelsPerCell) * std::max(map.cols, map.rows);
    const double f = most / std::max(view.width, view.height);
    if (f >= 1) return view;
    return {std::max(1, static_cast<int>(std::lround(view.width * f))), std::max(1, static_cast<int>(std::lround(view.height * f)))};
}

cv::Mat upsampled(const cv::Mat& map, cv::Size view) {
    const cv::Size mid = cubic_size(map, view);
    cv::Mat up = upsampled_to(map, mid);
    if (mid != view) cv::resize(up, up, view, 0, 0, cv::INTER_LINEAR);
    return up;
}

}  // namespace

cv::Mat normalized_map(const cv::Mat& map) {
    check_map(map);
    double lo = 0, hi = 0;
    cv::minMaxLoc(map, &lo, &hi);
    cv::Mat out;
    if (hi - lo <= 0) return cv::Mat::zeros(map.size(), CV_32F);
    map.convertTo(out, CV_32F, 1.0 / (hi - lo), -lo / (hi - lo));
    return out;
}

cv::Mat overlay_activation_map(const cv::Mat& bgr, const cv::Mat& map, const Preprocess& p, double opacity) {
    if (bgr.empty() || bgr.type() != CV_8UC3) throw Error("activation map overlay: expected an 8-bit 3-channel image");
    if (!(opacity >= 0 && opacity <= 1)) throw Error("activation map overlay: opacity must be within 0..1");
    const cv::Rect view = model_view(bgr.size(), p);
    cv::Mat heat8, colour;
    upsampled(map, view.size()).convertTo(heat8, CV_8U, 255.0);
    cv::applyColorMap(heat8, colour, cv::COLORMAP_JET);
    cv::Mat out;
    bgr.convertTo(out, -1, 0.5);  // dimmed: the model never saw this part
    cv::Mat inside = out(view);
    cv::addWeighted(bgr(view), 1.0 - opacity, colour, opacity, 0.0, inside);
    return out;
}

cv::Rect hottest_region(const cv::Mat& map, cv::Size image, const Preprocess& p, double share) {
    if (!(share > 0 && share <= 1)) throw Error("hottest region: share must be within (0, 1]");
    const cv::Rect view = model_view(image, p);
    // Found on the map at the cubic step's size (see upsampled), then scaled to the view.
    const cv::Size mid = cubic_size(map, view.size());
    const cv::Mat up = upsampled_to(map, mid);
    cv::Point peak;
    cv::minMaxLoc(up, nullptr, nullptr, nullptr, &peak);
    cv::Mat hot = up >= share, labels;
    cv::connectedComponents(hot, labels, 8, CV_32S);
    const cv::Mat region = labels == labels.at<int>(peak);
    const cv::Rect b = cv::boundingRect(region);
    const double sx = static_cast<double>(view.width) / mid.width, sy = static_cast<double>(view.height) / mid.height;
    const int x0 = static_cast<int>(std::lround(b.x * sx)), y0 = static_cast<int>(std::lround(b.y * sy));
    const int x1 = std::min(view.width, static_cast<int>(std::lround(b.br().x * sx)));
    const int y1 = std::min(view.height, static_cast<int>(std::lround(b.br().y * sy)));
    return cv::Rect(x0, y0, std::max(1, x1 - x0), std::max(1, y1 - y0)) + view.tl();
}

void draw_text_lines(cv::Mat& bgr, const std::vector<std::string>& lines) {
    if (lines.empty() || bgr.empty()) return;
    const double scale = std::max(0.4, std::min(bgr.cols, bgr.rows) / 600.0);
    const int thick = std::max(1, static_cast<int>(scale * 1.5));
    int baseline = 0, width = 0;
    const int line_h = cv::getTextSize("Ag", cv::FONT_HERSHEY_SIMPLEX, scale, thick, &baseline).height + baseline + 6;
    for (const auto& l : lines) width = std::max(width, cv::getTextSize(l, cv::FONT_HERSHEY_SIMPLEX, scale, thick, &baseline).width);
    const cv::Rect band(0, 0, std::min(bgr.cols, width + 12), std::min(bgr.rows, line_h * static_cast<int>(lines.size()) + 6));
    cv::Mat area = bgr(band);
    area *= 0.35;
    for (std::size_t i = 0; i < lines.size(); ++i)
        cv::putText(bgr, lines[i], cv::Point(6, line_h * static_cast<int>(i + 1) - baseline), cv::FONT_HERSHEY_SIMPLEX, scale,
                    cv::Scalar(255, 255, 255), thick, cv::LINE_AA);
}

}  // namespace firesight::data
