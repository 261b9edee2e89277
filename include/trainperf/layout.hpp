// trainperf — rank layouts: a process mesh is a shape plus strides over named axes (in the
// spirit of a CuTe layout); process groups are the orthogonal slices of it. The groups are
// exactly the ones Megatron-LM's RankGenerator builds for the same sizes and order string
// (megatron/core/parallel_state.py: generate_masked_orthogonal_rank_groups,
// initialize_model_parallel).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "parallel.hpp"

namespace trainperf {

enum class axis { tp, cp, ep, dp, pp };
inline constexpr int axis_count = 5;
inline constexpr std::string_view axis_names[axis_count] = {"tp", "cp", "ep", "dp", "pp"};
inline constexpr std::string_view default_order = "tp-cp-ep-dp-pp";

namespace reason {
inline void order_names_an_unknown_axis() {}
inline void order_names_an_axis_twice() {}
inline void order_leaves_out_an_axis_larger_than_1() {}
inline void rank_is_outside_the_world() {}
inline void expert_dp_must_equal_dp_when_pp_is_not_outermost() {}
}  // namespace reason

// Sizes per axis, indexed by axis.
using axis_sizes = std::array<std::int64_t, axis_count>;

// One process mesh: the axes in `order` (first = fastest varying, stride 1).
class process_mesh {
 public:
  // Axes left out of `order` must have size 1 and are appended, as Megatron-LM does.
  constexpr process_mesh(const axis_sizes& sizes, std::string_view order) : sizes_(sizes) {
    for (int a = 0; a < axis_count; ++a) detail::require_positive(sizes[a], axis_names[a]);
    std::array<bool, axis_count> seen{};
    std::string_view rest = order;
    while (!rest.empty() || count_ < axis_count) {
      if (rest.empty()) {  // append the axes the order left out
        for (int a = 0; a < axis_count; ++a) {
          if (seen[a]) continue;
          detail::require(sizes[a] == 1, reason::order_leaves_out_an_axis_larger_than_1, "order", [&] {
            return "order '" + std::string(order) + "' leaves out " + std::string(axis_names[a]) + " of size " +
                   detail::str(sizes[a]) + "; name every axis whose size is above 1";
          });
          seen[a] = true;
          order_[count_++] = static_cast<axis>(a);
        }
        break;
      }
      const auto dash = rest.find('-');
      const std::string_view token = rest.substr(0, dash);
      rest = dash == std::string_view::npos ? std::string_view{} : rest.substr(dash + 1);
      const int a = index_of(token);
      detail::require(a >= 0, reason::order_names_an_unknown_axis, "order", [&] {
        return "order '" + std::string(order) + "' names '" + std::string(token) +
               "'; axes are tp, cp, ep, dp, pp joined by '-' (e.g. tp-cp-ep-dp-pp)";
      });
      detail::require(!seen[a], reason::order_names_an_axis_twice, "order",
                      [&] { return "order '" + std::string(order) + "' names " + std::string(token) + " twice"; });
      seen[a] = true;
      order_[count_++] = static_cast<axis>(a);
    }
    std::int64_t stride = 1;
    for (int i = 0; i < axis_count; ++i) {
      strides_[static_cast<int>(order_[i])] = stride;
      stride = detail::checked_mul(stride, sizes_[static_cast<int>(order_[i])], "world size");
    }
    world_ = stride;
  }

  [[nodiscard]] constexpr std::int64_t world() const { return world_; }
  [[nodiscard]] constexpr std::int64_t size(axis a) const { return sizes_[static_cast<int>(a)]; }
  [[nodiscard]] constexpr std::int64_t stride(axis a) const { return strides_[static_cast<int>(a)]; }
  // The axes, fastest first.
  [[nodiscard]] constexpr const std::array<axis, axis_count>& order() const { return order_; }
  [[nodiscard]] std::string order_string() const {
    std::string s;
    for (axis a : order_) {
      if (!s.empty()) s += '-';
      s += axis_names[static_cast<int>(a)];
    }
    return s;
  }

