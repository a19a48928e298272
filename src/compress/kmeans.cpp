#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "firesight/compress/cluster.h"
#include "firesight/common/error.h"

namespace firesight::compress {

namespace {

void check_k(std::size_t k) {
    if (k < 1 || k > 65536) throw Error("k-means: k = " + std::to_string(k) + " is not in [1, 65536]");
}

// Index of the nearest centroid; `mids[j]` is the midpoint between centroids j and j+1, and a
// value exactly on a midpoint goes to the lower centroid.
std::uint16_t nearest(const std::vector<double>& mids, float v) {
    return static_cast<std::uint16_t>(std::lower_bound(mids.begin(), mids.end(), static_cast<double>(v)) - mids.begin());
}

}  // namespace

std::vector<float> Clustering::values() const {
    std::vector<float> v(indices.size());
    for (std::size_t i = 0; i < indices.size(); ++i) v[i] = centroids[indices[i]];
    return v;
}

std::vector<float> initial_centroids(std::span<const float> weights, int k, CentroidInit init) {
    check_k(static_cast<std::size_t>(k));
    if (weights.empty()) throw Error("k-means: no weights to cluster");
    std::vector<float> c(static_cast<std::size_t>(k));
    if (init == CentroidInit::Linear) {
        const auto [lo, hi] = std::minmax_element(weights.begin(), weights.end());
        for (int j = 0; j < k; ++j)
            c[j] = k == 1 ? 0.5f * (*lo + *hi) : static_cast<float>(*lo + (static_cast<double>(*hi) - *lo) * j / (k - 1));
        return c;
    }
    std::vector<float> sorted(weights.begin(), weights.end());
    std::sort(sorted.begin(), sorted.end());
    const double n = static_cast<double>(sorted.size());
    for (int j = 0; j < k; ++j) {
        // Centre of the j-th of k equal-mass slices of the empirical CDF.
        const double pos = (j + 0.5) / k * n - 0.5;
        const auto i0 = static_cast<std::size_t>(std::clamp(std::floor(pos), 0.0, n - 1));
        const auto i1 = std::min(i0 + 1, sorted.size() - 1);
        const double f = std::clamp(pos - static_cast<double>(i0), 0.0, 1.0);
        c[j] = static_cast<float>(sorted[i0] + f * (static_cast<double>(sorted[i1]) - sorted[i0]));
    }
    return c;
}

Clustering kmeans_1d(std::span<const float> weights, const KMeansOptions& opt) {
    check_k(static_cast<std::size_t>(opt.k));
    if (weights.empty()) throw Error("k-means: no weights to cluster");
    if (!opt.preserve_zeros) return kmeans_1d(weights, initial_centroids(weights, opt.k, opt.init), opt);
    std::vector<float> nonzero;
    for (float w : weights)
        if (w != 0.0f) nonzero.push_back(w);
    if (nonzero.size() == weights.size() || opt.k < 2) return kmeans_1d(weights, initial_centroids(weights, opt.k, opt.init), opt);
    std::vector<float> init = nonzero.empty() ? std::vector<float>{} : initial_centroids(nonzero, opt.k - 1, opt.init);
    init.push_back(0.0f);
    return kmeans_1d(weights, std::move(init), opt);
}

namespace {

// Per-cluster sums and counts of one assignment pass.
struct ClusterStats {
    std::vector<double> sum;
    std::vector<std::size_t> count;
};

// Assigns every weight to its nearest centroid (zeros to the fixed zero centroid when there is
// one) and returns the squared error.
double assign(std::span<const float> weights, bool fixed_zero, Clustering& c, ClusterStats& st) {
    const std::size_t k = c.centroids.size();
    std::vector<double> mids(k - 1);
    for (std::size_t j = 0; j + 1 < k; ++j) mids[j] = 0.5 * (static_cast<double>(c.centroids[j]) + c.centroids[j + 1]);
    st.sum.assign(k, 0.0);
    st.count.assign(k, 0);
    double err = 0.0;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        const float w = weights[i];
        std::uint16_t j;
        if (fixed_zero && w == 0.0f) {
            j = static_cast<std::uint16_t>(c.zero_centroid);
        } else {
            j = nearest(mids, w);
            // Repeated centroids: the nearest search picks the first; move off the zero one.
            if (fixed_zero && j == c.zero_centroid) {
                const double dl = j > 0 ? std::abs(static_cast<double>(w) - c.centroids[j - 1]) : std::numeric_limits<double>::infinity();
                const double dr = j + 1 < static_cast<int>(k) ? std::abs(static_cast<double>(w) - c.centroids[j + 1]) : std::numeric_limits<double>::infinity();
                if (std::isfinite(dl) || std::isfinite(dr)) j = static_cast<std::uint16_t>(dl <= dr ? j - 1 : j + 1);
            }
        }
        c.indices[i] = j;
        const double d = static_cast<double>(w) - c.centroids[j];
        err += d * d;
        st.sum[j] += w;
        ++st.count[j];
    }
    return err;
}

// An empty cluster moves onto one of the worst-represented weights (a different one each), so
// duplicate initial centroids (quantiles of tied data) do not stay wasted. It held no weight, so
// moving it cannot raise the error before the next assignment.
void reseed_empty_clusters(std::span<const float> weights, bool fixed_zero, const ClusterStats& st, Clustering& c) {
    std::vector<std::size_t> empty;
    for (std::size_t j = 0; j < c.centroids.size(); ++j)
        if (!st.count[j] && !(fixed_zero && static_cast<int>(j) == c.zero_centroid)) empty.push_back(j);
    if (empty.empty()) return;
    std::vector<std::pair<double, std::size_t>> worst;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        if (fixed_zero && weights[i] == 0.0f) continue;
        const double d = static_cast<double>(weights[i]) - c.centroids[c.indices[i]];
        if (d != 0.0) worst.emplace_back(-d * d, i);
    }
    const std::size_t m = std::min(worst.size(), 4 * empty.size() + 64);
    std::partial_sort(worst.begin(), worst.begin() + static_cast<std::ptrdiff_t>(m), worst.end());
    std::size_t next = 0;
    for (std::size_t j : empty) {
        while (next < m && std::find(c.centroids.begin(), c.centroids.end(), weights[worst[next].second]) != c.centroids.end()) ++next;
        if (next == m) break;
        c.centroids[j] = weights[worst[next++].second];
    }
}

}  // namespace

