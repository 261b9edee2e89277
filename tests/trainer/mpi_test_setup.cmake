# What every multi-process train_llama test starts with: skipped, visibly, without MPI (CTest
# matches "SKIPPED:"); Open MPI allowed to run as root (CI's containers); the small run's flags
# (`trainer_flags`: 32-token sequences, one thread a process, a fixed peak so no probe runs); a
# clean work folder `d` named after the test (NAME, else the script). An included file's
# return() ends only the include: the caller returns too when MPIEXEC is empty.
if(NOT MPIEXEC)
  message("SKIPPED: MPI not found (install libopenmpi-dev and openmpi-bin to run the parallel tests)")
  return()
endif()
set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)
set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
set(trainer_flags --seq 32 --threads 1 --corpus-bytes 200000 --log-every 100 --peak-flops 1e11)
if(NAME)
  set(d ${WORK}/${NAME})
else()
  get_filename_component(d ${CMAKE_SCRIPT_MODE_FILE} NAME_WE)
  set(d ${WORK}/${d})
endif()
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
