// Small statistics over timings.
#pragma once
#include <vector>

namespace firesight {

// The q-quantile (0..1) of `values`, interpolated linearly between the two nearest ranks
// (q = 0.5: the median, the mean of the middle two for an even count). 0 for no values.
double percentile(std::vector<double> values, double q);

}  // namespace firesight
