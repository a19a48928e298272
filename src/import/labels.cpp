#include <fstream>

#include "firesight/common/error.h"
#include "firesight/import/tflite.h"

namespace firesight::tflite {

std::vector<std::string> read_labels(const std::filesystem::path& path, int num_classes) {
    std::ifstream in(path);
    if (!in) throw Error(path.string() + ": cannot open labels file");
    std::vector<std::string> labels;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        labels.push_back(line);
    }
    while (!labels.empty() && labels.back().empty() && static_cast<int>(labels.size()) > num_classes) labels.pop_back();
    if (static_cast<int>(labels.size()) == num_classes + 1) labels.erase(labels.begin());
    if (static_cast<int>(labels.size()) != num_classes)
        throw Error(path.string() + ": " + std::to_string(labels.size()) + " labels for a model with " +
                    std::to_string(num_classes) + " classes");
    return labels;
}

}  // namespace firesight::tflite
