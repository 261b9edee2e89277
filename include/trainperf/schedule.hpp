// trainperf — pipeline schedules: the ordered forward/backward actions of every stage for
// GPipe, 1F1B and interleaved 1F1B, their closed-form bubble and in-flight micro-batches, a
// simulator that plays the action lists with given times, and timelines (ASCII and SVG).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "parallel.hpp"
#include "units.hpp"

namespace trainperf {

enum class pass { forward, backward };

struct action {
  pass kind = pass::forward;
  std::int64_t micro_batch = 0;
  std::int64_t chunk = 0;  // virtual pipeline chunk (model chunk) on the stage
  constexpr bool operator==(const action&) const = default;
};

constexpr std::string_view to_string(pipeline_schedule k) {
  switch (k) {
    case pipeline_schedule::gpipe:
      return "gpipe";
    case pipeline_schedule::one_f_one_b:
      return "1f1b";
    case pipeline_schedule::interleaved:
      return "interleaved";
  }
  return "?";
}

namespace reason {
inline void interleaving_needs_micro_batches_a_multiple_of_pp() {}
inline void interleaving_needs_more_than_one_chunk() {}
inline void simulation_times_must_be_positive() {}
inline void schedule_is_too_long_to_enumerate() {}
}  // namespace reason

// make_schedule lists every pass of every stage: at most this many micro-batch x chunk slots
// over all stages (pp x micro-batches x vpp), about 200 MB of actions.
inline constexpr std::int64_t max_schedule_slots = std::int64_t{1} << 22;

struct schedule {
  pipeline_schedule kind = pipeline_schedule::one_f_one_b;
  std::int64_t pp = 1;
  std::int64_t micro_batches = 1;
  std::int64_t vpp = 1;
  std::vector<std::vector<action>> stages;  // per stage, in execution order

  // Idle time over useful time, in closed form (Narayanan et al. 2021, arXiv:2104.04473,
  // section 2.2): (p - 1) / m for GPipe and 1F1B, (p - 1) / (m x v) interleaved.
  [[nodiscard]] constexpr double bubble_fraction() const {
    return static_cast<double>(pp - 1) / static_cast<double>(micro_batches * vpp);
  }

  // Warm-up forwards per stage before the steady one-forward-one-backward phase, as
  // Megatron-LM counts them (num_warmup_microbatches): 1F1B p - s - 1, interleaved
  // (p - s - 1) x 2 + (v - 1) x p virtual micro-batches, GPipe all of them; capped at the total.
  std::vector<std::int64_t> warmup;

