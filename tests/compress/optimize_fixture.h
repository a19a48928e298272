// A tiny trained run for the optimize tests: a synthetic two-class image folder (reddish "fire"
// blobs, bluish-green "neutral" gradients, one corrupt file) and the ImageNet MobileNetV2 at 64 x 64
// with a head trained for a few steps on it, saved as `firesight train` saves a run.
#pragma once
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>
#include <random>

#include "firesight/data/dataset.h"
#include "firesight/common/fileio.h"
#include "firesight/model/mobilenet_v2.h"
#include "firesight/model/trained_model.h"
#include "test_util.h"

namespace firesight::test {

inline void write_synthetic_images(const std::filesystem::path& root, int per_class) {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> noise(-25, 25), pos(8, 40);
    for (const std::string cls : {"fire", "neutral"}) {
        std::filesystem::create_directories(root / cls);
        for (int i = 0; i < per_class; ++i) {
            cv::Mat img(48, 48, CV_8UC3);
            for (int y = 0; y < 48; ++y)
                for (int x = 0; x < 48; ++x) {
                    cv::Vec3b& p = img.at<cv::Vec3b>(y, x);  // BGR
                    if (cls == "fire") p = {static_cast<uchar>(20 + noise(rng) / 2 + 25), static_cast<uchar>(60 + y + noise(rng)),
                                            static_cast<uchar>(200 + noise(rng))};
                    else p = {static_cast<uchar>(150 + x + noise(rng)), static_cast<uchar>(120 + y + noise(rng)), static_cast<uchar>(40 + noise(rng) + 25)};
                }
            if (cls == "fire") cv::circle(img, {pos(rng), pos(rng)}, 6, cv::Scalar(30, 220, 255), -1);
            cv::imwrite((root / cls / ("img" + std::to_string(i) + ".png")).string(), img);
        }
    }
    std::ofstream(root / "fire" / "broken.jpg") << "not a jpeg at all";
}

// Writes RUN/model.pt and RUN/splits.json for the images under `data`. Needs the real
// MobileNetV2 .tflite (callers check the asset first).
inline void write_tiny_run(const std::filesystem::path& data, const std::filesystem::path& run, unsigned seed = 3) {
    data::ImageFolderDataset ds(data);
    auto splits = ds.split({0.5, 0.25, 0.25}, 7);
    std::filesystem::create_directories(run);
    write_file_atomic(run / "splits.json", data::splits_to_json(splits));

    auto imported = model::import_mobilenet_v2(mobilenet_quant());
    model::TrainedModel m;
    m.net = imported.net;
    m.net->replace_head(2);
    m.class_names = splits.classes;
    m.preprocess.size = m.preprocess.resize_shorter = 64;
    m.preprocess.mean = imported.input.mean;
    m.preprocess.scale = imported.input.scale;
    m.info_json = R"({"note":"tiny optimize test run"})";
    // A few head steps on the training images, so the run classifies something.
    std::vector<torch::Tensor> xs;
    std::vector<std::int64_t> ys;
    for (const auto& s : splits.train) {
        try {
            const auto hwc = data::preprocess(data::decode_image(data / s.path), m.preprocess);
            xs.push_back(torch::from_blob(const_cast<float*>(hwc.ptr<float>()), {64, 64, 3}).permute({2, 0, 1}).clone());
            ys.push_back(s.label);
        } catch (const std::exception&) {
        }
    }
    torch::manual_seed(seed);
    torch::NoGradGuard g;
    m.net->eval();
    const auto emb = m.net->embed(torch::stack(xs));
    const auto y = torch::tensor(ys, torch::kInt64);
    {
        torch::AutoGradMode on(true);
        for (auto& p : m.net->classifier->parameters()) p.set_requires_grad(true);
        torch::optim::Adam adam(m.net->classifier->parameters(), torch::optim::AdamOptions(1e-2));
        for (int step = 0; step < 40; ++step) {
            adam.zero_grad();
            auto loss = torch::cross_entropy_loss(m.net->classifier->forward(emb), y);
            loss.backward();
            adam.step();
        }
    }
    for (auto& p : m.net->parameters()) p.set_requires_grad(false);
    model::save_trained_model(m, run / "model.pt");
}

}  // namespace firesight::test
