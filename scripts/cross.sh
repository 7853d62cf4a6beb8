#!/usr/bin/env bash
# The cross pass (called by .ci/run): libveltix on every platform this
# machine can run or at least compile for. Installs what it needs (Debian's
# MinGW-w64, Wine, qemu-user and ARM cross compilers; rustup targets).
#
#   bash scripts/cross.sh [check|windows|arm]...   (default: all three)
#
# - check: cargo clippy -D warnings of the library and its tests for macOS
#   (x86_64, aarch64), FreeBSD and Windows MSVC: no linker or runner for
#   them here.
# - windows: x86_64-pc-windows-gnu built with MinGW-w64 and run under Wine:
#   the unit tests, the integration tests (the reference scripts run on the
#   Linux side through tests/support/launcher.py, since a Windows program
#   cannot pipe to a Linux one), and C programs built by
#   x86_64-w64-mingw32-gcc against veltix.dll (the C examples and a
#   dispatch host that waits with WSAPoll) against the Python reference
#   server and against libveltix's own server built for Windows; then the
#   CMake package consumed by a MinGW cross build, with CTest under Wine.
# - arm: aarch64 and armv7 (32-bit) Linux under qemu-user: the unit and
#   integration tests, and the C examples against the reference server.
#
# Left out, and why:
# - tests/hostile_server.rs, server_idle.rs, and the `measured` tests of
#   hostile_client.rs and the `linux` ones of liveness.rs, compile to
#   nothing off Linux: they measure memory and CPU through /proc, read
#   Linux's keepalive options or stop a process with SIGSTOP. Under qemu
#   they run, as on any Linux.
# - Where the system cannot report TCP segment counts (Windows; qemu-user's
#   TCP_INFO is 4 bytes), the tests check everything but that count and
#   say so on stderr.
# - Wine and qemu are functional checks, not benchmarks: timing bounds are
#   scaled by the slowdown factors below, as the sanitizer passes do.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
trap stop_server EXIT

WINDOWS=x86_64-pc-windows-gnu
ARM_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
CHECK_ONLY=(x86_64-apple-darwin aarch64-apple-darwin x86_64-unknown-freebsd x86_64-pc-windows-msvc)
C_EXAMPLES=(echo_client request_client ping_tool reconnect_demo)
STRICT_C=(-std=c99 -Wall -Wextra -Werror -pedantic)

# Emulation runs code several times slower and a loopback round trip under
# Wine costs about 1 ms: the knobs the sanitizer passes also use.
export VELTIX_TEST_TIME_SLACK_MS=1500 VELTIX_TEST_CPU_SLOWDOWN=15 VELTIX_TEST_MANY_CLIENTS=100
# qemu-user's own memory (translated code) counts in the process's RSS.
export VELTIX_TEST_RSS_SLACK_MIB=64

step() { printf '\n==> %s\n' "$*"; }

ensure_cross_tools() {
    ensure_debian_package x86_64-w64-mingw32-gcc mingw-w64
    ensure_debian_package wine wine
    ensure_debian_package wine64 wine64
    ensure_debian_package qemu-aarch64 qemu-user
    ensure_debian_package aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
    ensure_debian_package arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf
    rustup target add "$WINDOWS" "${ARM_TARGETS[@]}" "${CHECK_ONLY[@]}" >/dev/null
}

compile_checks() {
    for target in "${CHECK_ONLY[@]}"; do
        step "cargo clippy of the library and its tests for $target (compile check only)"
        cargo clippy --release --lib --tests --target "$target" -- -D warnings
    done
}

# A Wine prefix of our own, with the ProcessPrng shim Rust programs need.
setup_wine() {
    export WINEPREFIX="$ROOT/target/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    if [ ! -f "$WINEPREFIX/system.reg" ]; then
        wineboot -i >/dev/null 2>&1
    fi
    local system32="$WINEPREFIX/drive_c/windows/system32"
    x86_64-w64-mingw32-gcc -shared -O2 -o "$system32/bcryptprimitives.dll" \
        scripts/wine/process_prng.c -ladvapi32
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
}

# Runs C program $1 (a path, then its arguments) under $RUN, printing its
# output only when it fails.
run_c() {
    local log
    log="$(mktemp)"
    if ! timeout 120 $RUN "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "FAILED: $*" >&2
        return 1
    fi
    tail -n 1 "$log"
    rm -f "$log"
}

windows() {
    setup_wine
    step "Windows ($WINDOWS under Wine): unit and integration tests"
    start_background "launcher" "^READY" "$VENV/bin/python" "$ROOT/tests/support/launcher.py" --port PORT
    VELTIX_TEST_LAUNCHER="127.0.0.1:$VELTIX_PORT" cargo test --release --target "$WINDOWS"
    stop_server

    step "Windows: C programs built with x86_64-w64-mingw32-gcc against veltix.dll"
    cargo build --release --lib --target "$WINDOWS"
    local lib="target/$WINDOWS/release" out="target/$WINDOWS/c"
    mkdir -p "$out"
    cp "$lib/veltix.dll" "$out/"
    local program
    for program in "${C_EXAMPLES[@]}" echo_server; do
        x86_64-w64-mingw32-gcc "${STRICT_C[@]}" -Iinclude "c-examples/$program.c" \
            -o "$out/$program.exe" -L"$lib" -l:libveltix.dll.a -static -lpthread -lm
    done
    x86_64-w64-mingw32-gcc "${STRICT_C[@]}" -Iinclude tests/c/test_dispatch_poll.c \
        -o "$out/test_dispatch_poll.exe" -L"$lib" -l:libveltix.dll.a -static -lpthread -lws2_32
    RUN=wine
    start_server
    for program in "${C_EXAMPLES[@]}" test_dispatch_poll; do
        echo "$program.exe against the Python reference server:"
        run_c "$out/$program.exe" 127.0.0.1 "$VELTIX_PORT"
    done
    stop_server
    start_background "Windows C echo server" "listening on" wine "$out/echo_server.exe" PORT
    for program in echo_client request_client ping_tool test_dispatch_poll; do
        echo "$program.exe against libveltix's server (echo_server.exe):"
        run_c "$out/$program.exe" 127.0.0.1 "$VELTIX_PORT"
    done
    stop_server
    windows_cmake
}

