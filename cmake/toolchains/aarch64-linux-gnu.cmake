# Cross compiles for 64-bit ARM with Debian's g++-aarch64-linux-gnu and runs
# the results under qemu-user (scripts/test-arm): checks the Cpu backend's
# NEON build on an x86 machine.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# ctest and catch_discover_tests run the test programs through this; -L finds
# the ARM loader and libraries (libstdc++, libgomp) of Debian's cross packages.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
# Eigen and Catch2 are header-only, so the host's packages (/usr/include,
# /usr/share/eigen3/cmake, /usr/lib/cmake/Catch2) serve the ARM build too.
# Libraries stay ARM-only, so packages that need one (zlib, libpng: haze::io)
# are simply not found.
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
