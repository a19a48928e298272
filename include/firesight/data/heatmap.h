// Drawing class activation maps onto photos for people: a heat map over the part of the photo the
// model saw, the hottest region as a box, and short text lines (predict --cam, reports, alarms).
#pragma once
#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "firesight/data/image.h"

namespace firesight::data {

// The map (CV_32F) scaled to 0..1 from its minimum to its maximum; all zeros when it is flat. The
// scale is relative: a map shows where the class was seen most, not how sure the model is.
cv::Mat normalized_map(const cv::Mat& map);

// A copy of the BGR image with the map upsampled smoothly onto model_view(image, p) as a JET heat
// map (red: most evidence), blended at `opacity`; the part the model did not see is dimmed.
cv::Mat overlay_activation_map(const cv::Mat& bgr, const cv::Mat& map, const Preprocess& p, double opacity = 0.45);

// The hottest region of the map in image pixels: the bounding box of the area around the map's
// maximum where the upsampled map is at least `share` of the way from its minimum to its maximum.
cv::Rect hottest_region(const cv::Mat& map, cv::Size image, const Preprocess& p, double share = 0.6);

// Text lines at the top left on a dark band, sized to the image.
void draw_text_lines(cv::Mat& bgr, const std::vector<std::string>& lines);

}  // namespace firesight::data