  // Coordinates of a rank, indexed by axis.
  [[nodiscard]] constexpr axis_sizes coords(std::int64_t rank) const {
    require_rank(rank);
    axis_sizes c{};
    for (int a = 0; a < axis_count; ++a) c[a] = (rank / strides_[a]) % sizes_[a];
    return c;
  }
  [[nodiscard]] constexpr std::int64_t rank(const axis_sizes& coords) const {
    std::int64_t r = 0;
    for (int a = 0; a < axis_count; ++a) r += coords[a] * strides_[a];
    return r;
  }

  // The groups spanned by the axes named in `token` ("tp", "dp-cp", "tp-pp", ...): ranks that
  // differ only along those axes. Same order as Megatron-LM: groups by the remaining axes
  // (fastest first), members by the named axes (in mesh order). `max_groups` (>= 0) stops after
  // that many, so a caller that shows a few groups of a large world does not build them all.
  [[nodiscard]] constexpr std::vector<std::vector<std::int64_t>> groups(std::string_view token,
                                                                        std::int64_t max_groups = -1) const {
    std::array<bool, axis_count> masked{};
    std::string_view rest = token;
    while (!rest.empty()) {
      const auto dash = rest.find('-');
      const std::string_view t = rest.substr(0, dash);
      rest = dash == std::string_view::npos ? std::string_view{} : rest.substr(dash + 1);
      const int a = index_of(t);
      detail::require(a >= 0, reason::order_names_an_unknown_axis, "group", [&] {
        return "group '" + std::string(token) + "' names '" + std::string(t) + "'; axes are tp, cp, ep, dp, pp";
      });
      masked[a] = true;
    }
    std::vector<axis> in, out;
    for (axis a : order_) (masked[static_cast<int>(a)] ? in : out).push_back(a);
    std::int64_t group_size = 1;
    for (axis a : in) group_size *= size(a);
    std::vector<std::vector<std::int64_t>> result;
    const std::int64_t count = max_groups >= 0 ? std::min(max_groups, world_ / group_size) : world_ / group_size;
    for (std::int64_t g = 0; g < count; ++g) {
      std::int64_t base = 0, rem = g;
      for (axis a : out) {
        base += (rem % size(a)) * stride(a);
        rem /= size(a);
      }
      std::vector<std::int64_t> members;
      for (std::int64_t k = 0; k < group_size; ++k) {
        std::int64_t r = base, rk = k;
        for (axis a : in) {
          r += (rk % size(a)) * stride(a);
          rk /= size(a);
        }
        members.push_back(r);
      }
      result.push_back(std::move(members));
    }
    return result;
  }

  // The group of `token` that contains `rank`.
  [[nodiscard]] constexpr std::vector<std::int64_t> group_of(std::int64_t rank, std::string_view token) const {
    require_rank(rank);
    for (auto& g : groups(token))
      for (std::int64_t r : g)
        if (r == rank) return g;
    return {};
  }

 private:
  static constexpr int index_of(std::string_view t) {
    for (int a = 0; a < axis_count; ++a)
      if (axis_names[a] == t) return a;
    return -1;
  }
  constexpr void require_rank(std::int64_t rank) const {
    detail::require(rank >= 0 && rank < world_, reason::rank_is_outside_the_world, "rank", [&] {
      return "rank " + detail::str(rank) + " is outside the world of " + detail::str(world_) + " ranks (0.." +
             detail::str(world_ - 1) + ")";
    });
  }

