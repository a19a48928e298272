// The report section that shows where a classifier looked: class activation maps over the test
// errors and a few correct photos per class, as thumbnails inside the HTML (toolchain: OpenCV).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "firesight/data/classifier.h"

namespace firesight::eval {

struct MapGalleryOptions {
    int correct_per_class = 3;  // correctly classified photos shown per class (the first ones)
    int max_errors = 48;        // errors beyond this are counted, not shown (keeps the page small)
    int thumbnail = 160;        // pixels per side of the model's square view
};

// An HTML section for report_html's extra_html: each test error with the map of the class it was
// called and of its true class, then correct photos with the map of their class. Thumbnails are
// JPEG data URIs (about 10 KB each), so report.html stays one self-contained file. files[i],
// truth[i] and predicted[i] describe one image; classes are the classifier's. A classifier without
// maps, or an image that no longer decodes, gives a line saying so instead of a thumbnail.
std::string activation_maps_html(Classifier& clf, const std::vector<std::filesystem::path>& files, const std::vector<int>& truth,
                                 const std::vector<int>& predicted, const MapGalleryOptions& options = {});

// RFC 4648 base64 of the bytes, with padding.
std::string base64(const std::vector<unsigned char>& bytes);

}  // namespace firesight::eval
