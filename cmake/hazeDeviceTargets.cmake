# Defines the Device backend's two usage targets, here and in installed
# packages alike (they depend on where this machine keeps CCCL and cuBLAS, so
# they are computed when configuring, not exported):
#   haze::device_omp   Thrust's OpenMP device system on the host, any C++ compiler
#   haze::device_cuda  the CUDA system: link it from .cu sources built by nvcc
# Both use the CCCL (Thrust, CUB, libcu++) shipped with the CUDA toolkit, so
# one Thrust version is tested. HAZE_IMPORTED_SCOPE may be GLOBAL.

find_package(CUDAToolkit QUIET)
find_path(HAZE_CCCL_INCLUDE_DIR thrust/version.h
          HINTS ${CUDAToolkit_INCLUDE_DIRS}/cccl ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include/cccl
          NO_DEFAULT_PATH)

if(HAZE_CCCL_INCLUDE_DIR AND TARGET OpenMP::OpenMP_CXX AND NOT TARGET haze::device_omp)
  add_library(haze::device_omp INTERFACE IMPORTED ${HAZE_IMPORTED_SCOPE})
  set_target_properties(haze::device_omp PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${HAZE_CCCL_INCLUDE_DIR}
    INTERFACE_COMPILE_DEFINITIONS THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP
    INTERFACE_LINK_LIBRARIES "haze::haze;OpenMP::OpenMP_CXX")
endif()

if(HAZE_CCCL_INCLUDE_DIR AND TARGET CUDA::cublas AND NOT TARGET haze::device_cuda)
  add_library(haze::device_cuda INTERFACE IMPORTED ${HAZE_IMPORTED_SCOPE})
  set_target_properties(haze::device_cuda PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${HAZE_CCCL_INCLUDE_DIR}
    # CMake 3.25 has no CUDA20 dialect flags for nvcc 13, so ask for C++20 directly.
    INTERFACE_COMPILE_OPTIONS $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>
    INTERFACE_LINK_LIBRARIES "haze::haze;CUDA::cublas;CUDA::cudart")
  # cuDNN runs the convolutions where it is found (cudnn.h and libcudnn, in
  # the toolkit or beside it); HAZE_CUDNN=OFF keeps im2col + cuBLAS.
  option(HAZE_CUDNN "Run the CUDA build's convolutions on cuDNN where it is found" ON)
  find_path(HAZE_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(HAZE_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  if(HAZE_CUDNN AND HAZE_CUDNN_INCLUDE_DIR AND HAZE_CUDNN_LIBRARY)
    set_property(TARGET haze::device_cuda APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${HAZE_CUDNN_INCLUDE_DIR})
    set_property(TARGET haze::device_cuda APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS HAZE_CUDNN=1)
    set_property(TARGET haze::device_cuda APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${HAZE_CUDNN_LIBRARY})
    message(STATUS "haze: the CUDA build runs convolutions on cuDNN (${HAZE_CUDNN_LIBRARY})")
  else()
    message(STATUS "haze: the CUDA build runs convolutions as im2col + cuBLAS (cuDNN off or not found)")
  endif()
  # NCCL: train::NcclCommunicator, data-parallel ranks on GPUs (nccl.h and
  # libnccl, in the toolkit or beside it). haze::nccl is its usage target.
  option(HAZE_NCCL "Build NCCL's data-parallel communicator where NCCL is found" ON)
  find_path(HAZE_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(HAZE_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  if(HAZE_NCCL AND HAZE_NCCL_INCLUDE_DIR AND HAZE_NCCL_LIBRARY AND NOT TARGET haze::nccl)
    add_library(haze::nccl INTERFACE IMPORTED ${HAZE_IMPORTED_SCOPE})
    set_target_properties(haze::nccl PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES ${HAZE_NCCL_INCLUDE_DIR}
      INTERFACE_COMPILE_DEFINITIONS HAZE_NCCL=1
      INTERFACE_LINK_LIBRARIES "haze::device_cuda;${HAZE_NCCL_LIBRARY}")
    message(STATUS "haze: NCCL found (${HAZE_NCCL_LIBRARY}): train::NcclCommunicator is built")
  endif()
endif()
