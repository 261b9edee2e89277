# train_llama --metrics -> trainperf report -> trainperf check-report: a report written from a
# run's metrics passes the audit with no findings (issue 21), for a file holding two runs (two
# micro-batch sizes, so two rows and two GEMM probes, of which the report states the higher).
# The audit is not the writer's: it recomputes MFU from the printed token/p/s, the stated FLOPs
# per token and peak, GBS from the prose, and checks the memory against its capacity.
set(metrics ${WORK}/report_round_trip.jsonl)
file(REMOVE ${metrics})
foreach(lbs IN ITEMS 4 2)
  execute_process(COMMAND ${TRAINER} --seq 64 --lbs ${lbs} --steps 8 --log-every 4 --eval-every 1000
                          --corpus-bytes 200000 --metrics ${WORK}/report_round_trip_${lbs}.jsonl
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "train_llama --lbs ${lbs}: exit ${rc}\n${out}${err}")
  endif()
  file(READ ${WORK}/report_round_trip_${lbs}.jsonl records)
  file(APPEND ${metrics} "${records}")
endforeach()
execute_process(COMMAND ${CLI} report --metrics ${metrics} OUTPUT_FILE ${WORK}/report_round_trip.md
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "trainperf report: exit ${rc}: ${err}")
endif()
file(READ ${WORK}/report_round_trip.md report)
message("${report}")
string(REGEX MATCHALL "\n\\| CPU \\(1x1\\) \\| fp32 \\| TP1PP1DP1 \\| LBS=[42] GAS=1 MPE=64 \\| [0-9]+\\.[0-9][0-9] \\| [0-9]+\\.[0-9][0-9][0-9][0-9] \\| [0-9.]+/[0-9.]+ \\| [0-9]+\\.[0-9][0-9]% \\|"
       rows "${report}")
list(LENGTH rows n)
if(NOT n EQUAL 2)
  message(FATAL_ERROR "the report has ${n} complete result rows, expected 2 (one per run)")
endif()
execute_process(COMMAND ${CLI} check-report ${WORK}/report_round_trip.md RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "2 rows read from 1 results table; 0 errors, 0 warnings" OR
   NOT out MATCHES "no findings")
  message(FATAL_ERROR "check-report on the generated report: exit ${rc}")
endif()
execute_process(COMMAND ${CLI} report --metrics ${metrics} --format json RESULT_VARIABLE rc OUTPUT_VARIABLE json)
string(JSON rows_in_json LENGTH "${json}" rows)
if(NOT rc EQUAL 0 OR NOT rows_in_json EQUAL 2)
  message(FATAL_ERROR "trainperf report --format json: exit ${rc}, ${rows_in_json} rows\n${json}")
endif()
