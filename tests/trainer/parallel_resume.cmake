# Checkpoints of a TP2 x PP2 run: resumed on the same layout they reproduce the uninterrupted run
# bit for bit; resumed on one process (TP1 PP1) they follow the single-process run; a single-
# process checkpoint resumed on TP2 x PP2 follows it too (resharding through trainperf's
# partitioners both ways; tolerance 1e-5 as in parallel_equivalence.cmake). A newer checkpoint
# leaves no shard files of the older one behind, and two shards swapped on disk are refused. The
# same for a DP2 run with ZeRO-1 (sharded AdamW states). Skipped, visibly, when MPI is absent.
include(${CMAKE_CURRENT_LIST_DIR}/mpi_test_setup.cmake)
if(NOT MPIEXEC)
  return()
endif()
set(common ${trainer_flags} --eval-every 1000 --lbs 2 --gas 4)
set(layout ${MPIEXEC} -n 4 --oversubscribe ${EXE} --tp 2 --pp 2)
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
endfunction()
function(compare what a b tolerance)
  execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_losses.py ${a} ${b} ${tolerance} resumed norms
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${what}:\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what}: the losses differ")
  endif()
endfunction()

run("single process, 10 steps" ${EXE} ${common} --steps 10 --log ${d}/single.log)
run("TP2 x PP2, 10 steps" ${layout} ${common} --steps 10 --log ${d}/layout.log)
run("TP2 x PP2, 5 steps with checkpoints every 2" ${layout} ${common} --steps 5 --checkpoint ${d}/ck
    --checkpoint-every 2)
file(GLOB shards ${d}/ck.step*)
list(LENGTH shards n)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "after checkpoints at steps 2, 4 and 5, 4 shard files (step 5's) should remain: ${shards}")
endif()
run("TP2 x PP2 resumed" ${layout} ${common} --steps 10 --resume ${d}/ck --log ${d}/layout_resumed.log)
compare("TP2 x PP2 resumed on its own layout, bit for bit" ${d}/layout.log ${d}/layout_resumed.log 0)
run("TP2 x PP2's checkpoint resumed on one process" ${EXE} ${common} --steps 10 --resume ${d}/ck
    --log ${d}/resharded_to_one.log)
compare("TP2 x PP2 -> TP1 PP1" ${d}/single.log ${d}/resharded_to_one.log 1e-5)
# Two shards of the same shape swapped on disk (tensor ranks 0 and 1 of stage 0) are refused.
file(RENAME ${d}/ck.step5.tp0-pp0 ${d}/swap)
file(RENAME ${d}/ck.step5.tp1-pp0 ${d}/ck.step5.tp0-pp0)
file(RENAME ${d}/swap ${d}/ck.step5.tp1-pp0)
execute_process(COMMAND ${EXE} ${common} --steps 10 --resume ${d}/ck RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
if(rc EQUAL 0 OR NOT out MATCHES "holds tensor rank 1 of 2, pipeline stage 0 .*files were moved or renamed")
  message(FATAL_ERROR "swapped shards were not refused (${rc}):\n${out}")
endif()
run("single process, 5 steps" ${EXE} ${common} --steps 5 --checkpoint ${d}/single.ck)
run("its checkpoint resumed on TP2 x PP2" ${layout} ${common} --steps 10 --resume ${d}/single.ck
    --log ${d}/resharded_to_layout.log)
compare("TP1 PP1 -> TP2 x PP2" ${d}/single.log ${d}/resharded_to_layout.log 1e-5)

# ZeRO-1 over DP2 (the same global batch): each replica's part of the AdamW states is gathered
# whole for the checkpoint and cut back to the part on resume.
set(zero ${MPIEXEC} -n 2 --oversubscribe ${EXE} --dp 2 --zero 1)
set(zero_common ${trainer_flags} --eval-every 1000 --lbs 1 --gas 4)
run("DP2 ZeRO-1, 10 steps" ${zero} ${zero_common} --steps 10 --log ${d}/zero.log)
run("DP2 ZeRO-1, 5 steps with a checkpoint" ${zero} ${zero_common} --steps 5 --checkpoint ${d}/zero.ck)
run("DP2 ZeRO-1 resumed" ${zero} ${zero_common} --steps 10 --resume ${d}/zero.ck --log ${d}/zero_resumed.log)
compare("DP2 ZeRO-1 resumed on its own layout, bit for bit" ${d}/zero.log ${d}/zero_resumed.log 0)
run("DP2 ZeRO-1's checkpoint resumed on one process" ${EXE} ${common} --steps 10 --resume ${d}/zero.ck
    --log ${d}/zero_to_one.log)
compare("DP2 ZeRO-1 -> one process" ${d}/single.log ${d}/zero_to_one.log 1e-5)
