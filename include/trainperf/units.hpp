// trainperf — units and their printing. Bytes are 64-bit integers; printing always says
// which unit it uses: GiB (2^30, what the seed reports print as "mem") or GB (10^9).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace trainperf {

inline constexpr std::int64_t KiB = std::int64_t{1} << 10;
inline constexpr std::int64_t MiB = std::int64_t{1} << 20;
inline constexpr std::int64_t GiB = std::int64_t{1} << 30;
inline constexpr std::int64_t KB = 1'000;
inline constexpr std::int64_t MB = 1'000'000;
inline constexpr std::int64_t GB = 1'000'000'000;

enum class byte_unit { gib, gb };

// "74.20 GiB" / "79.67 GB", with the given number of decimals.
inline std::string format_bytes(std::int64_t bytes, byte_unit unit = byte_unit::gib, int decimals = 2) {
  const double div = unit == byte_unit::gib ? static_cast<double>(GiB) : static_cast<double>(GB);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f %s", decimals, static_cast<double>(bytes) / div,
                unit == byte_unit::gib ? "GiB" : "GB");
  return buf;
}

// An integer with thousands separators: 6,738,415,616.
inline std::string format_count(std::int64_t n) {
  const bool negative = n < 0;
  const std::uint64_t magnitude =
      negative ? std::uint64_t{0} - static_cast<std::uint64_t>(n) : static_cast<std::uint64_t>(n);
  const std::string digits = std::to_string(magnitude);
  std::string out;
  const int lead = static_cast<int>(digits.size() % 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && static_cast<int>(i % 3) == lead) out += ',';
    out += digits[i];
  }
  return negative ? "-" + out : out;
}

// A measurement in six significant digits, as %g prints it: "989.4e+12" style magnitudes
// stay short whatever their size ("1e+308", "1e-320").
inline std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

namespace detail {
// Text for an SVG or XML element: <, > and & escaped.
inline std::string xml_escape(std::string_view text) {
  std::string t;
  for (char c : text) t += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return t;
}
}  // namespace detail

}  // namespace trainperf
