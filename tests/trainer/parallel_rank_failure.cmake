# A rank that dies in the middle of a step (SIGKILL after its backward, before the gradient
# reduction: TRAIN_LLAMA_TEST_KILL="1:6") must not leave the others waiting: the run ends within
# a bounded time (here 120 s; about 2 s on this machine) with a message naming the failed rank
# (mpirun's), and the last checkpoint (step 4 of checkpoints every 2) survives whole: a run
# resumes from it. Skipped, visibly, when MPI is absent.
include(${CMAKE_CURRENT_LIST_DIR}/mpi_test_setup.cmake)
if(NOT MPIEXEC)
  return()
endif()
set(ENV{TRAIN_LLAMA_TEST_KILL} "1:6")
set(common ${trainer_flags} --eval-every 1000 --lbs 2 --gas 4)
execute_process(COMMAND ${MPIEXEC} -x TRAIN_LLAMA_TEST_KILL -n 4 --oversubscribe ${EXE} --tp 2 --pp 2 ${common}
                        --steps 10 --checkpoint ${d}/ck --checkpoint-every 2
                TIMEOUT 120 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0 OR rc MATCHES "timeout")
  message(FATAL_ERROR "the run with rank 1 killed at step 6 ended with '${rc}' (expected a failure within 120 s):\n${out}")
endif()
if(NOT out MATCHES "rank 1[^0-9]")
  message(FATAL_ERROR "the failure message does not name rank 1:\n${out}")
endif()
unset(ENV{TRAIN_LLAMA_TEST_KILL})
file(READ ${d}/ck manifest)
if(NOT manifest MATCHES "step 4")
  message(FATAL_ERROR "the surviving checkpoint is not step 4's:\n${manifest}")
endif()
execute_process(COMMAND ${EXE} ${common} --steps 5 --resume ${d}/ck RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from .* after step 4")
  message(FATAL_ERROR "resuming from the surviving checkpoint failed (${rc}):\n${out}")
endif()
