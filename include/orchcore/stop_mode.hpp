// How a worker pool or a coordinator stops.
#pragma once

namespace orchcore {

enum class stop_mode {
    graceful,  ///< stop taking new work, finish what was taken
    abort,     ///< stop taking new work, drop what has not started, wait for what runs
};

}  // namespace orchcore
