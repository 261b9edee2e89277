// Must not compile, with a known message: proves the compile-fail machinery can tell.
#include <trainperf/trainperf.hpp>
static_assert(sizeof(int) == 0, "trainperf compile-fail sanity check");
