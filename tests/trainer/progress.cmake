# A long run is never silent, even through a pipe: the header lines come before the first
# step, and a progress line (what it is doing, for how long, the ETA once a step is done)
# comes at least every --progress-every seconds although --log-every is never reached. The
# run is stopped after a few seconds; what it printed by then is checked.
execute_process(COMMAND ${EXE} --seq 2048 --lbs 4 --steps 100000 --log-every 100000 --eval-every 100000
                        --peak-flops 1e11 --progress-every 0.5
                OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 6 RESULT_VARIABLE rc)
message("exit: ${rc}\nstdout:\n${out}\nstderr:\n${err}")
foreach(want "train_llama: tiny \\(853,120 parameters\\), seq 2048"
             "trainperf: config valid, [^\n]*memory predicted [0-9.]+ GiB"
             "data: embedded generated corpus"
             "peak for MFU: 1e\\+11 FLOP/s"
             "  \\.\\.\\. step [0-9]+/100000: [0-9.]+ s so far")
  if(NOT out MATCHES "${want}")
    message(FATAL_ERROR "the first seconds' output lacks '${want}'")
  endif()
endforeach()
string(FIND "${out}" "peak for MFU" header_end)
string(FIND "${out}" "... step" first_progress)
if(first_progress LESS header_end)
  message(FATAL_ERROR "a progress line came before the header")
endif()
