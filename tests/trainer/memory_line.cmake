# The memory line says what is compared: peak RSS split into the process before the model
# (libraries, OpenMP runtime, data) and what training added, beside trainperf's prediction.
execute_process(COMMAND ${EXE} --steps 4 --lbs 2 --seq 32 --corpus-bytes 200000 --eval-every 1000 --peak-flops 1e11
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run failed (${rc}):\n${out}")
endif()
string(REGEX MATCH "memory: [^\n]*" line "${out}")
message("${line}")
set(re "^memory: peak RSS ([0-9.]+) GiB = ([0-9.]+) GiB before the model was built \\(libraries, OpenMP runtime, data[^)]*\\) \\+ ([0-9.]+) GiB for training; trainperf's model of the training part ([0-9.]+) GiB")
if(NOT line MATCHES "${re}")
  message(FATAL_ERROR "the memory line does not say what it compares")
endif()
