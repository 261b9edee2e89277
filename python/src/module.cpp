// trainperf's Python module (`import trainperf`): the C++ library's functions with its own names
// and keyword arguments, results as plain Python objects (dicts, lists, numbers) or small
// classes with to_dict(), and every trainperf::config_error raised as trainperf.ConfigError (a
// ValueError) carrying the same message and field. Enums are passed as the strings the
// command-line tool takes ("palm", "bf16", "1f1b"). The Python package (python/trainperf)
// wraps this extension and adds what only Python has (a `with` block around a training step).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <trainperf/io/hf_config.hpp>
#include <trainperf/io/report_check.hpp>
#include <trainperf/planner.hpp>
#include <trainperf/trainperf.hpp>

namespace py = pybind11;
namespace tp = trainperf;
using i64 = std::int64_t;

namespace {

// A string naming one of an enum's values (its table, trainperf::named), else a config_error
// naming the field and the names.
template <class E, std::size_t N>
E choice(std::string_view value, const tp::named<E> (&table)[N], std::string_view field) {
  if (const auto e = tp::detail::value_named(table, value)) return *e;
  std::string names;
  for (const std::string_view n : tp::detail::names_of(table)) names += (names.empty() ? "" : ", ") + std::string(n);
  throw tp::config_error(std::string(field),
                         std::string(field) + " '" + std::string(value) + "' is not one of " + names);
}

tp::flops_convention convention_of(std::string_view s) { return choice(s, tp::flops_convention_names, "convention"); }
tp::recompute recompute_of(std::string_view s) { return choice(s, tp::recompute_names, "recompute"); }
tp::dtype dtype_of(std::string_view s, std::string_view field = "dtype") {
  for (const tp::dtype d : tp::all_dtypes)
    if (tp::detail::same_name_ignoring_case(tp::to_string(d), s)) return d;
  std::string names;
  for (const tp::dtype d : tp::all_dtypes) names += (names.empty() ? "" : ", ") + std::string(tp::to_string(d));
  throw tp::config_error(std::string(field), std::string(field) + " '" + std::string(s) + "' is not one of " + names);
}
tp::framework framework_of(std::string_view s) { return choice(s, tp::framework_names, "framework"); }
tp::pipeline_schedule schedule_of(std::string_view s) { return choice(s, tp::pipeline_schedule_names, "kind"); }

py::dict params_dict(const tp::param_counts& c) {
  py::dict d;
  d["token_embedding"] = c.token_embedding;
  d["position_embedding"] = c.position_embedding;
  d["output"] = c.output;
  d["attention"] = c.attention;
  d["mlp"] = c.mlp;
  d["router"] = c.router;
  d["routed_experts"] = c.routed_experts;
  d["shared_experts"] = c.shared_experts;
  d["norms"] = c.norms;
  d["vision"] = c.vision;
  d["projector"] = c.projector;
  d["embedding"] = c.embedding();
  d["non_embedding"] = c.non_embedding();
  d["total"] = c.total();
  return d;
}

py::dict stats_dict(const tp::meter::stats& s) {
  py::dict d;
  d["steps"] = s.steps;
  d["seconds"] = s.seconds;
  d["tokens"] = s.tokens;
  d["tokens_per_device_per_s"] = s.tokens_per_device_per_s;
  d["samples_per_s"] = s.samples_per_s ? py::object(py::float_(*s.samples_per_s)) : py::none();
  d["tflops_per_device"] = s.tflops_per_device;
  d["mfu"] = s.mfu ? py::object(py::float_(*s.mfu)) : py::none();
  d["hfu"] = s.hfu ? py::object(py::float_(*s.hfu)) : py::none();
  d["utilization_refused"] = s.utilization_refused;
  d["peak_memory_bytes"] = s.peak_memory_bytes ? py::object(py::int_(*s.peak_memory_bytes)) : py::none();
  return d;
}

// The memory model's further options, as keywords with the C++ names (memory_options):
// dropout, master_weights, offload_optimizer, offload_activations, fp32_softmax, fsdp_no_sync,
// fsdp_embedding_resharded, quantized_inputs_kept, persistent_grads (True/False), fp32_grads (True/False, None for the
// framework's default), adam_step ("fused", "foreach"),
// optimizer, selective and loss, by the CLI's names (--optimizer, --selective, --loss: the tables
// beside each enum, memory.hpp); '_' for '-' is taken too. Any other keyword, or a value of
// another type, is a ConfigError naming it.
void apply_memory_keywords(tp::memory_options& o, const py::kwargs& kw) {
  for (const auto& [key_obj, value] : kw) {
    const std::string key = py::str(key_obj);
    const auto flag = [&] {
      if (!py::isinstance<py::bool_>(value))
        throw tp::config_error(key, key + " takes True or False, got " + std::string(py::repr(value)));
      return value.cast<bool>();
    };
    const auto word = [&] {
      if (!py::isinstance<py::str>(value))
        throw tp::config_error(key, key + " takes a string, got " + std::string(py::repr(value)));
      std::string w = value.cast<std::string>();
      for (char& c : w)
        if (c == '_') c = '-';
      return w;
    };
    if (key == "dropout")
      o.dropout = flag();
    else if (key == "fp32_grads")  // None: the framework's default
      o.fp32_grads = value.is_none() ? std::nullopt : std::optional<bool>(flag());
    else if (key == "master_weights")
      o.master_weights = flag();
    else if (key == "offload_optimizer")
      o.offload_optimizer = flag();
    else if (key == "offload_activations")
      o.offload_activations = flag();
    else if (key == "fp32_softmax")
      o.fp32_softmax = flag();
    else if (key == "fsdp_no_sync")
      o.unsharded_grad_accumulation = flag();
    else if (key == "fsdp_embedding_resharded")
      o.fsdp_embedding_resharded = flag();
    else if (key == "quantized_inputs_kept")
      o.adapters.quantized_inputs_kept = flag();
    else if (key == "persistent_grads")
      o.persistent_grads = flag();
    else if (key == "adam_step")
      o.adam_implementation = choice(word(), tp::adam_step_names, "adam_step");
    else if (key == "optimizer")
      o.optimizer = choice(word(), tp::optimizer_kind_names, "optimizer");
    else if (key == "selective")
      o.selective = choice(word(), tp::selective_policy_names, "selective");
    else if (key == "loss")
      o.loss = choice(word(), tp::logits_loss_names, "loss");
    else
      throw tp::config_error(key, "unknown memory option '" + key +
                                      "'; known: dropout, master_weights, offload_optimizer, offload_activations, "
                                      "fp32_softmax, fsdp_no_sync, fsdp_embedding_resharded, quantized_inputs_kept, "
                                      "persistent_grads, fp32_grads, adam_step, optimizer, selective, loss");
  }
}

// What predict_step and plan take: the cluster of a table device at its built-in profile, and
// the step's batch and memory settings, as `trainperf predict` and `trainperf plan` build them.
struct step_setup {
  tp::cluster_spec cluster;
  tp::device_profile profile;
  tp::step_options options;
};
step_setup step_setup_of(const std::string& device, i64 devices, i64 devices_per_node, i64 gbs, i64 lbs, i64 seq,
                         const std::string& framework, const std::string& param_dtype, bool flash_attention) {
  const tp::device_spec& d = tp::get_device(device);
  step_setup s;
  s.profile = tp::builtin_profile(d.name);
  s.cluster = tp::default_cluster(d, devices, devices_per_node, s.profile);
  s.options.gbs = gbs;
  s.options.memory.lbs = lbs;
  s.options.memory.seq = seq;
  s.options.memory.accounting = framework_of(framework);
  s.options.memory.param_dtype = dtype_of(param_dtype, "param_dtype");
  s.options.memory.flash_attention = flash_attention;
  return s;
}

py::dict prediction_dict(const tp::step_prediction& p) {
  py::dict b;
  for (const tp::breakdown_part& part : tp::breakdown_parts)
    b[py::str(std::string(part.key))] = p.breakdown.*part.seconds;
  py::dict d;
  d["step_time"] = p.step_time;
  d["tokens_per_device_per_s"] = p.tokens_per_device_per_s;
  d["mfu"] = p.mfu;
  d["hfu"] = p.hfu;
  d["micro_batches"] = p.micro_batches;
  d["breakdown"] = b;
  d["stage_memory"] = p.stage_memory;
  d["memory_max"] = p.memory_max();
  return d;
}

py::dict parallel_dict(const tp::parallel_config& c) {
  py::dict d;
  d["tp"] = c.tp;
  d["pp"] = c.pp;
  d["dp"] = c.dp;
  d["cp"] = c.cp;
  d["ep"] = c.ep;
  d["etp"] = c.etp;
  d["vpp"] = c.vpp;
  d["sequence_parallel"] = c.sequence_parallel;
  d["distributed_optimizer"] = c.distributed_optimizer;
  d["zero_stage"] = c.zero_stage;
  d["recompute"] = std::string(tp::to_string(c.recomputation));
  d["replicate_kv_heads"] = c.replicate_kv_heads;
  d["first_stage_layers"] = c.first_stage_layers;
  d["last_stage_layers"] = c.last_stage_layers;
  d["embedding_as_layer"] = c.embedding_as_layer;
  d["loss_as_layer"] = c.loss_as_layer;
  return d;
}

tp::parallel_config parallel(i64 tp_, i64 pp, i64 dp, i64 cp, i64 ep, i64 etp, i64 vpp, bool sequence_parallel,
                             bool distributed_optimizer, int zero_stage, const std::string& recompute,
                             bool replicate_kv_heads, i64 first_stage_layers, i64 last_stage_layers,
                             bool embedding_as_layer, bool loss_as_layer) {
  tp::parallel_config c;
  c.tp = tp_;
  c.pp = pp;
  c.dp = dp;
  c.cp = cp;
  c.ep = ep;
  c.etp = etp;
  c.vpp = vpp;
  c.sequence_parallel = sequence_parallel;
  c.distributed_optimizer = distributed_optimizer;
  c.zero_stage = zero_stage;
  c.recomputation = recompute_of(recompute);
  c.replicate_kv_heads = replicate_kv_heads;
  c.first_stage_layers = first_stage_layers;
  c.last_stage_layers = last_stage_layers;
  c.embedding_as_layer = embedding_as_layer;
  c.loss_as_layer = loss_as_layer;
  return c;
}

}  // namespace

