#!/usr/bin/env bash
# The demo command: builds libveltix and its C examples, starts a Veltix
# server, and runs the echo, request/response, ping and reconnect examples
# against it. The server is libveltix's own, embedded in the C example
# build/echo_server; with --python it is the Python reference (veltix 3.3.0,
# installed into .venv) instead.
#
#   bash scripts/demo.sh [--python]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
trap stop_server EXIT

examples=(echo_client request_client ping_tool reconnect_demo)
ensure_tools
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVELTIX_CARGO_TARGET_DIR="$ROOT/target" >/dev/null
cmake --build build -j 2 --target echo_server "${examples[@]}"
if [ "${1:-}" = "--python" ]; then
    start_server
    echo "reference server (Python veltix 3.3.0) on 127.0.0.1:$VELTIX_PORT"
else
    start_c_server
    echo "libveltix C server (build/echo_server) on 127.0.0.1:$VELTIX_PORT"
fi
for example in "${examples[@]}"; do
    printf '\n--- %s ---\n' "$example"
    "build/$example" 127.0.0.1 "$VELTIX_PORT"
done
stop_server
printf '\n--- server log ---\n'
cat target/server.log
