# Run by CTest (cmake -P): builds TARGET in BUILD_DIR and prints the compiler's output.
# EXPECT=fail: a successful build prints the sentinel the test's FAIL_REGULAR_EXPRESSION
# catches; the failure's reason is matched by PASS_REGULAR_EXPRESSION on the output.
# EXPECT=pass: the exit code decides.
set(_config_args)
if(CONFIG)
  set(_config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} ${_config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(EXPECT STREQUAL "fail")
  if(rc EQUAL 0)
    message(FATAL_ERROR "TRAINPERF-COMPILE-TEST: compiled although it must not (${TARGET})")
  endif()
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "TRAINPERF-COMPILE-TEST: ${TARGET} must compile but did not")
endif()
