# Compile-fail tests: a translation unit that must NOT compile, checked for the reason.
#
#   trainperf_add_compile_fail_test(NAME <test> SOURCE <file.cpp> REASON <regex> [LINK <targets>...])
#     Passes only when building SOURCE fails AND the compiler output matches REASON.
#   trainperf_add_compile_pass_test(NAME <test> SOURCE <file.cpp> [LINK <targets>...])
#     The counterpart: passes only when SOURCE compiles.
#
# Each source becomes an object library excluded from `all`; the test builds it through
# `cmake --build` and a script reports the outcome. Builds share the build tree, so the
# tests hold one RESOURCE_LOCK.
set(_trainperf_compile_test_script ${CMAKE_CURRENT_LIST_DIR}/trainperfCompileTest.cmake)

function(_trainperf_compile_target name source link)
  add_library(${name} OBJECT EXCLUDE_FROM_ALL ${source})
  target_link_libraries(${name} PRIVATE ${link})
endfunction()

function(trainperf_add_compile_fail_test)
  cmake_parse_arguments(arg "" "NAME;SOURCE;REASON" "LINK" ${ARGN})
  if(NOT arg_NAME OR NOT arg_SOURCE OR NOT arg_REASON)
    message(FATAL_ERROR "trainperf_add_compile_fail_test needs NAME, SOURCE and REASON")
  endif()
  _trainperf_compile_target(${arg_NAME}_obj ${arg_SOURCE} "${arg_LINK}")
  add_test(NAME ${arg_NAME}
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR} -DTARGET=${arg_NAME}_obj -DEXPECT=fail
                   -DCONFIG=$<CONFIG> -P ${_trainperf_compile_test_script})
  set_tests_properties(${arg_NAME} PROPERTIES
    PASS_REGULAR_EXPRESSION "${arg_REASON}"
    FAIL_REGULAR_EXPRESSION "TRAINPERF-COMPILE-TEST: compiled although it must not"
    RESOURCE_LOCK trainperf_compile_tests
    LABELS compile_fail)
endfunction()

function(trainperf_add_compile_pass_test)
  cmake_parse_arguments(arg "" "NAME;SOURCE" "LINK" ${ARGN})
  _trainperf_compile_target(${arg_NAME}_obj ${arg_SOURCE} "${arg_LINK}")
  add_test(NAME ${arg_NAME}
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR} -DTARGET=${arg_NAME}_obj -DEXPECT=pass
                   -DCONFIG=$<CONFIG> -P ${_trainperf_compile_test_script})
  set_tests_properties(${arg_NAME} PROPERTIES RESOURCE_LOCK trainperf_compile_tests LABELS compile_fail)
endfunction()
