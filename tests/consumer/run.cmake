# CTest driver: installs the built libveltix into a scratch prefix, then
# builds and runs tests/consumer against it with find_package(veltix), and
# compiles tests/consumer/main.c with the flags pkg-config gives.
set(prefix "${BUILD_DIR}/consumer-prefix")
set(consumer_build "${BUILD_DIR}/consumer-build")
file(REMOVE_RECURSE "${prefix}" "${consumer_build}")

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "failed (${result}): ${ARGN}")
    endif()
endfunction()

run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer" -B "${consumer_build}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${C_COMPILER}")
run("${CMAKE_COMMAND}" --build "${consumer_build}")
run("${consumer_build}/consumer_shared")
run("${consumer_build}/consumer_static")

find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs veltix
    OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE result)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "pkg-config does not know veltix")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run("${C_COMPILER}" -std=c99 -Wall -Wextra -Werror -pedantic
    "${SOURCE_DIR}/tests/consumer/main.c" ${flags} "-Wl,-rpath,${prefix}/lib"
    -o "${consumer_build}/consumer_pkgconfig")
run("${consumer_build}/consumer_pkgconfig")
