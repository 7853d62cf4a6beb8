#!/usr/bin/env bash
# The demo command: builds libveltix and its C examples, starts a Veltix
# server (the Python reference, veltix 3.3.0, installed into .venv), and runs
# the echo, request/response, ping and reconnect examples against it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
trap stop_server EXIT

ensure_tools
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVELTIX_BUILD_TESTS=OFF >/dev/null
cmake --build build -j 2
start_server
echo "reference server (veltix 3.3.0) on 127.0.0.1:$VELTIX_PORT"
for example in echo_client request_client ping_tool reconnect_demo; do
    printf '\n--- %s ---\n' "$example"
    "build/$example" 127.0.0.1 "$VELTIX_PORT"
done
