# compare_bf16_losses(REF GOT WHAT): the first 10 steps of two train_llama --log files must
# agree to bf16 accuracy: 1% on the first loss (the forward alone), 3% on the next nine (the
# backward, clipping and AdamW follow). Used where one side computes in bf16 on a GPU.
function(compare_bf16_losses ref got what)
  foreach(n 1 10)
    file(STRINGS ${ref} a LIMIT_COUNT ${n})
    file(STRINGS ${got} b LIMIT_COUNT ${n})
    list(JOIN a "\n" a)
    list(JOIN b "\n" b)
    file(WRITE ${ref}.first${n} "${a}\n")
    file(WRITE ${got}.first${n} "${b}\n")
    if(n EQUAL 1)
      set(rtol 1e-2)
    else()
      set(rtol 3e-2)
    endif()
    execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/compare_losses.py ${ref}.first${n}
                            ${got}.first${n} ${rtol} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${what} (first ${n} steps, rtol ${rtol})")
    endif()
  endforeach()
endfunction()
