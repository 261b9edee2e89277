# The GEMM probe gives a peak that a whole training step never exceeds: train_llama runs RUNS
# times without --peak-flops on a step made almost only of large GEMMs (one layer, hidden 1024,
# ffn 4096, 1024 tokens per micro-batch), where a short or noisy probe would put the achieved
# FLOP/s above its "peak" (a 512^3 probe printed MFUs of 107-146%). Every run must print its MFU
# cell, at most 100%, and never the "MFU left out" line the meter's refusal leads to.
if(NOT DEFINED RUNS)
  set(RUNS 3)
endif()
set(args --layers 1 --hidden 1024 --heads 8 --kv-heads 8 --ffn 4096 --vocab 256 --seq 256 --lbs 4 --steps 5
         --eval-every 1000 --log-every 100 --corpus-bytes 200000)
foreach(run RANGE 1 ${RUNS})
  execute_process(COMMAND ${EXE} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${run}: exit ${rc}\n${out}${err}")
  endif()
  string(REGEX MATCH "peak for MFU: [^\n]*" peak "${out}")
  string(REGEX MATCH "\\| ([0-9.]+)% \\|\n" row "${out}")
  set(mfu "${CMAKE_MATCH_1}")  # (if(... MATCHES ...) below resets CMAKE_MATCH_1)
  message("run ${run}: ${peak}; MFU ${mfu}%")
  if(out MATCHES "MFU left out" OR mfu STREQUAL "")
    message(FATAL_ERROR "run ${run}: the achieved FLOP/s passed the probe's peak\n${out}")
  endif()
  if(mfu GREATER 100)
    message(FATAL_ERROR "run ${run}: MFU ${mfu}% above 100%")
  endif()
endforeach()