# A Windows path for WINEPATH (Wine's Z: drive is the Linux root).
windows_path() { printf 'Z:%s' "${1//\//\\}"; }

# The CMake package on Windows: the whole CMake build (examples, C and C++
# tests) cross-built with cmake/toolchains/x86_64-w64-mingw32.cmake and run
# by CTest under Wine against the reference server; then installed, and
# consumed with find_package(veltix) and with pkg-config by a MinGW build.
windows_cmake() {
    step "Windows: the CMake build cross-built with MinGW-w64, CTest under Wine"
    local build="$ROOT/target/cmake-windows" prefix="$ROOT/target/cmake-windows-prefix"
    local consumer="$ROOT/target/cmake-windows-consumer"
    local mingw_runtime=/usr/x86_64-w64-mingw32/lib
    local mingw_cxx_runtime
    mingw_cxx_runtime="$(dirname "$(x86_64-w64-mingw32-g++-posix -print-libgcc-file-name)")"
    rm -rf "$build" "$prefix" "$consumer"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/x86_64-w64-mingw32.cmake" \
        -DVELTIX_CARGO_TARGET_DIR="$ROOT/target" >/dev/null
    cmake --build "$build" -j 2
    WINEPATH="$(windows_path "$ROOT/target/$WINDOWS/release");$(windows_path "$mingw_runtime");$(windows_path "$mingw_cxx_runtime")"
    export WINEPATH
    start_server
    (cd "$build" && ctest --output-on-failure --timeout 120)
    stop_server

    step "Windows: the installed package, through find_package(veltix) and pkg-config"
    cmake --install "$build" --prefix "$prefix" >/dev/null
    cmake -S tests/consumer -B "$consumer" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/x86_64-w64-mingw32.cmake" >/dev/null
    cmake --build "$consumer"
    local flags
    flags="$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs veltix)"
    # shellcheck disable=SC2086 # the flags pkg-config gives
    x86_64-w64-mingw32-gcc "${STRICT_C[@]}" tests/consumer/main.c $flags \
        -o "$consumer/consumer_pkgconfig.exe"
    if x86_64-w64-mingw32-objdump -p "$consumer/consumer_static.exe" | grep -qi "veltix.dll"; then
        echo "consumer_static.exe imports veltix.dll: the static library was not linked" >&2
        return 1
    fi
    WINEPATH="$(windows_path "$prefix/bin");$(windows_path "$mingw_runtime")"
    RUN=wine
    local program
    for program in consumer_shared consumer_static consumer_pkgconfig; do
        run_c "$consumer/$program.exe"
    done
}

arm() {
    local target gcc qemu sysroot
    for target in "${ARM_TARGETS[@]}"; do
        case "$target" in
            aarch64-*) gcc=aarch64-linux-gnu-gcc qemu=qemu-aarch64 sysroot=/usr/aarch64-linux-gnu ;;
            armv7-*) gcc=arm-linux-gnueabihf-gcc qemu=qemu-arm sysroot=/usr/arm-linux-gnueabihf ;;
        esac
        local env_target
        env_target="$(echo "$target" | tr 'a-z-' 'A-Z_')"
        export "CARGO_TARGET_${env_target}_LINKER=$gcc"
        export "CARGO_TARGET_${env_target}_RUNNER=$qemu -L $sysroot"
        step "$target under qemu-user: unit and integration tests"
        # VELTIX_TEST_RUNNER: for the tests that run their own binary again
        # as another process (tests/cluster.rs).
        VELTIX_TEST_RUNNER="$qemu -L $sysroot" cargo test --release --target "$target"

        step "$target: the C examples against the reference server"
        cargo build --release --lib --target "$target"
        local lib="target/$target/release" out="target/$target/c"
        mkdir -p "$out"
        ln -sf libveltix.so "$lib/libveltix.so.0"
        local program
        for program in "${C_EXAMPLES[@]}" test_dispatch_poll; do
            local source="c-examples/$program.c"
            [ -f "$source" ] || source="tests/c/$program.c"
            "$gcc" "${STRICT_C[@]}" -Iinclude "$source" -o "$out/$program" \
                -L"$lib" -lveltix -lpthread -lm
        done
        RUN="$qemu -L $sysroot -E LD_LIBRARY_PATH=$ROOT/$lib"
        start_server
        for program in "${C_EXAMPLES[@]}" test_dispatch_poll; do
            echo "$program ($target) against the Python reference server:"
            run_c "$out/$program" 127.0.0.1 "$VELTIX_PORT"
        done
        stop_server
    done
}

ensure_tools
ensure_cross_tools
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(check windows arm)
for part in "${parts[@]}"; do
    case "$part" in
        check) compile_checks ;;
        windows) windows ;;
        arm) arm ;;
        *)
            echo "unknown part $part (check, windows or arm)" >&2
            exit 2
            ;;
    esac
done
step "cross pass: all passed"
