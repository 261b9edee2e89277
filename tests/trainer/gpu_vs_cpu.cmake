# train_llama --device cuda against --device cpu: the same model, initial weights and data, so
# the first 10 steps' losses must agree to bf16 accuracy (step 1 is the forward alone; steps
# 2-10 follow the GPU's backward, clipping and AdamW: a wrong gradient shows there), and
# training on the GPU must reduce the loss. Skipped, visibly, where no CUDA device is usable (CTest matches "SKIPPED:").
set(model --heads 2 --kv-heads 1)  # head dim 64: the CUDA attention takes 64 or 128
set(common ${model} --lbs 4 --seq 64 --corpus-bytes 200000 --eval-every 1000 --log-every 10 --peak-flops 1e12)
execute_process(COMMAND ${EXE} ${common} --device cuda --steps 40 --log ${WORK}/gpu.log
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(out MATCHES "none is usable here|built without CUDA")
  message("SKIPPED: ${out}")
  return()  # CTest reports the test skipped (SKIP_REGULAR_EXPRESSION "SKIPPED:")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "GPU run failed (${rc}):\n${out}")
endif()
message("${out}")
execute_process(COMMAND ${EXE} ${common} --device cpu --steps 10 --log ${WORK}/cpu.log RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "CPU run failed (${rc})")
endif()
# bf16 activations and weights against fp32 over 4 x 64 tokens (the same learning-rate warm-up
# on both).
include(${CMAKE_CURRENT_LIST_DIR}/bf16_losses.cmake)
compare_bf16_losses(${WORK}/cpu.log ${WORK}/gpu.log "the GPU's losses differ from the CPU's")
file(STRINGS ${WORK}/gpu.log first LIMIT_COUNT 1)
# 40 steps must have learned something: the last loss well under the first (ln 256 = 5.55).
file(STRINGS ${WORK}/gpu.log all)
list(GET all -1 last)
execute_process(COMMAND ${PYTHON} -c "import sys; f=float.fromhex(sys.argv[1].split()[3]); l=float.fromhex(sys.argv[2].split()[3]); print(f, l); sys.exit(0 if l < 0.8 * f else 1)" "${first}" "${last}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the GPU run did not learn: first and last loss above")
endif()
