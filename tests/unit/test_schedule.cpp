// Pipeline schedules: action lists, closed forms, and the simulator agreeing with them.
#include <doctest/doctest.h>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("1F1B: warm-up p - s - 1 forwards, then alternate, then cool down") {
  const schedule s = make_schedule(pipeline_schedule::one_f_one_b, 4, 8);
  CHECK(s.warmup == std::vector<std::int64_t>{3, 2, 1, 0});
  // Last stage: F0 B0 F1 B1 ...
  CHECK(s.stages[3][0] == action{pass::forward, 0, 0});
  CHECK(s.stages[3][1] == action{pass::backward, 0, 0});
  // Stage 0: F0 F1 F2 (warm-up), F3 B0, F4 B1, ...
  CHECK(s.stages[0][3] == action{pass::forward, 3, 0});
  CHECK(s.stages[0][4] == action{pass::backward, 0, 0});
  CHECK(s.inflight_peak() == std::vector<double>{4, 3, 2, 1});
  // Fewer micro-batches than stages: every stage holds all of them.
  CHECK(make_schedule(pipeline_schedule::one_f_one_b, 4, 2).inflight_peak() == std::vector<double>{2, 2, 2, 1});
  CHECK(make_schedule(pipeline_schedule::gpipe, 4, 8).inflight_peak() == std::vector<double>{8, 8, 8, 8});
  CHECK(make_schedule(pipeline_schedule::gpipe, 4, 8).warmup == std::vector<std::int64_t>{8, 8, 8, 8});
  CHECK(make_schedule(pipeline_schedule::one_f_one_b, 4, 2).warmup == std::vector<std::int64_t>{2, 2, 1, 0});
}

TEST_CASE("interleaved 1F1B follows Megatron-LM's chunk order") {
  // pp 2, m 4, v 2: forward virtual micro-batches k = 0..7 map to (micro-batch, chunk)
  // (0,0) (1,0) (0,1) (1,1) (2,0) (3,0) (2,1) (3,1); stage 0 warms up (2-0-1)*2 + (2-1)*2 = 4.
  const schedule s = make_schedule(pipeline_schedule::interleaved, 2, 4, 2);
  CHECK(s.warmup[0] == 4);
  CHECK(s.warmup[1] == 2);  // (2-1-1)*2 + (2-1)*2
  CHECK(s.stages[0][2] == action{pass::forward, 0, 1});
  CHECK(s.stages[0][3] == action{pass::forward, 1, 1});
  CHECK(s.stages[0][4] == action{pass::forward, 2, 0});
  CHECK(s.stages[0][5] == action{pass::backward, 0, 1});  // backward starts from the last chunk
  // Every (micro-batch, chunk) runs forward and backward exactly once on every stage.
  for (const auto& st : s.stages) CHECK(st.size() == 2 * 4 * 2);
  // Stage 0 holds p + (p - 1) / v micro-batches' activations (Korthikanti et al. 2022).
  const schedule big = make_schedule(pipeline_schedule::interleaved, 4, 8, 2);
  CHECK(big.inflight_peak()[0] == doctest::Approx(4 + 3.0 / 2));
  CHECK_THROWS_WITH_AS(make_schedule(pipeline_schedule::interleaved, 4, 6, 2),
                       "6 micro-batches are not a multiple of pp 4, which the interleaved schedule needs; nearest "
                       "valid: 4 or 8 micro-batches",
                       config_error);
  CHECK_THROWS_AS(make_schedule(pipeline_schedule::one_f_one_b, 4, 8, 2), config_error);
}

TEST_CASE("the simulator reproduces the closed-form bubble") {
  for (auto kind : {pipeline_schedule::gpipe, pipeline_schedule::one_f_one_b})
    for (std::int64_t p : {1, 2, 4, 8})
      for (std::int64_t m : {1, 4, 8, 32}) {
        CAPTURE(p);
        CAPTURE(m);
        const schedule s = make_schedule(kind, p, m);
        const simulation sim = simulate(s, std::vector<double>(p, 1.0), std::vector<double>(p, 2.0));
        // (m + p - 1) (t_f + t_b) per step; bubble (p - 1) / m (Narayanan et al. 2021).
        CHECK(sim.step_time == doctest::Approx(static_cast<double>(m + p - 1) * 3));
        CHECK(sim.bubble_fraction() == doctest::Approx(s.bubble_fraction()));
      }
  for (std::int64_t p : {2, 4})
    for (std::int64_t v : {2, 3, 4})
      for (std::int64_t m : {p, 2 * p, 4 * p}) {
        CAPTURE(p);
        CAPTURE(v);
        CAPTURE(m);
        const schedule s = make_schedule(pipeline_schedule::interleaved, p, m, v);
        const simulation sim = simulate(s, std::vector<double>(p, 1.0), std::vector<double>(p, 2.0));
        // (p - 1) / (m v).
        CHECK(sim.bubble_fraction() == doctest::Approx(s.bubble_fraction()));
      }
}

