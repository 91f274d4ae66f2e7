# Runs mpi_rank_failure's two modes under mpirun -np 2 and checks that each
# job ends, well before the sleeping rank would wake, with a failure status
# and the failing rank's message. -DMPIEXEC=... -DPROGRAM=...
foreach(mode throws hangs)
  if(mode STREQUAL "throws")
    set(expected "rank 1 could not read its data")
  else()
    set(expected "rank 0 waited 1000 ms in MPI_Ialltoallv for the other ranks")
  endif()
  string(TIMESTAMP start "%s")
  execute_process(COMMAND timeout 90 ${MPIEXEC} -np 2 ${PROGRAM} ${mode}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(TIMESTAMP end "%s")
  math(EXPR seconds "${end} - ${start}")
  if(rc EQUAL 0 OR rc EQUAL 124 OR seconds GREATER 60 OR NOT "${out}${err}" MATCHES "${expected}")
    message(FATAL_ERROR "mode ${mode}: exit ${rc} after ${seconds} s, expected a failure naming '${expected}'\n"
                        "${out}${err}")
  endif()
  message(STATUS "ok (${mode}: exit ${rc} after ${seconds} s): ${expected}")
endforeach()
