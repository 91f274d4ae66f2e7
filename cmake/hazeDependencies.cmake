# Finds what the haze headers need: Eigen 3 (required) and OpenMP (optional,
# used for the Cpu backend's loops and by the Device backend's OMP system).
# A machine without Debian's packages (the GPU check machine) may carry the
# headers in third_party/, filled by scripts/vendor-headers.

find_package(Eigen3 3.3 NO_MODULE QUIET)
if(NOT TARGET Eigen3::Eigen)
  set(_haze_vendored_eigen ${PROJECT_SOURCE_DIR}/third_party/eigen3)
  if(EXISTS ${_haze_vendored_eigen}/Eigen/Core)
    add_library(Eigen3::Eigen INTERFACE IMPORTED GLOBAL)
    set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${_haze_vendored_eigen})
    message(STATUS "haze: using the vendored Eigen in ${_haze_vendored_eigen}")
  else()
    message(FATAL_ERROR "haze needs Eigen 3: apt-get install libeigen3-dev (or run scripts/vendor-headers)")
  endif()
endif()

find_package(OpenMP COMPONENTS CXX)

# haze::io (safetensors, IDX, PNG) is optional: the JSON header parser, zlib
# for gzip'd IDX files and libpng. haze::haze needs none of them.
find_package(nlohmann_json 3 QUIET)
find_package(ZLIB QUIET)
find_package(PNG QUIET)
