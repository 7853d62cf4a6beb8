#!/usr/bin/env bash
# The sanitizer passes, on the stable toolchain through RUSTC_BOOTSTRAP=1:
# 1. AddressSanitizer: the Rust tests (unit, end to end against the
#    reference, hostile peers) and the C programs (the C API test and the
#    example clients and server, built with gcc -fsanitize=address) against
#    an ASan build of libveltix;
# 2. ThreadSanitizer: the Rust tests again, with std rebuilt instrumented
#    (-Zbuild-std, which needs the rust-src component; installed here when
#    missing), so std's own locks are seen and no race is a false alarm.
#
#   bash scripts/sanitize.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
trap stop_server EXIT

TARGET=x86_64-unknown-linux-gnu
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address"
export CARGO_TARGET_DIR="$ROOT/target/asan"
SANITIZED_TARGET_DIR="$ROOT/target"
# Freed memory is quarantined for use-after-free detection; a small
# quarantine keeps the memory-bound tests meaningful.
export ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=16"
# Shadow memory and quarantine add to the resident memory the hostile-peer
# tests bound.
export VELTIX_TEST_RSS_SLACK_MIB=64
# Timing assertions get room for the sanitizers' slowdown.
export VELTIX_TEST_TIME_SLACK_MS=1500
# CPU budgets likewise (ThreadSanitizer runs code about 5-15 times slower).
export VELTIX_TEST_CPU_SLOWDOWN=15
# The tests of a thousand clients (the server's, the reconnection storm)
# run 200 (threads cost far more under the sanitizers).
export VELTIX_TEST_MANY_CLIENTS=200
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"

echo "==> tools"
ensure_tools

echo "==> Rust tests against an AddressSanitizer build"
cargo test --release --target "$TARGET" --lib --tests

cargo build --release --target "$TARGET" --lib
LIB_DIR="$CARGO_TARGET_DIR/$TARGET/release"
# Programs record the SONAME (libveltix.so.0): make it resolve here too.
ln -sf libveltix.so "$LIB_DIR/libveltix.so.0"
echo "==> C programs against $LIB_DIR/libveltix.so, built with gcc -fsanitize=address"
OUT="$CARGO_TARGET_DIR/c"
mkdir -p "$OUT"
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic -g -fsanitize=address -fno-omit-frame-pointer -Iinclude)
LINK=(-L"$LIB_DIR" -Wl,-rpath,"$LIB_DIR" -lveltix -lpthread -lm)
for test in test_capi test_abi_layout; do
    gcc "${CFLAGS[@]}" "tests/c/$test.c" -o "$OUT/$test" "${LINK[@]}"
done
for example in echo_client request_client ping_tool reconnect_demo echo_server poll_loop; do
    gcc "${CFLAGS[@]}" -Ic-examples "c-examples/$example.c" -o "$OUT/$example" "${LINK[@]}"
done
CXXFLAGS=(-std=c++17 -Wall -Wextra -Wpedantic -Werror -g -fsanitize=address -fno-omit-frame-pointer -Iinclude)
g++ "${CXXFLAGS[@]}" tests/cpp/test_veltix_hpp.cpp -o "$OUT/test_veltix_hpp" "${LINK[@]}"
g++ "${CXXFLAGS[@]}" c-examples/chat.cpp -o "$OUT/chat" "${LINK[@]}"

start_server
for program in test_capi test_abi_layout echo_client request_client ping_tool reconnect_demo; do
    echo "--- $program (reference server)"
    "$OUT/$program"
done
echo "--- poll_loop (reference server, two lines on stdin)"
printf 'hello\nworld\n' | "$OUT/poll_loop"
stop_server
echo "--- echo_server (start, serve nothing, stop)"
"$OUT/echo_server" 0 1
for program in test_veltix_hpp chat; do
    echo "--- $program (C++ API, in-process server)"
    "$OUT/$program"
done

echo "==> AddressSanitizer pass clean"

echo "==> Rust tests against a ThreadSanitizer build"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src
fi
# TSan's shadow memory is several times what the tests allocate: the
# hostile-peer tests' memory bounds get room for it (their real bounds are
# checked by the normal suite).
RUSTFLAGS="-Zsanitizer=thread" CARGO_TARGET_DIR="$SANITIZED_TARGET_DIR/tsan" \
    VELTIX_TEST_RSS_SLACK_MIB=512 TSAN_OPTIONS="halt_on_error=1" \
    cargo test -Zbuild-std --release --target "$TARGET" --lib --tests
echo "==> the server's suites on four I/O threads, under ThreadSanitizer"
RUSTFLAGS="-Zsanitizer=thread" CARGO_TARGET_DIR="$SANITIZED_TARGET_DIR/tsan" \
    VELTIX_TEST_RSS_SLACK_MIB=512 TSAN_OPTIONS="halt_on_error=1" VELTIX_TEST_IO_THREADS=4 \
    cargo test -Zbuild-std --release --target "$TARGET" --lib --test server_capi \
    --test server_broadcast --test server_inline --test dispatch --test hostile_client
echo "==> ThreadSanitizer pass clean"
