# train_llama --device cuda over several GPUs (one MPI process each, NCCL between them) against
# the same model on one GPU: the same seed, data order and weights (every shard and stage is a
# slice of the one-GPU model), so the first 10 steps' losses must agree to bf16 accuracy. NP
# processes, FLAGS the layout (the one-GPU run gets LBS x DP per micro-batch), SHARED both
# runs' flags, NAME. Skipped, visibly, without MPI, without CUDA, or with fewer than NP GPUs.
#
# Tolerance: the layouts change where bf16 values are rounded (a row-parallel product's partial
# sums are rounded before NCCL adds them; the vocabulary-parallel cross-entropy adds the shards'
# sums in fp32 in another order), the size of the differences gpu_vs_cpu.cmake allows between
# bf16 and fp32 (bf16_losses.cmake): 1% on the first loss, 3% on the next nine. Not yet run on a machine with
# several GPUs: the machines this project was lent had one.
include(${CMAKE_CURRENT_LIST_DIR}/mpi_test_setup.cmake)
if(NOT MPIEXEC)
  return()
endif()
execute_process(COMMAND nvidia-smi -L RESULT_VARIABLE rc OUTPUT_VARIABLE gpus ERROR_QUIET)
string(REGEX MATCHALL "GPU [0-9]+:" gpus "${gpus}")
list(LENGTH gpus n_gpus)
if(NOT rc EQUAL 0 OR n_gpus LESS NP)
  message("SKIPPED: ${NAME} needs ${NP} GPUs, and nvidia-smi lists ${n_gpus}")
  return()
endif()
separate_arguments(FLAGS)
separate_arguments(SHARED)
if(NOT SHARED MATCHES "--heads")
  list(APPEND SHARED --heads 2 --kv-heads 2)  # head dim 64 (hidden 128) for the CUDA attention
endif()
set(common --seq 64 --corpus-bytes 200000 --eval-every 1000 --log-every 10 --peak-flops 1e12 --device cuda
           --steps 10 ${SHARED})
math(EXPR ref_lbs "${LBS} * ${DP}")
execute_process(COMMAND ${EXE} ${common} --lbs ${ref_lbs} --log ${d}/ref.log RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(out MATCHES "none is usable here|built without CUDA")
  message("SKIPPED: ${out}")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "one-GPU run (--lbs ${ref_lbs}) failed (${rc}):\n${out}")
endif()
execute_process(COMMAND ${MPIEXEC} -n ${NP} --oversubscribe ${EXE} ${common} --lbs ${LBS} ${FLAGS} --log ${d}/parallel.log
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mpirun -n ${NP} train_llama --device cuda ${FLAGS} failed (${rc}):\n${out}")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/bf16_losses.cmake)
compare_bf16_losses(${d}/ref.log ${d}/parallel.log "${FLAGS} on ${NP} GPUs does not follow one GPU")
