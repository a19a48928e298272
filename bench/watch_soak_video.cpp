// watch_soak_video: writes the long clip bench/watch_soak.sh feeds to `firesight watch`: a
// textured neutral scene with an orange, flickering fire-like blob for `fire` frames out of
// every `period`, so alarms are raised and cleared over and over.
//
// usage: watch_soak_video OUT.avi FRAMES [PERIOD=600] [FIRE=200] [FPS=25]
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

cv::Mat frame(int i, bool fire, cv::Size size) {
    cv::Mat f(size, CV_8UC3, cv::Scalar(90, 110, 80));
    for (int y = 0; y < size.height; y += 8) cv::line(f, {0, y}, {size.width, y}, cv::Scalar(70 + (y * 7 + i) % 30, 100, 70), 1);
    if (fire) {
        const int w = size.width / 2 + (i % 3) * 6, h = size.height / 2 + (i % 4) * 5;
        const cv::Rect r(size.width / 4, size.height / 3, std::min(w, size.width - size.width / 4),
                         std::min(h, size.height - size.height / 3));
        cv::rectangle(f, r, cv::Scalar(20, 120 + (i % 5) * 12, 230 + i % 3 * 8), cv::FILLED);
    }
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s OUT.avi FRAMES [PERIOD=600] [FIRE=200] [FPS=25]\n", argv[0]);
        return 2;
    }
    const int frames = std::atoi(argv[2]);
    const int period = argc > 3 ? std::atoi(argv[3]) : 600, fire = argc > 4 ? std::atoi(argv[4]) : 200;
    const double fps = argc > 5 ? std::atof(argv[5]) : 25;
    if (frames <= 0 || period <= 0 || fire < 0 || fire > period || fps <= 0) {
        std::fprintf(stderr, "watch_soak_video: FRAMES and PERIOD must be > 0, 0 <= FIRE <= PERIOD, FPS > 0\n");
        return 2;
    }
    const cv::Size size(224, 168);
    cv::VideoWriter w(argv[1], cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), fps, size);
    if (!w.isOpened()) {
        std::fprintf(stderr, "watch_soak_video: cannot write %s\n", argv[1]);
        return 1;
    }
    // Fire in the second part of each period, so the clip starts calm.
    for (int i = 0; i < frames; ++i) w.write(frame(i, i % period >= period - fire, size));
    return 0;
}
