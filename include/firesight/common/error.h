// The one exception type of the library: a message that says what was wrong and where.
// The CLI catches it, prints one line and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace firesight {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace firesight
