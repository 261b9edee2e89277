// --device NAME and --devices-file FILE, shared by `trainperf memory`, `mfu` and `devices`: a
// device from the built-in table (hardware.hpp) or from a JSON file of the user's own
// (io/devices.hpp).
#pragma once

#include <string>
#include <vector>

#include <trainperf/io/devices.hpp>
#include <trainperf/trainperf.hpp>

#include "cli.hpp"

namespace trainperf::cli {

inline flag devices_file_flag() {
  return {"devices-file", "FILE",
          "JSON array of extra devices: [{\"name\", \"memory_gib\", \"peak_tflops\": {\"bf16\": ...}, \"source\"}]"};
}

// The devices of --devices-file, or an empty table.
inline io::device_table devices_file_from_args(const args& a) {
  if (auto path = a.get("devices-file")) return io::read_devices(*path);
  return {};
}

// The built-in table's devices, then the file's.
inline std::vector<device_spec> all_devices(const io::device_table& file) {
  std::vector<device_spec> all(std::begin(devices), std::end(devices));
  all.insert(all.end(), file.devices.begin(), file.devices.end());
  return all;
}

// The device called `name`, looked up in `file` (from --devices-file) and in the built-in table;
// an unknown name is an error that says what to do.
inline const device_spec& find_device_or_throw(const std::string& name, const io::device_table& file) {
  if (const device_spec* d = file.find(name)) return *d;
  if (const device_spec* d = find_device(name)) return *d;
  if (std::string why = unpublished_device_message(name); !why.empty())
    throw config_error("device", why + "; describe it in a --devices-file with your vendor's figures");
  throw config_error("device",
                     trainperf::detail::unknown_name_message("device", name, all_devices(file), "known devices") +
                         " (or describe yours in a --devices-file)");
}

// The device --device names.
inline const device_spec& device_from_args(const args& a, const io::device_table& file) {
  return find_device_or_throw(*a.get("device"), file);
}

}  // namespace trainperf::cli
