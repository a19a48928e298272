// The table of the runtime's backends: what a Session needs to know about each one. Adding a
// backend is one executor file, one factory declaration in executor.h and one row in backends.cpp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "executor.h"
#include "firesight/engine/session.h"

namespace firesight::engine {

struct BackendInfo {
    Backend id;
    const char* name;  // as parse_backend() takes it and backend_name() prints it
    bool (*available)();  // built into this binary (and usable on this CPU)
    std::unique_ptr<Executor> (*make)(const Graph& g, const SessionOptions& options);
    // The ops it takes: whether it runs `op` of `g`, and when not, what it lacks (in `why`). The
    // Session asks for every op before making the executor.
    bool (*supports)(const Graph& g, const Op& op, std::string& why);
};

// Every backend, built or not (Auto is a choice among them, not a backend).
const std::vector<BackendInfo>& backend_registry();
// The row of `b`; firesight::Error for Auto.
const BackendInfo& backend_info(Backend b);
// Throws firesight::Error naming the first op of `g` that backend `b` does not take.
void check_backend_takes(Backend b, const Graph& g);

}  // namespace firesight::engine
