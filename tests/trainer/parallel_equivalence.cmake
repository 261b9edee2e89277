# Data parallelism over MPI: DP = 2 processes x LBS 2 must follow DP = 1 x LBS 4 to fp32
# tolerance (same global batch, gradient all-reduce over the layout's dp group). Skipped,
# visibly, when MPI is absent (CTest matches "SKIPPED:").
if(NOT MPIEXEC)
  message("SKIPPED: MPI not found (install libopenmpi-dev to run the data-parallel test)")
  return()  # CTest reports the test skipped (SKIP_REGULAR_EXPRESSION "SKIPPED:")
endif()
set(common --steps 5 --seq 32 --threads 1 --corpus-bytes 200000 --eval-every 1000 --log-every 100 --peak-flops 1e11)
execute_process(COMMAND ${EXE} ${common} --lbs 4 --log ${WORK}/dp1.log RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "single-process run failed (${rc})")
endif()
set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)
set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
execute_process(COMMAND ${MPIEXEC} -n 2 --oversubscribe ${EXE} ${common} --lbs 2 --log ${WORK}/dp2.log
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mpirun -n 2 failed (${rc}):\n${out}")
endif()
execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_losses.py ${WORK}/dp1.log ${WORK}/dp2.log 1e-5
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "DP=2 x LBS 2 does not follow DP=1 x LBS 4")
endif()
