#include <doctest/doctest.h>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("byte units are explicit: GiB is 2^30, GB is 10^9") {
  CHECK(GiB == 1073741824);
  CHECK(GB == 1000000000);
  // 80 GB of HBM is 74.51 GiB: 80e9 / 2^30 = 74.5058...
  CHECK(format_bytes(80 * GB) == "74.51 GiB");
  CHECK(format_bytes(80 * GB, byte_unit::gb) == "80.00 GB");
  CHECK(format_bytes(77 * GiB, byte_unit::gib, 0) == "77 GiB");
}

TEST_CASE("counts print with thousands separators") {
  CHECK(format_count(0) == "0");
  CHECK(format_count(999) == "999");
  CHECK(format_count(1000) == "1,000");
  CHECK(format_count(6738415616) == "6,738,415,616");
  CHECK(format_count(-124439808) == "-124,439,808");
  CHECK(format_count(INT64_MIN) == "-9,223,372,036,854,775,808");
}
