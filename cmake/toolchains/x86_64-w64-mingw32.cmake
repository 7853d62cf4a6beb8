# Cross-building libveltix and programs using it for 64-bit Windows with
# MinGW-w64 from Linux (Debian: apt-get install mingw-w64):
#
#   cmake -S . -B build-windows \
#       -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/x86_64-w64-mingw32.cmake
#
# cargo then builds for x86_64-pc-windows-gnu (rustup target add
# x86_64-pc-windows-gnu). With Wine installed, CTest runs the programs
# under it. The programs need libwinpthread-1.dll (MinGW's pthreads), and
# the C++ ones MinGW's libstdc++-6.dll and libgcc_s_seh-1.dll, next to them
# or on PATH (WINEPATH under Wine), besides veltix.dll.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
# The POSIX thread model: std::thread and pthreads, which the examples use.
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Packages (find_package(veltix)) may be installed anywhere.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(VELTIX_RUST_TARGET x86_64-pc-windows-gnu CACHE STRING "Rust target triple")
find_program(VELTIX_WINE wine)
if(VELTIX_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${VELTIX_WINE}")
endif()
