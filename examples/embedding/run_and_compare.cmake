# Run by CTest (cmake -P): runs PROGRAM and fails unless it exits with 0 and prints exactly
# the contents of EXPECTED.
execute_process(COMMAND ${PROGRAM} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ ${EXPECTED} expected)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
if(NOT out STREQUAL expected)
  message(FATAL_ERROR "${PROGRAM} printed something else than ${EXPECTED}:\n${expected}")
endif()
