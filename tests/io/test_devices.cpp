// Devices from a JSON file (io/devices.hpp): read as the built-in table reads, every refusal a
// one-line error naming the entry's field.
#include <doctest/doctest.h>

#include <string>

#include <trainperf/io/devices.hpp>
#include <trainperf/io/profile.hpp>
#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
// The field and message of the config_error reading `text` throws.
std::pair<std::string, std::string> refusal(const std::string& text) {
  try {
    (void)io::devices_from_json(text, "devices.json", "devices-file");
  } catch (const config_error& e) {
    return {e.field(), e.what()};
  }
  return {"(accepted)", ""};
}
}  // namespace

TEST_CASE("a devices file reads into device specs the rest of trainperf uses like the built-in ones") {
  const io::device_table t = io::devices_from_json(
      R"([{"name": "MyNPU", "memory_gib": 64, "peak_tflops": {"bf16": 280, "fp32": 36.5},
          "memory_bandwidth_gbps": 1600, "intra_node_gbps": 392, "source": "vendor datasheet"},
         {"name": "Other", "memory_gib": 24.5, "source": "lab measurement"}])",
      "devices.json", "devices-file");
  REQUIRE(t.devices.size() == 2);
  const device_spec* npu = t.find("mynpu");  // case ignored, as get_device
  REQUIRE(npu != nullptr);
  CHECK(npu->memory_bytes == 64 * GiB);
  CHECK(require_peak(*npu, dtype::bf16) == 280e12);
  CHECK(require_peak(*npu, dtype::fp32) == 36.5e12);
  CHECK(npu->memory_bandwidth == 1600e9);
  CHECK(npu->intra_node_bandwidth == 392e9);
  CHECK(npu->inter_node_bandwidth == 0);  // not given: unknown
  CHECK(npu->source == "vendor datasheet");
  // A dtype the file does not give is "not published", refused with what is known.
  CHECK_THROWS_WITH_AS(require_peak(*npu, dtype::fp8), doctest::Contains("known: fp32, bf16"), config_error);
  CHECK(t.find("Other")->memory_bytes == static_cast<std::int64_t>(24.5 * GiB));
  CHECK(t.find("nothing") == nullptr);
}

TEST_CASE("device_to_json writes what devices_from_json reads back (what trainperf calibrate writes)") {
  const io::device_table t = io::devices_from_json(
      R"([{"name": "MyNPU", "memory_gib": 64, "peak_tflops": {"bf16": 280, "fp32": 36.5},
          "memory_bandwidth_gbps": 1600, "intra_node_gbps": 392, "source": "vendor datasheet"}])",
      "devices.json", "devices-file");
  const nlohmann::json j = io::device_to_json(t.devices[0]);
  CHECK(j["peak_tflops"]["bf16"] == 280.0);
  CHECK(j["memory_gib"] == 64.0);
  CHECK_FALSE(j.contains("inter_node_gbps"));  // unknown stays unwritten
  const io::device_table back = io::devices_from_json(nlohmann::json::array({j}).dump(), "again.json", "devices-file");
  const device_spec& d = back.devices[0];
  CHECK(d.name == "MyNPU");
  CHECK(d.memory_bytes == 64 * GiB);
  CHECK(require_peak(d, dtype::fp32) == doctest::Approx(36.5e12));
  CHECK(require_peak(d, dtype::bf16) == doctest::Approx(280e12));
  CHECK_FALSE(d.peak(dtype::fp16).has_value());
  CHECK(d.memory_bandwidth == doctest::Approx(1600e9));
  CHECK(d.intra_node_bandwidth == doctest::Approx(392e9));
  CHECK(d.inter_node_bandwidth == 0);
  CHECK(d.source == "vendor datasheet");
}

