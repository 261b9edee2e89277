# Regenerates the single header into OUT and fails when it differs from the committed one.
execute_process(COMMAND ${PYTHON} ${SOURCE_DIR}/scripts/amalgamate --output ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scripts/amalgamate failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${SOURCE_DIR}/single_include/trainperf/trainperf.hpp
                RESULT_VARIABLE differ)
if(differ)
  message(FATAL_ERROR "single_include/trainperf/trainperf.hpp is out of date with include/; run scripts/amalgamate and commit")
endif()