TEST_CASE("the simulator: latency, uneven stages, idle time, and bad input") {
  const schedule s = make_schedule(pipeline_schedule::one_f_one_b, 4, 8);
  const simulation base = simulate(s, {1, 1, 1, 1}, {2, 2, 2, 2});
  const simulation slow = simulate(s, {1, 1, 1, 1}, {2, 2, 2, 2}, 0.5);
  CHECK(slow.step_time > base.step_time);
  // The critical path crosses 2 x (p - 1) hand-offs at least.
  CHECK(slow.step_time >= base.step_time + 2 * 3 * 0.5);
  for (std::size_t i = 0; i < 4; ++i) CHECK(base.idle[i] == doctest::Approx(base.step_time - base.busy[i]));
  // A slower last stage (the output layer) sets the pace: 8 x 4.5 of work plus the fill.
  const simulation uneven = simulate(s, {1, 1, 1, 1.5}, {2, 2, 2, 3});
  CHECK(uneven.step_time >= 8 * 4.5);
  CHECK(uneven.busy[3] == doctest::Approx(8 * 4.5));
  CHECK_THROWS_AS(simulate(s, {1, 1, 1}, {2, 2, 2, 2}), config_error);
  CHECK_THROWS_AS(simulate(s, {1, 1, 1, 0}, {2, 2, 2, 2}), config_error);
  CHECK_THROWS_AS(simulate(s, {1, 1, 1, 1}, {2, 2, 2, 2}, -1), config_error);
}

TEST_CASE("timelines: ASCII rows per stage, SVG with a rectangle per action") {
  const schedule s = make_schedule(pipeline_schedule::one_f_one_b, 2, 2);
  const simulation sim = simulate(s, {1, 1}, {1, 1});
  // Stage 0: F0 F1 . B0 B1 ... as laid out by time; stage 1: . F0 B0 F1 B1.
  const std::string ascii = render_ascii(sim);
  CHECK(ascii == "stage  0 |F0  F1   .  B0   .  B1  |\nstage  1 | .  F0  B0  F1  B1   .  |\n");
  const std::string svg = render_svg(sim, 1, "1f1b <pp 2>");
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(svg.find("1f1b &lt;pp 2&gt;") != std::string::npos);
  std::size_t rects = 0;
  for (std::size_t at = svg.find("<rect x="); at != std::string::npos; at = svg.find("<rect x=", at + 1)) ++rects;
  CHECK(rects == 8);  // 2 stages x (2 forwards + 2 backwards)
}

TEST_CASE("inflight_peaks: the same peaks as the full action lists, for any number of micro-batches") {
  // Against the full listing (up to 6 x pp micro-batches, where the peaks have long stopped
  // changing) ...
  for (std::int64_t p : {1, 2, 3, 4, 8})
    for (std::int64_t m = 1; m <= 6 * p; ++m) {
      CAPTURE(p);
      CAPTURE(m);
      CHECK(inflight_peaks(pipeline_schedule::one_f_one_b, p, m) ==
            make_schedule(pipeline_schedule::one_f_one_b, p, m).inflight_peak());
      for (std::int64_t v : {2, 3, 4})
        if (p > 1 && m % p == 0)
          CHECK(inflight_peaks(pipeline_schedule::interleaved, p, m, v) ==
                make_schedule(pipeline_schedule::interleaved, p, m, v).inflight_peak());
    }
  // ... and, for a step far too long to list, the closed forms: 1F1B stage s holds p - s
  // (Narayanan et al. 2021, section 2.2); interleaved stage 0 holds p + (p - 1) / v
  // (Korthikanti et al. 2022, section 4.2.3).
  const std::int64_t huge = std::int64_t{1} << 40;
  CHECK(inflight_peaks(pipeline_schedule::one_f_one_b, 8, huge) == std::vector<double>{8, 7, 6, 5, 4, 3, 2, 1});
  CHECK(inflight_peaks(pipeline_schedule::interleaved, 8, huge, 4)[0] == doctest::Approx(8 + 7.0 / 4));
  CHECK_THROWS_WITH_AS(make_schedule(pipeline_schedule::one_f_one_b, 4, huge),
                       doctest::Contains("exceed the 2^22 = 4194304 slots a schedule lists pass by pass"),
                       config_error);
}

