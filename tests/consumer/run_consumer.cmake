# Builds and runs tests/consumer the way a user would, in one of two modes:
#   MODE=find_package      install this build of haze into a prefix, then
#                          find_package(haze CONFIG REQUIRED) from it;
#   MODE=add_subdirectory  add the haze source tree as a subdirectory.
# Arguments: HAZE_SOURCE_DIR, HAZE_BINARY_DIR, WORK_DIR, MODE.

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "consumer (${MODE}): command failed (${rc}): ${command}")
  endif()
endfunction()

set(work ${WORK_DIR}/${MODE})
file(REMOVE_RECURSE ${work})
set(configure_args -S ${HAZE_SOURCE_DIR}/tests/consumer -B ${work}/build -DCMAKE_BUILD_TYPE=Release
                   -DHAZE_CONSUMER_MODE=${MODE})
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install ${HAZE_BINARY_DIR} --prefix ${work}/prefix)
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${work}/prefix)
else()
  list(APPEND configure_args -DHAZE_SOURCE_DIR=${HAZE_SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} ${configure_args})
run(${CMAKE_COMMAND} --build ${work}/build --parallel 2)
run(${work}/build/consumer_cpu)
run(${work}/build/consumer_device_omp)
