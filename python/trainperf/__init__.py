"""trainperf from Python: the C++ library's numbers with its conventions and error messages.

    import trainperf
    m = trainperf.preset("llama2-70b")
    flops = trainperf.count_flops(m, convention="nominal", params=70e9)["model_per_token"]
    mfu = trainperf.utilization(flops, 791.37, trainperf.peak_flops("H800", "bf16"))

Every invalid input raises trainperf.ConfigError (a ValueError) with the message the C++
library and the command-line tool print, and the field it concerns in ``.field``.
"""

import contextlib
import time


class ConfigError(ValueError):
    """An invalid configuration or input: ``str(e)`` says what and how to fix it, ``e.field`` names it."""

    def __init__(self, message, field=""):
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self):
        return self.message


from ._trainperf import (  # noqa: E402  (ConfigError must exist before the extension raises it)
    Layout,
    Model,
    ParallelConfig,
    _Meter,
    check_parallel,
    check_report,
    count_flops,
    count_params,
    data_shard,
    device,
    devices,
    estimate_memory,
    make_schedule,
    model_from_hf_config,
    nominal_params,
    partition_layers,
    peak_flops,
    plan,
    predict_step,
    preset,
    presets,
    solve_batch,
    tensor_parallel_slice,
    tokens_per_device_per_s_from_samples,
    tokens_per_device_per_s_from_step,
    utilization,
    zero_shard,
)


def mfu(flops_per_token, tokens_per_device_per_s, peak_flops):
    """Model FLOPs utilization, a fraction: ``utilization`` with model FLOPs per token."""
    return utilization(flops_per_token, tokens_per_device_per_s, peak_flops)


class Meter(_Meter):
    """Measured steps in, token/p/s, TFLOP/s per device, MFU and HFU out (C++ trainperf::meter).

    Around a training loop::

        meter = trainperf.Meter(model_flops_per_token=f, peak_flops=p, devices=world)
        for batch in data:
            with meter.timed(tokens=global_batch_tokens):
                train_step(batch)
        print(meter.running())   # dict, or None while warming up

    or ``meter.start()`` ... ``meter.stop(tokens=N)``, or ``meter.step(tokens, seconds)`` with
    times of your own (e.g. after torch.cuda.synchronize()).
    """

    _started = None

    def start(self):
        """Starts timing a step (explicit form of ``timed``); ``stop`` ends it."""
        self._started = time.perf_counter()

    def stop(self, *, tokens=None, sequences=None, seq=None):
        """Ends the step ``start`` began and records it as ``tokens`` (or ``sequences`` of ``seq``)."""
        if self._started is None:
            raise ConfigError("Meter.stop() without Meter.start(): start the step first", "start")
        seconds, self._started = time.perf_counter() - self._started, None
        self._record(tokens, sequences, seq, seconds)

    def _record(self, tokens, sequences, seq, seconds):
        if (tokens is None) == (sequences is None):
            raise ConfigError("give the step's size as tokens=N or as sequences=N, seq=T (exactly one)", "tokens")
        if sequences is not None and seq is None:
            raise ConfigError("sequences=N needs seq=T, the tokens per sequence", "seq")
        if tokens is not None:
            self.step(tokens, seconds)
        else:
            self.step_sequences(sequences, seq, seconds)

    @contextlib.contextmanager
    def timed(self, *, tokens=None, sequences=None, seq=None):
        """Times the block and records it as one step of ``tokens`` (or ``sequences`` of ``seq``)."""
        if (tokens is None) == (sequences is None) or (sequences is not None and seq is None):
            self._record(tokens, sequences, seq, 0.0)  # raises the ConfigError saying which
        start = time.perf_counter()
        yield self
        self._record(tokens, sequences, seq, time.perf_counter() - start)


__all__ = [
    "ConfigError", "Layout", "Meter", "Model", "ParallelConfig", "check_parallel", "check_report", "count_flops",
    "count_params", "data_shard", "device", "devices", "estimate_memory", "make_schedule", "mfu", "model_from_hf_config",
    "nominal_params", "partition_layers", "peak_flops", "plan", "predict_step", "preset", "presets", "solve_batch",
    "tensor_parallel_slice", "tokens_per_device_per_s_from_samples", "tokens_per_device_per_s_from_step", "utilization", "zero_shard",
]