  // The most activations a stage holds at once, in micro-batches of the whole stage (a
  // chunk's forward holds 1 / vpp of it): 1F1B stage s holds min(p - s, m); GPipe holds m;
  // interleaved stage 0 holds p + (p - 1) / v (Korthikanti et al. 2022, section 4.2.3).
  [[nodiscard]] constexpr std::vector<double> inflight_peak() const {
    std::vector<double> peaks;
    for (const auto& st : stages) {
      std::int64_t live = 0, peak = 0;
      for (const action& a : st) {
        live += a.kind == pass::forward ? 1 : -1;
        peak = std::max(peak, live);
      }
      peaks.push_back(static_cast<double>(peak) / static_cast<double>(vpp));
    }
    return peaks;
  }
};

namespace detail {
// What every schedule needs of its arguments: positive sizes; interleaving with more than one
// chunk per stage and micro-batches a multiple of pp; no chunks without interleaving.
constexpr void check_schedule(pipeline_schedule kind, std::int64_t pp, std::int64_t m, std::int64_t vpp) {
  using detail::str;
  detail::require_positive(pp, "pp");
  detail::require_positive(m, "micro_batches");
  detail::require_positive(vpp, "vpp");
  if (kind == pipeline_schedule::interleaved) {
    detail::require(vpp > 1, reason::interleaving_needs_more_than_one_chunk, "vpp",
                    [&] { return "the interleaved schedule needs vpp > 1 model chunks per stage, got " + str(vpp); });
    detail::require(m % pp == 0, reason::interleaving_needs_micro_batches_a_multiple_of_pp, "micro_batches", [&] {
      return str(m) + " micro-batches are not a multiple of pp " + str(pp) +
             ", which the interleaved schedule needs; " + detail::nearest_multiples(m, pp) + " micro-batches";
    });
  } else {
    detail::require(vpp == 1, reason::interleaving_needs_more_than_one_chunk, "vpp", [&] {
      return "vpp " + str(vpp) + " needs the interleaved schedule; use the interleaved schedule or vpp 1";
    });
  }
}
}  // namespace detail

// The action lists of `kind` for pp stages, m micro-batches and vpp chunks per stage.
// 1F1B and interleaving follow Megatron-LM's megatron/core/pipeline_parallel/schedules.py
// (forward_backward_pipelining_without_interleaving / _with_interleaving).
constexpr schedule make_schedule(pipeline_schedule kind, std::int64_t pp, std::int64_t m, std::int64_t vpp = 1) {
  using detail::str;
  detail::check_schedule(kind, pp, m, vpp);
  detail::require(pp <= max_schedule_slots / vpp && m <= max_schedule_slots / (pp * vpp),
                  reason::schedule_is_too_long_to_enumerate, "micro_batches", [&] {
                    return "pp " + str(pp) + " x " + str(m) + " micro-batches x vpp " + str(vpp) +
                           " exceed the 2^22 = " + str(max_schedule_slots) +
                           " slots a schedule lists pass by pass; use fewer micro-batches (in-flight peaks stop "
                           "changing beyond 2 x pp of them; the bubble is (pp - 1) / (micro-batches x vpp))";
                  });
  schedule s{kind, pp, m, vpp, std::vector<std::vector<action>>(static_cast<std::size_t>(pp)), {}};
  for (std::int64_t st = 0; st < pp; ++st) {
    auto& list = s.stages[static_cast<std::size_t>(st)];
    if (kind == pipeline_schedule::gpipe) {
      for (std::int64_t i = 0; i < m; ++i) list.push_back({pass::forward, i, 0});
      for (std::int64_t i = 0; i < m; ++i) list.push_back({pass::backward, i, 0});
      s.warmup.push_back(m);
      continue;
    }
    if (kind == pipeline_schedule::one_f_one_b) {
      const std::int64_t warm = std::min(pp - st - 1, m), steady = m - warm;
      s.warmup.push_back(warm);
      for (std::int64_t i = 0; i < warm; ++i) list.push_back({pass::forward, i, 0});
      for (std::int64_t i = 0; i < steady; ++i) {
        list.push_back({pass::forward, warm + i, 0});
        list.push_back({pass::backward, i, 0});
      }
      for (std::int64_t i = steady; i < m; ++i) list.push_back({pass::backward, i, 0});
      continue;
    }
    // Interleaved: virtual micro-batch k runs on chunk (k mod (p x v)) / p (reversed for
    // backward), micro-batch (k / (p x v)) x p + k mod p.
    const std::int64_t total = m * vpp;
    const std::int64_t warm = m == pp ? total : std::min((pp - st - 1) * 2 + (vpp - 1) * pp, total);
    s.warmup.push_back(warm);
    const auto at = [&](std::int64_t k, pass p) {
      std::int64_t chunk = (k % (pp * vpp)) / pp;
      if (p == pass::backward) chunk = vpp - chunk - 1;
      return action{p, (k / (pp * vpp)) * pp + k % pp, chunk};
    };
    for (std::int64_t k = 0; k < warm; ++k) list.push_back(at(k, pass::forward));
    for (std::int64_t k = 0; k < total - warm; ++k) {
      list.push_back(at(warm + k, pass::forward));
      list.push_back(at(k, pass::backward));
    }
    for (std::int64_t k = total - warm; k < total; ++k) list.push_back(at(k, pass::backward));
  }
  return s;
}

// schedule::inflight_peak for any number of micro-batches, without listing the schedule: a
// stage's peak is its warm-up forwards plus the one that starts the steady phase, capped at all
// of its passes (Megatron-LM's num_warmup_microbatches: 1F1B p - s - 1; interleaved
// (p - s - 1) x 2 + (v - 1) x p virtual micro-batches, or all of them when m == p); GPipe holds
// all m. The unit tests check it against the listed schedules' inflight_peak().
constexpr std::vector<double> inflight_peaks(pipeline_schedule kind, std::int64_t pp, std::int64_t m,
                                             std::int64_t vpp = 1) {
  detail::check_schedule(kind, pp, m, vpp);
  std::vector<double> peaks;
  for (std::int64_t st = 0; st < pp; ++st) {
    if (kind == pipeline_schedule::gpipe) {
      peaks.push_back(static_cast<double>(m));
      continue;
    }
    const std::int64_t total = m * vpp;
    const std::int64_t warm = kind == pipeline_schedule::one_f_one_b ? std::min(pp - st - 1, m)
                              : m == pp                              ? total
                                        : std::min((pp - st - 1) * 2 + (vpp - 1) * pp, total);
    peaks.push_back(static_cast<double>(std::min(warm + 1, total)) / static_cast<double>(vpp));
  }
  return peaks;
}

// ---- simulation ----------------------------------------------------------------------------

struct timed_action {
  action what;
  double start = 0, end = 0;
};

struct simulation {
  double step_time = 0;
  std::vector<double> busy;  // per stage
  std::vector<double> idle;  // per stage: step_time - busy
  std::vector<std::vector<timed_action>> timeline;
  // Idle over useful time of the busiest stage: the simulated counterpart of
  // schedule::bubble_fraction().
  [[nodiscard]] constexpr double bubble_fraction() const {
    const double most = *std::max_element(busy.begin(), busy.end());
    return (step_time - most) / most;
  }
};

// Plays the action lists: forward[s] and backward[s] are stage s's times for one whole
// micro-batch (a chunk takes 1 / vpp of them); p2p_latency is added to every hand-off between
// stages. A forward needs the previous stage's forward of the same micro-batch (stage 0's
// chunk c > 0 needs the last stage's chunk c - 1); a backward needs the next stage's
// backward (the last stage's last chunk needs its own forward).
inline simulation simulate(const schedule& s, const std::vector<double>& forward, const std::vector<double>& backward,
                           double p2p_latency = 0, bool keep_timeline = true) {
  using detail::str;
  const auto pp = static_cast<std::size_t>(s.pp);
  detail::require(forward.size() == pp && backward.size() == pp && p2p_latency >= 0 && detail::is_finite(p2p_latency),
                  reason::simulation_times_must_be_positive, "times", [&] {
                    return "the simulation needs one forward and one backward time per stage (" + str(s.pp) +
                           ") and a latency >= 0; got " + str(static_cast<std::int64_t>(forward.size())) + " and " +
                           str(static_cast<std::int64_t>(backward.size()));
                  });
  for (std::size_t i = 0; i < pp; ++i)
    detail::require(
        detail::is_finite(forward[i]) && forward[i] > 0 && detail::is_finite(backward[i]) && backward[i] > 0,
        reason::simulation_times_must_be_positive, "times", [&] {
          return "stage " + str(static_cast<std::int64_t>(i)) +
                 ": forward and backward times must be "
                 "positive and finite";
        });
  const std::int64_t v = s.vpp, m = s.micro_batches;
  // finish[pass][stage][micro_batch * v + chunk], negative while not yet run.
  std::vector<std::vector<double>> done[2];
  for (auto& d : done) d.assign(pp, std::vector<double>(static_cast<std::size_t>(m * v), -1.0));
  const auto finished = [&](pass p, std::int64_t st, std::int64_t mb, std::int64_t c) {
    return done[p == pass::backward][static_cast<std::size_t>(st)][static_cast<std::size_t>(mb * v + c)];
  };
  simulation r;
  r.busy.assign(pp, 0.0);
  r.timeline.assign(pp, {});
  std::vector<double> free_at(pp, 0.0);
  std::vector<std::size_t> next(pp, 0);
  std::size_t remaining = 0;
  for (const auto& st : s.stages) remaining += st.size();
  const std::int64_t last = s.pp - 1;
  while (remaining > 0) {
    bool progressed = false;
    for (std::int64_t st = 0; st < s.pp; ++st) {
      const auto i = static_cast<std::size_t>(st);
      if (next[i] == s.stages[i].size()) continue;
      const action a = s.stages[i][next[i]];
      double ready = 0;
      if (a.kind == pass::forward) {
        if (st > 0)
          ready = finished(pass::forward, st - 1, a.micro_batch, a.chunk) + p2p_latency;
        else if (a.chunk > 0)
          ready = finished(pass::forward, last, a.micro_batch, a.chunk - 1) + p2p_latency;
        if ((st > 0 || a.chunk > 0) && ready < p2p_latency) continue;  // dependency not run yet
      } else {
        if (st < last)
          ready = finished(pass::backward, st + 1, a.micro_batch, a.chunk) + p2p_latency;
        else if (a.chunk < v - 1)
          ready = finished(pass::backward, 0, a.micro_batch, a.chunk + 1) + p2p_latency;
        else
          ready = finished(pass::forward, st, a.micro_batch, a.chunk);
        const bool same_stage = st == last && a.chunk == v - 1;
        if (ready < (same_stage ? 0 : p2p_latency)) continue;
      }
      const double dur = (a.kind == pass::forward ? forward[i] : backward[i]) / static_cast<double>(v);
      const double start = std::max(free_at[i], ready);
      free_at[i] = start + dur;
      done[a.kind == pass::backward][i][static_cast<std::size_t>(a.micro_batch * v + a.chunk)] = start + dur;
      r.busy[i] += dur;
      if (keep_timeline) r.timeline[i].push_back({a, start, start + dur});
      ++next[i];
      --remaining;
      progressed = true;
    }
    if (!progressed) throw std::logic_error("trainperf::simulate: the action lists deadlock");
  }
  r.step_time = *std::max_element(free_at.begin(), free_at.end());
  for (std::size_t i = 0; i < pp; ++i) r.idle.push_back(r.step_time - r.busy[i]);
  return r;
}

// The step time simulate() finds, in closed form: one micro-batch's way through every stage and
// back, plus the other m x v - 1 chunk slots at the slowest stage's pace (the generalisation to
// unequal stages of Narayanan et al. 2021, section 2.2: (m x v + p - 1) x (f + b) / v for equal
// ones), and a hand-off per stage boundary each way; GPipe runs the forwards and the backwards as
// two such passes. In 1F1B's steady phase every micro-batch also waits for a hand-off each way on
// all but one of p turns (2 x h x (p - 1) / p, the simulator's own pace); interleaving hides its
// hand-offs behind the other chunks while they are short. Exact for equal stages without
// hand-off time; the unit tests bound it against the simulator for unequal stages and for
// hand-offs up to a tenth of a stage's forward (interleaved) or a third (1F1B). What the planner
// screens layouts with before it simulates the best.
constexpr double pipeline_time_estimate(pipeline_schedule kind, std::int64_t pp, std::int64_t m, std::int64_t vpp,
                                        const std::vector<double>& forward, const std::vector<double>& backward,
                                        double p2p_latency = 0) {
  double sum_f = 0, sum_b = 0, max_f = 0, max_b = 0, max_fb = 0;
  for (std::size_t i = 0; i < forward.size() && i < backward.size(); ++i) {
    sum_f += forward[i], sum_b += backward[i];
    max_f = std::max(max_f, forward[i]), max_b = std::max(max_b, backward[i]);
    max_fb = std::max(max_fb, forward[i] + backward[i]);
  }
  const double p = static_cast<double>(pp), hops = 2 * (p - 1) * p2p_latency;
  const double rest = static_cast<double>(m - 1);
  if (kind == pipeline_schedule::gpipe) return sum_f + sum_b + rest * (max_f + max_b) + hops;
  if (kind == pipeline_schedule::one_f_one_b) return sum_f + sum_b + rest * (max_fb + hops / p) + hops;
  const double v = static_cast<double>(vpp);
  return (sum_f + sum_b) / v + (static_cast<double>(m) * v - 1) * max_fb / v + hops;
}

// ---- timelines -------------------------------------------------------------------------------

namespace detail {
inline std::string action_label(const action& a, std::int64_t vpp) {
  std::string l(1, a.kind == pass::forward ? 'F' : 'B');
  l += std::to_string(a.micro_batch);
  if (vpp > 1) l += static_cast<char>('a' + a.chunk % 26);
  return l;
}
}  // namespace detail

// One line per stage; time runs left to right in units of the shortest action, each unit a
// 4-character cell: "F3" forward of micro-batch 3 (chunk letter a, b, ... when interleaved),
// "B3" its backward, "." idle.
inline std::string render_ascii(const simulation& sim, std::int64_t vpp = 1) {
  double unit = 0;
  for (const auto& st : sim.timeline)
    for (const auto& t : st) unit = unit == 0 ? t.end - t.start : std::min(unit, t.end - t.start);
  if (unit <= 0) return "";
  constexpr double max_cells = 2000;  // 8,000 characters a line
  if (!(sim.step_time / unit <= max_cells)) {
    char note[160];
    std::snprintf(note, sizeof note,
                  "(timeline not drawn: the step is %.3g times the shortest action, more than %.0f cells a line; "
                  "render it as SVG)\n",
                  sim.step_time / unit, max_cells);
    return note;
  }
  const auto cells = static_cast<std::size_t>(sim.step_time / unit + 0.5);
  std::string out;
  for (std::size_t s = 0; s < sim.timeline.size(); ++s) {
    std::vector<std::string> row(cells, " .  ");
    for (const auto& t : sim.timeline[s]) {
      const auto b = static_cast<std::size_t>(t.start / unit + 0.5), e = static_cast<std::size_t>(t.end / unit + 0.5);
      for (std::size_t c = b; c < e && c < cells; ++c) {
        std::string label =
            c == b ? detail::action_label(t.what, vpp) : std::string(t.what.kind == pass::forward ? "~" : "=");
        label.resize(4, ' ');
        row[c] = label;
      }
    }
    char head[32];
    std::snprintf(head, sizeof head, "stage %2zu |", s);
    out += head;
    for (const auto& c : row) out += c;
    out += "|\n";
  }
  return out;
}

// A standalone SVG: one lane per stage, forward passes blue, backward green (darker for later
// chunks), labelled where the label fits, with a time axis in the simulation's units.
inline std::string render_svg(const simulation& sim, std::int64_t vpp = 1, std::string_view title = "") {
  const double lane = 28, left = 70, top = title.empty() ? 10 : 34, width = 900;
  const double scale = sim.step_time > 0 ? width / sim.step_time : 1;
  const double height = top + lane * static_cast<double>(sim.timeline.size()) + 40;
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                left + width + 20, height);
  svg += buf;
  if (!title.empty()) {
    svg += "<text x=\"" + std::to_string(static_cast<int>(left)) + "\" y=\"20\" font-size=\"14\">" +
           detail::xml_escape(title) + "</text>\n";
  }
  for (std::size_t s = 0; s < sim.timeline.size(); ++s) {
    const double y = top + lane * static_cast<double>(s);
    std::snprintf(buf, sizeof buf, "<text x=\"8\" y=\"%.1f\">stage %zu</text>\n", y + lane * 0.62, s);
    svg += buf;
    for (const auto& t : sim.timeline[s]) {
      const bool f = t.what.kind == pass::forward;
      const double depth = vpp > 1 ? static_cast<double>(t.what.chunk) / static_cast<double>(vpp - 1) : 0;
      const int red = static_cast<int>(f ? 70 - 40 * depth : 40 - 20 * depth);
      const int green = static_cast<int>(f ? 130 - 70 * depth : 170 - 80 * depth);
      const int blue = static_cast<int>(f ? 230 - 90 * depth : 90 - 40 * depth);
      const double x = left + t.start * scale, w = (t.end - t.start) * scale;
      std::snprintf(buf, sizeof buf,
                    "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\" "
                    "stroke=\"white\" stroke-width=\"1\"/>\n",
                    x, y + 2, w, lane - 4, red, green, blue);
      svg += buf;
      const std::string label = detail::action_label(t.what, vpp);
      if (w >= 7.0 * static_cast<double>(label.size())) {  // label only where it fits
        std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"%.1f\" fill=\"white\" text-anchor=\"middle\">%s</text>\n",
                      x + w / 2, y + lane * 0.62, label.c_str());
        svg += buf;
      }
    }
  }
  const double axis_y = top + lane * static_cast<double>(sim.timeline.size()) + 8;
  std::snprintf(buf, sizeof buf,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n<text x=\"%.1f\" "
                "y=\"%.1f\">0</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.6g</text>\n",
                left, axis_y, left + width, axis_y, left, axis_y + 16, left + width, axis_y + 16, sim.step_time);
  svg += buf;
  svg += "</svg>\n";
  return svg;
}

}  // namespace trainperf
