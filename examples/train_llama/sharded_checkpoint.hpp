// train_llama's checkpoints of tensor- and pipeline-parallel runs, and resharding. A parallel run
// writes one checkpoint file per (tensor rank, pipeline stage) — checkpoint.hpp's format, its
// header naming the shard's own dimensions — from its first data-parallel replica, then a
// manifest at the --checkpoint path naming the layout, the step and the shard files, renamed into
// place last: a crash at any moment leaves the previous manifest and its complete shard files
// (files of a step are named by it; the previous step's are removed after the new manifest).
// Resuming reads either kind of checkpoint (a single-process file or a manifest) under any
// layout, through the whole model's layout (trainperf's partitioners say where each part sits):
// each rank reads the parts one at a time and copies what overlaps its own elements (a
// single-process checkpoint is one part: the whole model).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/error.hpp>
#include <trainperf/io/file.hpp>
#include <trainperf/partition.hpp>

#include "checkpoint.hpp"
#include "parallel.hpp"
#include "params.hpp"

namespace train_llama {

inline constexpr std::string_view manifest_magic = "train_llama sharded checkpoint 1";

struct checkpoint_manifest {
  std::int64_t step = 0, tp = 1, pp = 1, vpp = 1;
  std::uint64_t seed = 0;
};

namespace detail {
inline std::string shard_path(const std::string& manifest, std::int64_t step, std::int64_t t, std::int64_t p) {
  return fmt::format("{}.step{}.tp{}-pp{}", manifest, step, t, p);
}
// The chunks pipeline stage `stage` holds under (pp, vpp), from trainperf's partitioner.
inline model_part part_of(const trainperf::transformer_spec& spec, std::int64_t tp, std::int64_t tp_rank,
                          std::int64_t pp, std::int64_t vpp, std::int64_t stage) {
  model_part part{tp, tp_rank, {}};
  for (const auto& c : trainperf::partition_layers(spec.layers, {.pp = pp, .vpp = vpp}))
    if (c.stage == stage) part.chunks.push_back(c);
  return part;
}
inline checkpoint_manifest read_manifest(const std::string& path, const std::string& bytes) {
  std::istringstream in(bytes);
  std::string line, key;
  std::getline(in, line);
  checkpoint_manifest m;
  int seen = 0;
  while (in >> key) {
    if (key == "step")
      in >> m.step, ++seen;
    else if (key == "seed")
      in >> m.seed, ++seen;
    else if (key == "tp")
      in >> m.tp, ++seen;
    else if (key == "pp")
      in >> m.pp, ++seen;
    else if (key == "vpp")
      in >> m.vpp, ++seen;
    else
      in.setstate(std::ios::failbit);
  }
  if (seen != 5 || in.bad() || m.tp < 1 || m.pp < 1 || m.vpp < 1 || m.step < 0)
    throw trainperf::config_error("resume", path +
                                                " is not a complete train_llama checkpoint manifest (it needs step, "
                                                "seed, tp, pp and vpp lines); give the path --checkpoint wrote");
  return m;
}
}  // namespace detail

// Writes this rank's part after `step` (every rank calls it; the first data-parallel replica
// writes), then rank 0 the manifest, once every shard is on disk.
inline void save_sharded_checkpoint(const std::string& path, const llama_params& m, const parallel_runtime& rt,
                                    std::int64_t step, std::uint64_t seed) {
  const auto& c = rt.coords();
  if (c.dp == 0) save_checkpoint(detail::shard_path(path, step, c.tp, c.pp), m, step, seed);
  rt.barrier();  // every shard written before the manifest names them
  if (c.rank != 0) return;
  // The checkpoint there before, if it is a manifest: its shards go once the new one is in place.
  std::optional<checkpoint_manifest> previous;
  {
    std::ifstream old(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(old)), std::istreambuf_iterator<char>());
    if (text.rfind(manifest_magic, 0) == 0) try {
        previous = detail::read_manifest(path, text);
      } catch (const trainperf::config_error&) {  // an incomplete manifest names no shards to remove
      }
  }
  const std::string text = fmt::format("{}\nstep {}\nseed {}\ntp {}\npp {}\nvpp {}\n", manifest_magic, step, seed,
                                       rt.tp(), rt.pp(), rt.vpp());
  write_atomically(path, "checkpoint", [&](int fd) { return detail::write_all(fd, text.data(), text.size()); });
  if (previous && previous->step != step) {  // no manifest names them now
    std::error_code ec;
    for (std::int64_t t = 0; t < previous->tp; ++t)
      for (std::int64_t p = 0; p < previous->pp; ++p)
        std::filesystem::remove(detail::shard_path(path, previous->step, t, p), ec);
  }
}

