# A file whose contents are not the size it was stat'ed at is refused as having changed while
# read, not parsed from a partial buffer. sysfs files are such files, deterministically: stat
# says 4096 bytes, a read returns the few bytes of the value. Skipped where no sysfs is mounted.
set(file /sys/devices/system/cpu/online)
if(NOT EXISTS ${file})
  message("SKIPPED: ${file} does not exist here")
  return()
endif()
execute_process(COMMAND ${EXE} params --model ${file} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 2 OR NOT out STREQUAL "" OR NOT err MATCHES "online changed size while it was read")
  message(FATAL_ERROR "expected exit 2 and 'changed size while it was read', got ${rc}")
endif()
