# A parallel train_llama run over MPI must follow the single-process run of the same global batch
# (the same seed, data order and weights: every shard and stage is a slice of the single-process
# model), step by step for 10 steps. Arguments: NP (processes), DP (the parallel run's data-
# parallel size), LBS (its micro batch; the reference runs LBS x DP), FLAGS (the parallel run's
# layout flags), SHARED (flags of both runs: model, micro-batch count; both space-separated),
# NAME, and MISPLACE=ON to run with one shard deliberately misplaced (the MLP down projection's
# columns from the next tensor rank) and require the comparison to FAIL: the tolerance must
# catch a wrong split.
#
# Tolerance 1e-5 relative, per step, for the loss and for the gradient norm before clipping
# (logged beside it: a norm counted wrong over the ranks would change the run only on the steps
# it clips). A correct split changes only the order of fp32 sums (a row-parallel product adds
# the ranks' partial sums; the all-reduce adds in its own order): a few units of fp32 rounding
# (6e-8) per reduction, observed 0 to 6e-7 over the 10 steps for every layout tested here on
# this machine (a pipeline alone is bit-identical: a stage runs the same kernels on the same
# numbers). A misplaced shard is a different function: 9e-4 in the loss at the
# first step. 1e-5 sits 15 times above the first and 90 times below the second.
include(${CMAKE_CURRENT_LIST_DIR}/mpi_test_setup.cmake)
if(NOT MPIEXEC)
  return()
endif()
separate_arguments(FLAGS)
separate_arguments(SHARED)
set(common ${trainer_flags} --steps 10 --eval-every 5 ${SHARED})
math(EXPR ref_lbs "${LBS} * ${DP}")
execute_process(COMMAND ${EXE} ${common} --lbs ${ref_lbs} --log ${d}/${NAME}_ref.log RESULT_VARIABLE rc
                OUTPUT_VARIABLE ref_out ERROR_VARIABLE ref_out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "single-process run (--lbs ${ref_lbs}) failed (${rc}):\n${ref_out}")
endif()
set(env_flag "")
if(MISPLACE)
  set(ENV{TRAIN_LLAMA_TEST_MISPLACE_SHARD} 1)
  set(env_flag -x TRAIN_LLAMA_TEST_MISPLACE_SHARD)
endif()
string(REPLACE ";" " " shown "${FLAGS}")
execute_process(COMMAND ${MPIEXEC} -n ${NP} --oversubscribe ${env_flag} ${EXE} ${common} --lbs ${LBS} ${FLAGS}
                        --log ${d}/${NAME}.log
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mpirun -n ${NP} train_llama ${shown} failed (${rc}):\n${out}")
endif()
execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_losses.py ${d}/${NAME}_ref.log
                        ${d}/${NAME}.log 1e-5 norms
                RESULT_VARIABLE rc OUTPUT_VARIABLE cmp ERROR_VARIABLE cmp)
message("${cmp}")
if(MISPLACE AND rc EQUAL 0)
  message(FATAL_ERROR "${shown} with a misplaced shard still followed the single-process run: the test cannot fail")
elseif(NOT MISPLACE AND NOT rc EQUAL 0)
  message(FATAL_ERROR "${shown} over ${NP} processes x LBS ${LBS} does not follow one process x LBS ${ref_lbs}")
endif()
# The held-out loss, evaluated through the pipeline stages and the tensor shards, is the
# reference's (with dp 1: evaluation reads micro batches, and with dp > 1 they are smaller).
string(REGEX MATCHALL "held-out loss [0-9.]+" want "${ref_out}")
string(REGEX MATCHALL "held-out loss [0-9.]+" got "${out}")
if(NOT MISPLACE AND DP EQUAL 1 AND NOT want STREQUAL got)
  message(FATAL_ERROR "held-out losses differ: ${got} vs the single process's ${want}")
endif()