  axis_sizes sizes_{};
  axis_sizes strides_{};
  std::array<axis, axis_count> order_{};
  int count_ = 0;
  std::int64_t world_ = 1;
};

// A rank's place in both meshes Megatron-LM builds: the decoder's (tp, cp, dp, pp; ep = 1)
// and the experts' (expert tp, ep, expert dp, pp; cp folded into expert dp).
struct rank_coords {
  std::int64_t rank = 0;
  std::int64_t tp = 0, cp = 0, dp = 0, pp = 0;
  std::int64_t etp = 0, ep = 0, edp = 0;
};

class layout {
 public:
  // The layout of `world` ranks under config c (dp derived when 0) and an order string.
  constexpr layout(std::int64_t world, const parallel_config& c, std::string_view order = default_order)
      : decoder_(decoder_sizes(world, c), order), expert_(expert_sizes(world, c), order) {
    // Megatron-LM: unless pp is the outermost axis, both meshes must agree on dp.
    const bool pp_last = order.ends_with("pp");  // the order as given, before size-1 axes are appended
    detail::require(c.pp == 1 || pp_last || expert_.size(axis::dp) == decoder_.size(axis::dp),
                    reason::expert_dp_must_equal_dp_when_pp_is_not_outermost, "order", [&] {
                      return "with pp not the last axis of the order, the expert data-parallel size (" +
                             detail::str(expert_.size(axis::dp)) + ") must equal dp (" +
                             detail::str(decoder_.size(axis::dp)) + "); put pp last or change ep/etp";
                    });
  }

  [[nodiscard]] constexpr std::int64_t world() const { return decoder_.world(); }
  [[nodiscard]] constexpr const process_mesh& decoder() const { return decoder_; }
  [[nodiscard]] constexpr const process_mesh& expert() const { return expert_; }

  [[nodiscard]] constexpr rank_coords coords(std::int64_t rank) const {
    const axis_sizes d = decoder_.coords(rank), e = expert_.coords(rank);
    const auto at = [](const axis_sizes& s, axis a) { return s[static_cast<int>(a)]; };
    return {rank,
            at(d, axis::tp),
            at(d, axis::cp),
            at(d, axis::dp),
            at(d, axis::pp),
            at(e, axis::tp),
            at(e, axis::ep),
            at(e, axis::dp)};
  }

  // Megatron-LM's groups by name.
  //   decoder: "tp", "cp", "dp", "pp", "dp-cp", "tp-pp" (model parallel), "tp-cp", "tp-dp-cp", "tp-dp"
  //   experts: "ep", "etp" (expert tensor parallel), "edp" (expert data parallel), "etp-ep", "etp-ep-pp"
  //   "embedding": first and last rank of each pipeline group; "position_embedding": the first.
  // `max_groups` (>= 0): at most that many, the first ones.
  [[nodiscard]] constexpr std::vector<std::vector<std::int64_t>> groups(std::string_view name,
                                                                        std::int64_t max_groups = -1) const {
    if (name == "ep") return expert_.groups("ep", max_groups);
    if (name == "etp") return expert_.groups("tp", max_groups);
    if (name == "edp") return expert_.groups("dp", max_groups);
    if (name == "etp-ep") return expert_.groups("tp-ep", max_groups);
    if (name == "etp-ep-pp") return expert_.groups("tp-ep-pp", max_groups);
    if (name == "mp") return decoder_.groups("tp-pp", max_groups);
    if (name == "embedding" || name == "position_embedding") {
      std::vector<std::vector<std::int64_t>> out;
      for (auto& g : decoder_.groups("pp", max_groups)) {
        if (name == "position_embedding" || g.size() == 1)
          out.push_back({g.front()});
        else
          out.push_back({g.front(), g.back()});
      }
      return out;
    }
    return decoder_.groups(name, max_groups);
  }

 private:
  static constexpr axis_sizes decoder_sizes(std::int64_t world, const parallel_config& c) {
    return {c.tp, c.cp, 1, resolved_dp(c, world), c.pp};
  }
  static constexpr axis_sizes expert_sizes(std::int64_t world, const parallel_config& c) {
    const std::int64_t etp = c.resolved_etp();
    detail::require(world % (etp * c.ep * c.pp) == 0, reason::world_size_is_not_divisible_by_ep_times_etp_times_pp,
                    "ep", [&] {
                      return "world size " + detail::str(world) + " is not divisible by ep " + detail::str(c.ep) +
                             " x expert tp " + detail::str(etp) + " x pp " + detail::str(c.pp);
                    });
    return {etp, 1, c.ep, world / (etp * c.ep * c.pp), c.pp};
  }

  process_mesh decoder_;
  process_mesh expert_;
};

}  // namespace trainperf