// Loads the checkpoint at `path` (a single-process file or a manifest, under any layout) into
// m, this rank's part of the model, and returns its step.
inline std::int64_t load_any_checkpoint(const std::string& path, llama_params& m, std::uint64_t seed) {
  const bool whole_here = m.tp == 1 && static_cast<std::int64_t>(m.layers.size()) == m.L;
  std::string head;
  {
    std::ifstream in(path, std::ios::binary);
    std::getline(in, head);
  }
  if (head != manifest_magic && whole_here) return load_checkpoint(path, m, seed);  // as written
  // This rank's runs by their place in the whole model; each part read copies what overlaps them.
  const llama_params whole(m.spec, {}, /*allocate=*/false);
  std::vector<std::array<std::int64_t, 3>> mine;  // (offset in whole, offset here, count)
  m.for_each_run(whole, [&](std::int64_t here, std::int64_t there, std::int64_t n) {
    mine.push_back({there, here, n});
  });
  std::sort(mine.begin(), mine.end());
  const auto take = [&](const llama_params& part) {
    part.for_each_run(whole, [&](std::int64_t from, std::int64_t there, std::int64_t n) {
      auto it = std::upper_bound(mine.begin(), mine.end(),
                                 std::array<std::int64_t, 3>{there, std::numeric_limits<std::int64_t>::max(), 0});
      if (it != mine.begin()) --it;
      for (; it != mine.end() && (*it)[0] < there + n; ++it) {
        const std::int64_t lo = std::max(there, (*it)[0]), hi = std::min(there + n, (*it)[0] + (*it)[2]);
        if (lo >= hi) continue;
        for (auto [src, dst] : {std::pair{&part.params, &m.params}, std::pair{&part.adam_m, &m.adam_m},
                                std::pair{&part.adam_v, &m.adam_v}})
          std::copy_n(src->data() + from + (lo - there), hi - lo, dst->data() + (*it)[1] + (lo - (*it)[0]));
      }
    });
  };
  if (head != manifest_magic) {  // a single-process checkpoint: the whole model is its one part
    llama_params part(m.spec);
    const std::int64_t step = load_checkpoint(path, part, seed);
    take(part);
    return step;
  }
  const std::string bytes =
      trainperf::io::read_file(path, 4096, "resume", "a train_llama checkpoint manifest (written by --checkpoint)");
  const checkpoint_manifest man = detail::read_manifest(path, bytes);
  if (man.seed != seed)
    throw trainperf::config_error("resume", fmt::format("{} was written with --seed {}, and this run has --seed {}; "
                                                        "resume with the seed that wrote it",
                                                        path, man.seed, seed));
  for (std::int64_t t = 0; t < man.tp; ++t)
    for (std::int64_t p = 0; p < man.pp; ++p) {  // one part in memory at a time
      llama_params part(m.spec, detail::part_of(m.spec, man.tp, t, man.pp, man.vpp, p));
      const std::string shard = detail::shard_path(path, man.step, t, p);
      std::error_code ec;
      if (!std::filesystem::is_regular_file(shard, ec))
        throw trainperf::config_error(
            "resume", fmt::format("{} names {} (tensor rank {}, stage {}), which is missing; resume from a complete "
                                  "checkpoint",
                                  path, shard, t, p));
      if (load_checkpoint(shard, part, seed) != man.step)
        throw trainperf::config_error("resume",
                                      shard + " holds another step than its manifest; use another checkpoint");
      take(part);
    }
  return man.step;
}

}  // namespace train_llama
