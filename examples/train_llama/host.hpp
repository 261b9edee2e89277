// The machine the example trainer runs on: its memory and the process's resident set.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

namespace train_llama {

// The memory the machine has available now (MemAvailable, else MemTotal, from /proc/meminfo),
// in bytes; 0 when unknown.
inline std::uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0, total = 0;
  while (in >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    if (key == "MemTotal:") total = kib * 1024;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return total;
}

inline std::int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

// Resident set size now (bytes, from /proc/self/statm); 0 where that is not available.
inline std::int64_t current_rss_bytes() {
  std::ifstream in("/proc/self/statm");
  std::int64_t pages = 0, resident = 0;
  if (!(in >> pages >> resident)) return 0;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGE_SIZE));
}

}  // namespace train_llama
