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

# A Debian-style staged install: prefix /usr, a multiarch libdir, DESTDIR,
# --strip. pkg-config must point into the stage, and the library must be
# stripped and installed as libveltix.so.X.Y.Z with its two links.
set(debian_build "${BUILD_DIR}/consumer-debian-build")
set(stage "${BUILD_DIR}/consumer-stage")
set(multiarch "lib/x86_64-linux-gnu")
file(REMOVE_RECURSE "${debian_build}" "${stage}")
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${debian_build}" -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_INSTALL_PREFIX=/usr "-DCMAKE_INSTALL_LIBDIR=${multiarch}"
    "-DVELTIX_CARGO_TARGET_DIR=${CARGO_TARGET_DIR}" "-DCMAKE_C_COMPILER=${C_COMPILER}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" -DVELTIX_BUILD_EXAMPLES=OFF -DVELTIX_BUILD_TESTS=OFF)
run("${CMAKE_COMMAND}" --build "${debian_build}")
set(ENV{DESTDIR} "${stage}")
run("${CMAKE_COMMAND}" --install "${debian_build}" --strip)
unset(ENV{DESTDIR})
set(libdir "${stage}/usr/${multiarch}")
foreach(link "libveltix.so" "libveltix.so.0")
    if(NOT IS_SYMLINK "${libdir}/${link}")
        message(FATAL_ERROR "${libdir}/${link} is not a symbolic link")
    endif()
endforeach()
execute_process(COMMAND readelf -S "${libdir}/libveltix.so.${PROJECT_VERSION}" OUTPUT_VARIABLE sections)
if(sections MATCHES "debug_info")
    message(FATAL_ERROR "cmake --install --strip left debug info in libveltix.so")
endif()
set(ENV{PKG_CONFIG_PATH} "${libdir}/pkgconfig")
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs veltix
    OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE result)
string(REGEX MATCH "-I([^ ]+)" include_flag "${flags}")
get_filename_component(include_dir "${CMAKE_MATCH_1}" REALPATH)
if(NOT result EQUAL 0 OR NOT include_dir STREQUAL "${stage}/usr/include")
    message(FATAL_ERROR "veltix.pc in the stage gives: ${flags}")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run("${C_COMPILER}" -std=c99 -Wall -Wextra -Werror -pedantic
    "${SOURCE_DIR}/tests/consumer/main.c" ${flags} "-Wl,-rpath,${libdir}"
    -o "${consumer_build}/consumer_staged")
run("${consumer_build}/consumer_staged")

# add_subdirectory: configured once with the defaults (cargo's directory
# must be inside the consumer's build), then built with the shared cargo
# directory so the library is not compiled twice.
set(subdir_build "${BUILD_DIR}/consumer-subdir-build")
file(REMOVE_RECURSE "${subdir_build}" "${subdir_build}-defaults")
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/subdir" -B "${subdir_build}-defaults"
    "-DVELTIX_SOURCE_DIR=${SOURCE_DIR}" -DCHECK_DEFAULT_CARGO_DIR=ON
    "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer/subdir" -B "${subdir_build}"
    "-DVELTIX_SOURCE_DIR=${SOURCE_DIR}" "-DVELTIX_CARGO_TARGET_DIR=${CARGO_TARGET_DIR}"
    "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
run("${CMAKE_COMMAND}" --build "${subdir_build}")
run("${subdir_build}/consumer_subdir")

# Without cargo, configuring fails and says how to get Rust.
set(no_cargo_build "${BUILD_DIR}/consumer-no-cargo")
file(REMOVE_RECURSE "${no_cargo_build}")
execute_process(COMMAND "${CMAKE_COMMAND}" -E env PATH=/usr/bin:/bin HOME=/nonexistent
        CARGO_HOME=/nonexistent "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${no_cargo_build}"
        "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(result EQUAL 0 OR NOT err MATCHES "cargo .*was not found.*rustup")
    message(FATAL_ERROR "configure without cargo: ${result}\n${out}\n${err}")
endif()