TEST_CASE("render_ascii declines a timeline too wide to print rather than allocating it") {
  // Forward 1, backward B = 2^32, pp 2, 2 micro-batches: the critical path is stage 0's two
  // forwards, stage 1's F1 and both stages' B1 after B0 (stage 1: F0 B0 F1 B1, stage 0's B1
  // waits for stage 1's): 3 + 3 B = 1.29e10 cells of the shortest action (1).
  const schedule s = make_schedule(pipeline_schedule::one_f_one_b, 2, 2);
  const simulation sim = simulate(s, {1, 1}, {4294967296.0, 4294967296.0});
  CHECK(sim.step_time == 3 + 3 * 4294967296.0);
  const std::string ascii = render_ascii(sim);
  CHECK(ascii.starts_with("(timeline not drawn: the step is 1.29e+10 times the shortest action"));
  CHECK(ascii.size() < 200);
}

TEST_CASE("pipeline_time_estimate: exact for equal stages, close to the simulator for unequal ones") {
  const std::vector<double> f(4, 1.0), b(4, 2.0);
  // (m + p - 1) x (f + b) = 11 x 3; interleaved (m v + p - 1) (f + b) / v = (16 + 3) x 3 / 2.
  CHECK(pipeline_time_estimate(pipeline_schedule::one_f_one_b, 4, 8, 1, f, b) == doctest::Approx(33));
  CHECK(simulate(make_schedule(pipeline_schedule::one_f_one_b, 4, 8), f, b).step_time == doctest::Approx(33));
  CHECK(pipeline_time_estimate(pipeline_schedule::interleaved, 4, 8, 2, f, b) == doctest::Approx(28.5));
  CHECK(simulate(make_schedule(pipeline_schedule::interleaved, 4, 8, 2), f, b).step_time == doctest::Approx(28.5));
  // A last stage up to twice as slow (the output layer), a slower first one (the embedding):
  // within 3% of the simulation over a grid.
  double worst = 0;
  for (std::int64_t pp : {2, 4, 8, 16})
    for (std::int64_t v : {1, 2, 4})
      for (std::int64_t k : {1, 2, 8})
        for (double extra : {0.0, 0.3, 1.0}) {
          std::vector<double> ff(static_cast<std::size_t>(pp), 1.0), bb(static_cast<std::size_t>(pp), 2.0);
          ff.back() += extra, bb.back() += 2 * extra, ff.front() += 0.05, bb.front() += 0.1;
          const auto kind = v > 1 ? pipeline_schedule::interleaved : pipeline_schedule::one_f_one_b;
          const double sim = simulate(make_schedule(kind, pp, k * pp, v), ff, bb, 0.01).step_time;
          const double est = pipeline_time_estimate(kind, pp, k * pp, v, ff, bb, 0.01);
          worst = std::max(worst, std::abs(est - sim) / sim);
        }
  CHECK(worst < 0.03);
  // Hand-offs: up to a third of a stage's forward under 1F1B, a tenth interleaved.
  worst = 0;
  for (std::int64_t pp : {2, 4, 8})
    for (std::int64_t v : {1, 2})
      for (double hop : {0.1, 0.3}) {
        if (v > 1 && hop > 0.1) continue;
        const std::vector<double> ff(static_cast<std::size_t>(pp), 1.0), bb(static_cast<std::size_t>(pp), 2.0);
        const auto kind = v > 1 ? pipeline_schedule::interleaved : pipeline_schedule::one_f_one_b;
        const double sim = simulate(make_schedule(kind, pp, 8 * pp, v), ff, bb, hop).step_time;
        worst = std::max(worst, std::abs(pipeline_time_estimate(kind, pp, 8 * pp, v, ff, bb, hop) - sim) / sim);
      }
  CHECK(worst < 0.03);
}