PYBIND11_MODULE(_trainperf, m) {
  m.doc() = "trainperf: training benchmark numbers (batch algebra, FLOPs and MFU, layouts, memory, report checks)";

  // config_error -> trainperf.ConfigError(message, field), the class defined in __init__.py.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tp::config_error& e) {
      const py::object cls = py::module_::import("trainperf").attr("ConfigError");
      PyErr_SetObject(cls.ptr(), py::make_tuple(e.what(), e.field()).ptr());
    }
  });

  // ---- models
  py::class_<tp::transformer_spec>(m, "Model", "A transformer's shape (C++ transformer_spec); 0 = the default")
      .def(py::init([](i64 layers, i64 hidden, i64 heads, i64 kv_heads, i64 head_dim, i64 ffn, i64 vocab, i64 max_seq,
                       const std::string& mlp, const std::string& norm, bool linear_bias, bool tied_embeddings,
                       const std::string& positions) {
             tp::transformer_spec s;
             s.layers = layers;
             s.hidden = hidden;
             s.heads = heads;
             s.kv_heads = kv_heads;
             s.head_dim = head_dim;
             s.ffn = ffn;
             s.vocab = vocab;
             s.max_seq = max_seq;
             s.mlp = choice(mlp, tp::mlp_kind_names, "mlp");
             s.norm = choice(norm, tp::norm_kind_names, "norm");
             s.linear_bias = linear_bias;
             s.tied_embeddings = tied_embeddings;
             s.positions = choice(positions, tp::position_kind_names, "positions");
             tp::validate(s);
             return s;
           }),
           py::kw_only(), py::arg("layers"), py::arg("hidden"), py::arg("heads"), py::arg("kv_heads") = 0,
           py::arg("head_dim") = 0, py::arg("ffn"), py::arg("vocab"), py::arg("max_seq") = 0, py::arg("mlp") = "swiglu",
           py::arg("norm") = "rmsnorm", py::arg("linear_bias") = false, py::arg("tied_embeddings") = false,
           py::arg("positions") = "rotary")
      .def_readonly("layers", &tp::transformer_spec::layers)
      .def_readonly("hidden", &tp::transformer_spec::hidden)
      .def_readonly("heads", &tp::transformer_spec::heads)
      .def_property_readonly("kv_heads", &tp::transformer_spec::resolved_kv_heads)
      .def_property_readonly("head_dim", &tp::transformer_spec::resolved_head_dim)
      .def_readonly("ffn", &tp::transformer_spec::ffn)
      .def_readonly("vocab", &tp::transformer_spec::vocab)
      .def_readonly("max_seq", &tp::transformer_spec::max_seq)
      .def_property_readonly(
          "mlp", [](const tp::transformer_spec& s) { return s.mlp == tp::mlp_kind::swiglu ? "swiglu" : "gelu"; })
      .def_readonly("tied_embeddings", &tp::transformer_spec::tied_embeddings)
      .def_property_readonly("experts", [](const tp::transformer_spec& s) { return s.moe.experts; })
      .def_property_readonly("has_vision", [](const tp::transformer_spec& s) { return s.vision.layers > 0; })
      .def("to_dict",
           [](const tp::transformer_spec& s) {
             py::dict d;
             d["layers"] = s.layers;
             d["hidden"] = s.hidden;
             d["heads"] = s.heads;
             d["kv_heads"] = s.resolved_kv_heads();
             d["head_dim"] = s.resolved_head_dim();
             d["ffn"] = s.ffn;
             d["vocab"] = s.vocab;
             d["max_seq"] = s.max_seq;
             d["mlp"] = s.mlp == tp::mlp_kind::swiglu ? "swiglu" : "gelu";
             d["tied_embeddings"] = s.tied_embeddings;
             d["experts"] = s.moe.experts;
             return d;
           })
      .def("__repr__", [](const tp::transformer_spec& s) {
        return "Model(layers=" + std::to_string(s.layers) + ", hidden=" + std::to_string(s.hidden) +
               ", heads=" + std::to_string(s.heads) + ", kv_heads=" + std::to_string(s.resolved_kv_heads()) +
               ", ffn=" + std::to_string(s.ffn) + ", vocab=" + std::to_string(s.vocab) +
               ", max_seq=" + std::to_string(s.max_seq) + ")";
      });

  m.def(
      "presets",
      [] {
        std::vector<std::string> names;
        for (const tp::preset& p : tp::presets) names.emplace_back(p.name);
        return names;
      },
      "The model presets' names.");
  m.def(
      "preset", [](const std::string& name) { return tp::get_preset(name).spec; }, py::arg("name"),
      "A preset's model (trainperf presets); an unknown name raises ConfigError with the near misses.");
  m.def(
      "nominal_params", [](const std::string& name) { return tp::get_preset(name).nominal_params; }, py::arg("name"),
      "The round size a benchmark suite multiplies by (70e9 for llama2-70b); 0 when none is customary.");
  m.def(
      "model_from_hf_config",
      [](const py::object& config) {
        if (py::isinstance<py::dict>(config)) {
          const std::string text = py::module_::import("json").attr("dumps")(config).cast<std::string>();
          return tp::io::spec_from_hf_config_text(text, "the dict");
        }
        // os.fspath: a str or os.PathLike, else TypeError (None is no path).
        return tp::io::read_hf_config(py::module_::import("os").attr("fspath")(config).cast<std::string>());
      },
      py::arg("config"), "A model from a Hugging Face config.json path, or a dict shaped like one.");

  m.def(
      "count_params", [](const tp::transformer_spec& s, i64 tp_) { return params_dict(tp::count_params(s, tp_)); },
      py::arg("model"), py::arg("tp") = 1, "Parameter counts by component (a dict; 'total', 'embedding', ...).");

  m.def(
      "count_flops",
      [](const tp::transformer_spec& s, const std::string& convention, std::optional<i64> seq, bool causal,
         const std::string& recompute, double params, double k, i64 tp_) {
        tp::flops_options o;
        o.convention = convention_of(convention);
        o.seq = seq.value_or(s.max_seq);
        o.causal = causal;
        o.recomputation = recompute_of(recompute);
        o.params = params;
        o.k = k;
        o.tp = tp_;
        const tp::flops_count c = tp::count_flops(s, o);
        py::dict d;
        d["seq"] = c.seq;
        d["forward"] = c.forward;
        d["model"] = c.model;
        d["hardware"] = c.hardware;
        d["forward_per_token"] = c.forward_per_token();
        d["model_per_token"] = c.model_per_token();
        d["hardware_per_token"] = c.hardware_per_token();
        return d;
      },
      py::arg("model"), py::kw_only(), py::arg("convention") = "megatron", py::arg("seq") = py::none(),
      py::arg("causal") = false, py::arg("recompute") = "none", py::arg("params") = 0.0, py::arg("k") = 0.0,
      py::arg("tp") = 1,
      "FLOPs of one sequence under a named convention: forward, model (MFU) and hardware (HFU), also per token. seq: "
      "the model's max_seq when None. nominal: params is N, the round size (trainperf.nominal_params(name)); 0 takes "
      "the exact total, as the C++ library does.");

  // ---- devices and utilization
  m.def(
      "devices",
      [] {
        std::vector<std::string> names;
        for (const tp::device_spec& d : tp::devices) names.emplace_back(d.name);
        return names;
      },
      "The device table's names.");
  m.def(
      "device",
      [](const std::string& name) {
        const tp::device_spec& d = tp::get_device(name);
        py::dict peaks;
        for (tp::dtype x : tp::all_dtypes)
          peaks[py::str(std::string(tp::to_string(x)))] =
              d.peak(x) ? py::object(py::float_(*d.peak(x))) : py::object(py::none());
        py::dict out;
        out["name"] = std::string(d.name);
        out["peak_flops"] = peaks;
        out["memory_bytes"] = d.memory_bytes;
        out["memory_bandwidth"] = d.memory_bandwidth;
        out["intra_node_bandwidth"] = d.intra_node_bandwidth;
        out["inter_node_bandwidth"] = d.inter_node_bandwidth;
        out["source"] = std::string(d.source);
        return out;
      },
      py::arg("name"), "A device's dense peaks per dtype (None: not published), memory, bandwidths and source.");
  m.def(
      "peak_flops",
      [](const std::string& device, const std::string& dtype) {
        return tp::require_peak(tp::get_device(device), dtype_of(dtype));
      },
      py::arg("device"), py::arg("dtype") = "bf16", "A device's dense peak FLOP/s for a dtype; unknown raises.");
  m.def("utilization", &tp::utilization, py::arg("flops_per_token"), py::arg("tokens_per_device_per_s"),
        py::arg("peak_flops"), "MFU (model FLOPs per token) or HFU (hardware FLOPs), a fraction; above 1 raises.");
  m.def("tokens_per_device_per_s_from_samples", &tp::tokens_per_device_per_s_from_samples, py::arg("samples_per_s"),
        py::arg("seq"), py::arg("devices"));
  m.def("tokens_per_device_per_s_from_step", &tp::tokens_per_device_per_s_from_step, py::arg("step_seconds"),
        py::arg("gbs"), py::arg("seq"), py::arg("devices"));

  py::class_<tp::meter>(m, "_Meter")
      .def(py::init([](double model_flops_per_token, double peak_flops, i64 devices, i64 warmup_steps, i64 window,
                       double hardware_flops_per_token) {
             return tp::meter({.model_flops_per_token = model_flops_per_token,
                               .hardware_flops_per_token = hardware_flops_per_token,
                               .peak_flops = peak_flops,
                               .devices = devices,
                               .warmup_steps = warmup_steps,
                               .window = window});
           }),
           py::kw_only(), py::arg("model_flops_per_token"), py::arg("peak_flops") = 0.0, py::arg("devices") = 1,
           py::arg("warmup_steps") = 1, py::arg("window") = 20, py::arg("hardware_flops_per_token") = 0.0)
      .def("step", &tp::meter::step, py::arg("tokens"), py::arg("seconds"))
      .def("step_sequences", &tp::meter::step_sequences, py::arg("sequences"), py::arg("seq"), py::arg("seconds"))
      .def("report_memory", &tp::meter::report_memory, py::arg("bytes"))
      .def("set_peak_flops", &tp::meter::set_peak_flops, py::arg("peak_flops"))
      .def_property_readonly("steps_seen", &tp::meter::steps_seen)
      .def("__repr__",
           [](const tp::meter& x) {
             const auto r = x.running();
             return "Meter(steps_seen=" + std::to_string(x.steps_seen()) +
                    (r ? ", tokens_per_device_per_s=" + std::to_string(r->tokens_per_device_per_s) +
                             (r->mfu ? ", mfu=" + std::to_string(*r->mfu) : std::string())
                       : std::string(", warming up")) +
                    ")";
           })
      .def("running",
           [](const tp::meter& x) {
             return x.running() ? py::object(stats_dict(*x.running())) : py::object(py::none());
           })
      .def("windowed", [](const tp::meter& x) {
        return x.windowed() ? py::object(stats_dict(*x.windowed())) : py::object(py::none());
      });

  // ---- batch and parallel layouts
  m.def(
      "solve_batch",
      [](std::optional<i64> gbs, std::optional<i64> lbs, std::optional<i64> gas, std::optional<i64> dp, i64 seq) {
        const tp::batch_config b = tp::solve_batch({gbs, lbs, gas, dp, seq});
        py::dict d;
        d["gbs"] = b.gbs;
        d["lbs"] = b.lbs;
        d["gas"] = b.gas;
        d["dp"] = b.dp;
        d["seq"] = b.seq;
        if (seq > 0) d["tokens_per_step"] = b.tokens_per_step();
        return d;
      },
      py::kw_only(), py::arg("gbs") = py::none(), py::arg("lbs") = py::none(), py::arg("gas") = py::none(),
      py::arg("dp") = py::none(), py::arg("seq") = 0, "GBS = LBS x GAS x DP: any three give the fourth.");

  py::class_<tp::parallel_config>(m, "ParallelConfig", "Parallel degrees and options (C++ parallel_config)")
      .def(py::init(&parallel), py::kw_only(), py::arg("tp") = 1, py::arg("pp") = 1, py::arg("dp") = 0,
           py::arg("cp") = 1, py::arg("ep") = 1, py::arg("etp") = 0, py::arg("vpp") = 1,
           py::arg("sequence_parallel") = false, py::arg("distributed_optimizer") = false, py::arg("zero_stage") = 0,
           py::arg("recompute") = "none", py::arg("replicate_kv_heads") = false, py::arg("first_stage_layers") = 0,
           py::arg("last_stage_layers") = 0, py::arg("embedding_as_layer") = false, py::arg("loss_as_layer") = false)
      .def_readonly("tp", &tp::parallel_config::tp)
      .def_readonly("pp", &tp::parallel_config::pp)
      .def_readonly("dp", &tp::parallel_config::dp)
      .def_readonly("cp", &tp::parallel_config::cp)
      .def_readonly("ep", &tp::parallel_config::ep)
      .def_readonly("etp", &tp::parallel_config::etp)
      .def_readonly("vpp", &tp::parallel_config::vpp)
      .def_readonly("sequence_parallel", &tp::parallel_config::sequence_parallel)
      .def_readonly("distributed_optimizer", &tp::parallel_config::distributed_optimizer)
      .def_readonly("zero_stage", &tp::parallel_config::zero_stage)
      .def_property_readonly("recompute",
                             [](const tp::parallel_config& c) { return std::string(tp::to_string(c.recomputation)); })
      .def_readonly("replicate_kv_heads", &tp::parallel_config::replicate_kv_heads)
      .def_readonly("first_stage_layers", &tp::parallel_config::first_stage_layers)
      .def_readonly("last_stage_layers", &tp::parallel_config::last_stage_layers)
      .def_readonly("embedding_as_layer", &tp::parallel_config::embedding_as_layer)
      .def_readonly("loss_as_layer", &tp::parallel_config::loss_as_layer)
      .def("to_dict", &parallel_dict)
      .def("__repr__", [](const tp::parallel_config& c) {
        std::string out = "ParallelConfig(";
        const py::dict d = parallel_dict(c);
        bool first = true;
        for (const auto& [k, v] : d) {
          out += (first ? "" : ", ") + std::string(py::str(k)) + "=" + std::string(py::repr(v));
          first = false;
        }
        return out + ")";
      });

  m.def(
      "check_parallel",
      [](const tp::parallel_config& c, i64 world, std::optional<tp::transformer_spec> model, i64 seq, i64 gbs,
         i64 lbs) {
        std::vector<std::pair<std::string, std::string>> out;
        for (const tp::violation& v : tp::check_parallel(c, {world, model, seq, gbs, lbs}))
          out.emplace_back(v.field, v.message);
        return out;
      },
      py::arg("config"), py::kw_only(), py::arg("world") = 0, py::arg("model") = py::none(), py::arg("seq") = 0,
      py::arg("gbs") = 0, py::arg("lbs") = 0,
      "Every rule the configuration breaks, as (field, message) pairs; empty when valid.");

  py::class_<tp::layout>(m, "Layout", "Ranks and Megatron-LM's process groups for a world and a parallel config")
      .def(py::init([](i64 world, const tp::parallel_config& c, const std::string& order) {
             return tp::layout(world, c, order);
           }),
           py::arg("world"), py::arg("config"), py::arg("order") = std::string(tp::default_order))
      .def_property_readonly("world", &tp::layout::world)
      .def("__repr__",
           [](const tp::layout& l) {
             return "Layout(world=" + std::to_string(l.world()) +
                    ", tp=" + std::to_string(l.groups("tp").front().size()) +
                    ", pp=" + std::to_string(l.groups("pp").front().size()) +
                    ", dp=" + std::to_string(l.groups("dp").front().size()) + ")";
           })
      .def(
          "groups", [](const tp::layout& l, const std::string& name) { return l.groups(name); }, py::arg("name"),
          "The groups of one kind ('tp', 'pp', 'dp', 'cp', 'tp-pp', 'dp-cp', 'ep', 'etp', 'edp', 'embedding'), "
          "each a list of ranks: ready for torch.distributed.new_group.")
      .def(
          "coords",
          [](const tp::layout& l, i64 rank) {
            const tp::rank_coords c = l.coords(rank);
            py::dict d;
            d["tp"] = c.tp;
            d["cp"] = c.cp;
            d["dp"] = c.dp;
            d["pp"] = c.pp;
            d["ep"] = c.ep;
            return d;
          },
          py::arg("rank"));

  m.def(
      "partition_layers",
      [](i64 layers, i64 pp, i64 vpp, i64 first_stage_layers, i64 last_stage_layers, bool embedding_as_layer,
         bool loss_as_layer) {
        std::vector<py::dict> out;
        for (const tp::stage_layers& s : tp::partition_layers(layers, {.pp = pp,
                                                                      .vpp = vpp,
                                                                      .first_stage_layers = first_stage_layers,
                                                                      .last_stage_layers = last_stage_layers,
                                                                      .embedding_as_layer = embedding_as_layer,
                                                                      .loss_as_layer = loss_as_layer})) {
          py::dict d;
          d["stage"] = s.stage;
          d["chunk"] = s.chunk;
          d["first_layer"] = s.first_layer;
          d["layers"] = s.layers;
          d["embedding"] = s.embedding;
          d["output"] = s.output;
          out.push_back(d);
        }
        return out;
      },
      py::arg("layers"), py::kw_only(), py::arg("pp"), py::arg("vpp") = 1, py::arg("first_stage_layers") = 0,
      py::arg("last_stage_layers") = 0, py::arg("embedding_as_layer") = false, py::arg("loss_as_layer") = false,
      "Layers over pipeline stages (and virtual chunks), as Megatron-LM splits them (embedding_as_layer, "
      "loss_as_layer: its account_for_embedding/loss_in_pipeline_split).");
  m.def(
      "zero_shard",
      [](i64 numel, i64 dp, i64 rank, i64 alignment) {
        const tp::flat_shard s = tp::zero_shard(numel, dp, rank, alignment);
        return py::make_tuple(s.begin, s.end);
      },
      py::arg("numel"), py::arg("dp"), py::arg("rank"), py::arg("alignment") = 1,
      "The [begin, end) of a flat buffer a ZeRO rank owns.");
  m.def(
      "tensor_parallel_slice",
      [](const tp::transformer_spec& model, i64 tp_, i64 rank, bool replicate_kv_heads) {
        const tp::tensor_parallel_slice x = tp::tensor_parallel_slice_of(model, tp_, rank, replicate_kv_heads);
        py::dict d;
        d["q_heads"] = py::make_tuple(x.q_heads.begin, x.q_heads.end);
        d["kv_heads"] = py::make_tuple(x.kv_heads.begin, x.kv_heads.end);
        d["ffn"] = py::make_tuple(x.ffn.begin, x.ffn.end);
        d["vocab"] = py::make_tuple(x.vocab.begin, x.vocab.end);
        return d;
      },
      py::arg("model"), py::arg("tp"), py::arg("rank"), py::arg("replicate_kv_heads") = false,
      "What one tensor-parallel rank holds, as [begin, end) ranges: query heads, key/value heads, MLP columns, "
      "vocabulary rows (Megatron-LM's split).");
  m.def(
      "data_shard",
      [](i64 gbs, i64 lbs, i64 dp, i64 step, i64 micro_step, i64 rank) {
        const tp::sample_range r = tp::data_shard(gbs, lbs, dp, step, micro_step, rank);
        return py::make_tuple(r.first, r.first + r.count);
      },
      py::arg("gbs"), py::arg("lbs"), py::arg("dp"), py::arg("step"), py::arg("micro_step"), py::arg("rank"),
      "The [first, end) sample indices a data-parallel rank reads in one micro-step of one step.");
  m.def(
      "make_schedule",
      [](const std::string& kind, i64 pp, i64 micro_batches, i64 vpp) {
        const tp::schedule s = tp::make_schedule(schedule_of(kind), pp, micro_batches, vpp);
        std::vector<std::vector<std::tuple<std::string, i64, i64>>> stages;
        for (const auto& stage : s.stages) {
          auto& out = stages.emplace_back();
          for (const tp::action& a : stage)
            out.emplace_back(a.kind == tp::pass::forward ? "F" : "B", a.micro_batch, a.chunk);
        }
        py::dict d;
        d["bubble_fraction"] = s.bubble_fraction();
        d["stages"] = stages;
        return d;
      },
      py::arg("kind"), py::arg("pp"), py::arg("micro_batches"), py::arg("vpp") = 1,
      "A pipeline schedule ('gpipe', '1f1b', 'interleaved'): each stage's (pass, micro_batch, chunk) in order.");

  // ---- memory
  m.def(
      "estimate_memory",
      [](const tp::transformer_spec& s, const tp::parallel_config& c, i64 world, i64 lbs, i64 seq, i64 micro_batches,
         const std::string& param_dtype, const std::string& framework, bool flash_attention,
         std::optional<bool> fp32_grads, const py::kwargs& more) {
        tp::memory_options o;
        apply_memory_keywords(o, more);
        o.lbs = lbs;
        o.seq = seq;
        o.micro_batches = micro_batches;
        o.param_dtype = dtype_of(param_dtype, "param_dtype");
        o.accounting = framework_of(framework);
        o.flash_attention = flash_attention;
        o.fp32_grads = fp32_grads;
        const tp::memory_estimate e = tp::estimate_memory(s, c, world, o);
        std::vector<py::dict> stages;
        for (const tp::stage_memory& st : e.stages) {
          py::dict d;
          d["stage"] = st.stage;
          d["layers"] = st.layers;
          d["inflight"] = st.inflight;
          d["params"] = st.params;
          d["grads"] = st.grads;
          d["grad_buffers"] = st.grad_buffers;
          d["optimizer"] = st.optimizer;
          d["activations"] = st.activations;
          d["other"] = st.other;
          d["reserve"] = st.reserve;
          d["total"] = st.total();
          stages.push_back(d);
        }
        py::dict out;
        out["stages"] = stages;
        out["max_total"] = e.max_total();
        out["max_need"] = e.max_need();
        return out;
      },
      py::arg("model"), py::arg("config"), py::arg("world"), py::kw_only(), py::arg("lbs") = 1, py::arg("seq"),
      py::arg("micro_batches") = 1, py::arg("param_dtype") = "bf16", py::arg("framework") = "generic",
      py::arg("flash_attention") = false, py::arg("fp32_grads") = py::none(),
      "Device memory per pipeline stage, in bytes (the most loaded rank of each stage); max_need, what the "
      "largest stage needs to fit (max reserved, the runtime overhead left out). fp32_grads: True or False for fp32 "
      "or 16-bit gradient buffers, None for the framework's default.");

  // ---- step time and the planner
  m.def(
      "predict_step",
      [](const tp::transformer_spec& model, const tp::parallel_config& config, const std::string& device, i64 devices,
         i64 devices_per_node, i64 gbs, i64 lbs, i64 seq, const std::string& framework, const std::string& param_dtype,
         bool flash_attention, const py::kwargs& more) {
        step_setup s =
            step_setup_of(device, devices, devices_per_node, gbs, lbs, seq, framework, param_dtype, flash_attention);
        apply_memory_keywords(s.options.memory, more);
        tp::parallel_config c = config;
        const i64 mp = c.tp * c.pp * c.cp;
        if (c.dp != 0 && (mp <= 0 || c.dp * mp != devices))
          throw tp::config_error("dp", "dp " + std::to_string(c.dp) + " x tp " + std::to_string(c.tp) + " x pp " +
                                           std::to_string(c.pp) + " x cp " + std::to_string(c.cp) + " is not the " +
                                           std::to_string(devices) + " devices; leave dp 0 and the devices decide it");
        c.dp = 0;  // the devices decide it
        tp::step_prediction p;
        {
          py::gil_scoped_release free_python;  // pure C++ from here
          p = tp::predict_step(model, c, s.cluster, s.profile, s.options);
        }
        return prediction_dict(p);
      },
      py::arg("model"), py::arg("config"), py::kw_only(), py::arg("device"), py::arg("devices"),
      py::arg("devices_per_node") = 8, py::arg("gbs"), py::arg("lbs") = 1, py::arg("seq"),
      py::arg("framework") = "generic", py::arg("param_dtype") = "bf16", py::arg("flash_attention") = false,
      "One layout's predicted step time (s), token/p/s, MFU and HFU (megatron convention), where the time goes and "
      "what each stage needs of the device (bytes, max reserved: memory_max is the largest), on a table device at "
      "its built-in profile (trainperf predict).");
  m.def(
      "plan",
      [](const tp::transformer_spec& model, const std::string& device, i64 devices, i64 devices_per_node, i64 gbs,
         i64 seq, const std::string& framework, const std::string& param_dtype, bool flash_attention, i64 top,
         double memory_margin, i64 threads) {
        const step_setup s =
            step_setup_of(device, devices, devices_per_node, gbs, 1, seq, framework, param_dtype, flash_attention);
        tp::plan_request q;
        q.model = model;
        q.cluster = s.cluster;
        q.profile = s.profile;
        q.step = s.options;
        if (top < 1 || top > 1000) throw tp::config_error("top", "top " + std::to_string(top) + " must be in 1..1000");
        if (threads < 0 || threads > 1024)
          throw tp::config_error("threads", "threads " + std::to_string(threads) + " must be in 0..1024 (0: all)");
        q.top = static_cast<std::size_t>(top);
        q.memory_margin = memory_margin;
        q.threads = static_cast<unsigned>(threads);
        tp::plan_result r;
        {
          py::gil_scoped_release free_python;  // the search runs on its own threads
          r = tp::plan(q);
        }
        std::vector<py::dict> candidates;
        for (const tp::plan_candidate& c : r.candidates) {
          py::dict d = prediction_dict(c.prediction);
          for (const auto& [key, value] : parallel_dict(c.config)) d[key] = value;  // the layout's settings
          d["lbs"] = c.lbs;
          d["gas"] = c.gas;
          candidates.push_back(d);
        }
        py::dict out;
        out["candidates"] = candidates;
        out["enumerated"] = r.enumerated;
        out["invalid"] = r.invalid;
        out["pruned_memory"] = r.pruned_memory;
        out["evaluated"] = r.evaluated;
        return out;
      },
      py::arg("model"), py::kw_only(), py::arg("device"), py::arg("devices"), py::arg("devices_per_node") = 8,
      py::arg("gbs"), py::arg("seq"), py::arg("framework") = "generic", py::arg("param_dtype") = "bf16",
      py::arg("flash_attention") = false, py::arg("top") = 5, py::arg("memory_margin") = 0.05, py::arg("threads") = 0,
      "Every layout the framework supports for a fixed global batch: checked, pruned by memory, predicted, ranked "
      "(trainperf plan); the fastest first.");

  // ---- reports
  m.def(
      "check_report",
      [](const std::string& path, const std::string& model, double params, double k, const std::string& device,
         double peak_flops, const std::string& convention, bool predict) {
        tp::report_check_options o;
        o.model = model;
        o.params = params;
        o.k = k;
        o.device = device;
        o.peak_flops = peak_flops;
        o.convention = convention_of(convention);
        o.predict_memory = predict;
        const tp::report_audit a = tp::check_report(tp::io::read_case_report(path), o);
        std::vector<py::dict> rows, findings;
        const auto opt = [](const auto& v) { return v ? py::cast(*v) : py::none(); };
        for (const auto& r : a.rows) {
          py::dict d;
          d["row"] = r.row;
          d["line"] = r.line;
          d["model"] = r.model;
          d["device"] = r.device;
          d["devices"] = opt(r.devices);
          d["precision"] = r.precision;
          d["tp"] = opt(r.tp);
          d["pp"] = opt(r.pp);
          d["dp"] = opt(r.dp);
          d["lbs"] = opt(r.lbs);
          d["gas"] = opt(r.gas);
          d["seq"] = opt(r.seq);
          d["gbs"] = opt(r.gbs);
          d["tokens_per_device_per_s"] = opt(r.tokens_per_device_per_s);
          d["loss"] = opt(r.loss);
          d["memory_used"] = opt(r.memory_used);
          d["memory_capacity"] = opt(r.memory_capacity);
          d["mfu"] = opt(r.mfu);
          d["mfu_recomputed"] = opt(r.mfu_recomputed);
          d["memory_predicted"] = opt(r.memory_predicted);
          rows.push_back(d);
        }
        for (const auto& f : a.findings) {
          py::dict d;
          d["row"] = f.row == 0 ? py::object(py::none()) : py::object(py::int_(f.row));
          d["line"] = f.line;
          d["column"] = f.column;
          d["kind"] = f.kind;
          d["severity"] = std::string(tp::to_string(f.severity));
          d["printed"] = f.printed;
          d["expected"] = f.expected;
          d["message"] = f.message;
          findings.push_back(d);
        }
        py::dict out;
        out["rows"] = rows;
        out["findings"] = findings;
        return out;
      },
      py::arg("path"), py::kw_only(), py::arg("model") = "", py::arg("params") = 0.0, py::arg("k") = 0.0,
      py::arg("device") = "", py::arg("peak_flops") = 0.0, py::arg("convention") = "nominal",
      py::arg("predict") = false,
      "trainperf check-report: the rows read from a case report and every cell that does not follow.");
}
