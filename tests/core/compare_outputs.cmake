# Runs two programs and fails unless they print the same thing.
# Arguments: FIRST, SECOND (paths to executables).
execute_process(COMMAND ${FIRST} OUTPUT_VARIABLE first RESULT_VARIABLE rc1)
execute_process(COMMAND ${SECOND} OUTPUT_VARIABLE second RESULT_VARIABLE rc2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "a program failed: ${FIRST} -> ${rc1}, ${SECOND} -> ${rc2}")
endif()
if(NOT first STREQUAL second)
  message(FATAL_ERROR "outputs differ:\n  ${FIRST}: ${first}  ${SECOND}: ${second}")
endif()
message(STATUS "both print ${first}")
