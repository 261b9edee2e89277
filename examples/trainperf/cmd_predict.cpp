// trainperf predict: one layout's step time, token/p/s, MFU and where the time goes, with memory
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/step_time.hpp>
#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "cluster_flags.hpp"
#include "memory_args.hpp"
#include "step_report.hpp"

namespace trainperf::cli {
namespace {

std::vector<flag> predict_flags() {
  std::vector<flag> f;
  for (const flag& x : memory_flags())
    if (!decided_by_the_cluster(x.name)) f.push_back(x);
  for (const flag& x : cluster_flags()) f.push_back(x);
  return with_common(f);
}

int run_predict(const args& a, output& out) {
  memory_setup m = memory_from_args(a);
  const cluster_setup cs = cluster_from_args(a);
  m.parallel.dp = 0;  // the devices decide it
  step_options o;
  o.memory = m.options;
  step_from_args(a, o);
  const step_prediction p = predict_step(m.model.spec, m.parallel, cs.cluster, cs.profile, o);
  if (a.has("json")) {
    json j = prediction_json(p, cs);
    j["model"] = m.model.name;
    j["dp"] = resolved_dp(m.parallel, cs.cluster.devices);
    out.print_json(j);
    return 0;
  }
  out.print("{} on {}\n", m.model.name, describe_cluster(cs));
  out.print("layout: {}, {} micro-batches of {} per step\n", describe_layout(m.parallel, cs.cluster.devices),
            p.micro_batches, o.memory.lbs);
  out.print("{}", describe_prediction(p, cs.cluster));
  return 0;
}

}  // namespace

command predict_command() {
  return {"predict", "one layout's predicted step time, token/p/s, MFU and breakdown, with its memory", predict_flags,
          run_predict};
}

}  // namespace trainperf::cli