Clustering kmeans_1d(std::span<const float> weights, std::vector<float> initial, const KMeansOptions& opt) {
    check_k(initial.size());
    if (weights.empty()) throw Error("k-means: no weights to cluster");
    for (float w : weights)
        if (!std::isfinite(w)) throw Error("k-means: weights contain a NaN or infinity");
    std::sort(initial.begin(), initial.end());
    Clustering c;
    c.centroids = std::move(initial);
    const std::size_t k = c.centroids.size();
    // The fixed zero centroid, when asked for, is the exact 0 that kmeans_1d(opt) appended; keep
    // zeros on it and everything else off it, so sparsity survives exactly.
    const bool fixed_zero = opt.preserve_zeros && std::count(weights.begin(), weights.end(), 0.0f) > 0 &&
                            std::find(c.centroids.begin(), c.centroids.end(), 0.0f) != c.centroids.end();
    c.indices.assign(weights.size(), 0);
    ClusterStats st;
    double previous = std::numeric_limits<double>::infinity();
    for (int it = 0; it <= std::max(opt.max_iterations, 0); ++it) {
        if (fixed_zero) c.zero_centroid = static_cast<int>(std::find(c.centroids.begin(), c.centroids.end(), 0.0f) - c.centroids.begin());
        const double err = assign(weights, fixed_zero, c, st);
        c.error_history.push_back(err);
        const bool converged = err == 0.0 || (it > 0 && previous - err <= opt.tolerance * previous);
        if (it == opt.max_iterations || converged) break;
        previous = err;
        // Update: the mean of each cluster; an empty cluster keeps its centroid.
        for (std::size_t j = 0; j < k; ++j) {
            if (fixed_zero && static_cast<int>(j) == c.zero_centroid) continue;
            if (st.count[j]) c.centroids[j] = static_cast<float>(st.sum[j] / static_cast<double>(st.count[j]));
        }
        reseed_empty_clusters(weights, fixed_zero, st, c);
        // Means of 1-D Voronoi cells stay in order, but float rounding can swap two that are equal
        // in double; restoring the order keeps the binary search valid (assignments are redone next).
        if (!std::is_sorted(c.centroids.begin(), c.centroids.end())) std::sort(c.centroids.begin(), c.centroids.end());
    }
    return c;
}

}  // namespace firesight::compress