TEST_CASE("a devices file's mistakes are named by entry and field") {
  CHECK(refusal(R"({"name": "x"})").second.find("must be a non-empty JSON array of devices") != std::string::npos);
  CHECK(refusal("[]").first == "devices-file");
  CHECK(refusal(R"([{"memory_gib": 8, "source": "s"}])").first == "devices[0].name");
  CHECK(refusal(R"([{"name": "a", "memory_gib": 8}])").second.find("say where the figures come from") !=
        std::string::npos);
  CHECK(refusal(R"([{"name": "a", "source": "s"}])").first == "devices[0].memory_gib");
  CHECK(refusal(R"([{"name": "a", "memory_gib": -1, "source": "s"}])").second.find("must be positive") !=
        std::string::npos);
  CHECK(refusal(R"([{"name": "a", "memory_gib": "64", "source": "s"}])").second.find("must be a number") !=
        std::string::npos);
  CHECK(refusal(R"([{"name": "a", "memory_gib": 8, "source": "s", "peak": 1}])").first == "devices[0].peak");
  CHECK(refusal(R"([{"name": "a", "memory_gib": 8, "source": "s", "peak_tflops": {"int8": 1}}])").first ==
        "devices[0].peak_tflops.int8");
  CHECK(refusal(R"([{"name": "a", "memory_gib": 8, "source": "s"}, {"name": "A", "memory_gib": 8, "source": "s"}])")
            .second.find("is already in this file") != std::string::npos);
  CHECK(refusal(R"([{"name": "H100", "memory_gib": 8, "source": "s"}])").second.find("in the built-in table") !=
        std::string::npos);
  CHECK(refusal(R"([3])").first == "devices[0]");
  CHECK(refusal(R"([{"name": "a", "name": "b", "memory_gib": 8, "source": "s"}])").second.find("appears twice") !=
        std::string::npos);
}

TEST_CASE("a profile's measured GEMM shapes are written and read back; a wrong one is named") {
  device_profile p = builtin_profile("A100-80GB");
  CHECK_FALSE(io::profile_to_json(p).contains("measured_gemms"));  // the built-in ones have none
  p.measured = {"this-cpu", dtype::fp32, {{1024, 256, 128, 6.25e-4}, {1024, 64, 128, 2.6e-4}}};
  const nlohmann::json j = io::profile_to_json(p);
  const device_profile back = io::profile_from_json(j.dump(), "p.json", "profile");
  CHECK(back.measured.device == "this-cpu");
  CHECK(back.measured.type == dtype::fp32);
  REQUIRE(back.measured.shapes.size() == 2);
  CHECK(back.measured.shapes[1].n == 64);
  CHECK(back.measured.shapes[1].k == 128);
  CHECK(back.measured.shapes[1].seconds == 2.6e-4);
  CHECK(back.gemm_efficiency == p.gemm_efficiency);
  const auto refused = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json bad = j;
    bad["measured_gemms"][key] = value;
    try {
      (void)io::profile_from_json(bad.dump(), "p.json", "profile");
    } catch (const config_error& e) {
      return e.field() + ": " + e.what();
    }
    return std::string("(accepted)");
  };
  const auto shape = [](double seconds) {
    return nlohmann::json::array({{{"m", 1024}, {"n", 64}, {"k", 128}, {"seconds", seconds}}});
  };
  CHECK(refused("shapes", shape(-1)).find("measured_gemms.shapes[0].seconds") != std::string::npos);
  CHECK(refused("shapes", nlohmann::json::array({{{"m", 1024}, {"n", 64}, {"k", 128}}}))
            .find("missing required field \"measured_gemms.shapes[0].seconds\"") != std::string::npos);
  CHECK(
      refused("shapes", nlohmann::json::array({{{"m", 1024}, {"n", 64}, {"k", 128}, {"seconds", 1e-4}, {"batch", 2}}}))
          .find("unknown field \"measured_gemms.shapes[0].batch\"") != std::string::npos);
  CHECK(refused("shapes", nlohmann::json::object()).find("must be an array") != std::string::npos);
  CHECK(refused("dtype", "fp64").find("unknown dtype \"fp64\"") != std::string::npos);
  nlohmann::json twice = shape(1e-4);
  twice.push_back(twice[0]);
  CHECK(refused("shapes", twice).find("measured twice") != std::string::npos);
}
