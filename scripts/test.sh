#!/usr/bin/env bash
# The test command: every check and test of libveltix, on a fresh machine.
# Installs what it needs (a venv with veltix==3.3.0; cmake and pkg-config
# into it when missing), then runs: formatting, clippy, the header drift
# check, the Rust unit/property/end-to-end tests, the CMake build of the
# examples and C tests under CTest (with an install + find_package/pkg-config
# consumer), the Python ctypes test, and the demo command (C server and C
# clients together), and the LuaJIT, C# and Node.js bindings (installing
# Debian's luajit, luarocks, Mono and NuGet, and nodejs with npm's koffi,
# when missing).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
trap stop_server EXIT

step() { printf '\n==> %s\n' "$*"; }

step "tools (venv with $VELTIX_REFERENCE, cmake, pkg-config)"
ensure_tools
cmake --version | head -n 1

step "rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --release -- -D warnings

step "build, and check that include/veltix.h is generated and committed"
cargo build --release
if git rev-parse --git-dir >/dev/null 2>&1; then
    if [ -n "$(git status --porcelain -- include/veltix.h)" ]; then
        git --no-pager diff -- include/veltix.h | head -n 40
        echo "include/veltix.h differs from the committed header: commit the regenerated one" >&2
        exit 1
    fi
fi

step "documentation: every C parameter documented, every link alive, the Doxygen reference without a warning"
bash scripts/docs.sh

step "Rust tests (unit, property, C ABI end to end against the reference server, faults, HAProxy, Redis clusters)"
ensure_haproxy
ensure_redis
cargo test --release

step "the server's suites again with four I/O threads (io_threads = 4, more loops than cores)"
VELTIX_TEST_IO_THREADS=4 cargo test --release --lib --test cluster --test dispatch \
    --test hostile_client --test hostile_server --test liveness --test proxy_protocol \
    --test reconnect_storm --test server_broadcast --test server_capi --test server_idle \
    --test server_inline --test server_reference

step "CMake build of the examples and C/C++ tests; CTest against the reference server"
ensure_clang
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVELTIX_BUILD_TESTS=ON -DVELTIX_BUILD_EXAMPLES=ON \
    -DVELTIX_CARGO_TARGET_DIR="$ROOT/target"
cmake --build build -j 2
start_server
if ! (cd build && ctest --output-on-failure --timeout 120); then
    echo "CTest failed; the reference server's log (last 60 lines):" >&2
    tail -n 60 target/server.log >&2
    exit 8
fi

step "Python ctypes loading target/release/libveltix.so"
"$VENV/bin/python" tests/ctypes_client.py target/release/libveltix.so "$VELTIX_PORT"

stop_server

step "the bindings (LuaJIT, C#, Node.js): declarations, layouts, installs, tests against the reference server and the C server"
ensure_luajit
ensure_luarocks
ensure_node_koffi
ensure_mono
python3 bindings/lua/gen_cdef.py --check
python3 bindings/check_layouts.py -- luajit bindings/lua/tests/layouts.lua
lua_tree="$(mktemp -d)"
(cd bindings/lua && luarocks --lua-version 5.1 --tree "$lua_tree" make veltix-0.1.0-1.rockspec >/dev/null)
# The README's example, as written there.
awk '/^```lua$/{n++; if (n == 1) {on=1; next}} /^```$/{on=0} on' bindings/lua/README.md >"$lua_tree/example.lua"
lua_path="$lua_tree/share/lua/5.1/?.lua;$lua_tree/share/lua/5.1/?/init.lua"
cs_out="$(mktemp -d)"
bash bindings/csharp/build.sh "$cs_out" target/release/libveltix.so
python3 bindings/check_layouts.py -- mono "$cs_out/Layouts.exe"
python3 bindings/check_layouts.py -- node bindings/node/test/layouts.js target/release/libveltix.so
# The README's example, built against the installed NuGet package only.
cs_app="$(mktemp -d)"
nuget install Veltix -Source "$cs_out" -OutputDirectory "$cs_app/packages" -NonInteractive >/dev/null
awk '/^```csharp$/{n++; if (n == 1) {on=1; next}} /^```$/{on=0} on' bindings/csharp/README.md >"$cs_app/Example.cs"
cp "$cs_app"/packages/Veltix.*/lib/netstandard2.0/Veltix.dll "$cs_app"/packages/Veltix.*/runtimes/linux-x64/native/* "$cs_app/"
mcs -warn:4 -warnaserror -out:"$cs_app/Example.exe" -r:"$cs_app/Veltix.dll" "$cs_app/Example.cs"
export VELTIX_LIBRARY="$ROOT/target/release/libveltix.so"
for server in start_server start_c_server; do
    $server
    timeout 300 luajit bindings/lua/tests/test_client.lua "$VELTIX_PORT"
    # The README's example, from the installed rock only.
    (cd "$lua_tree" && LUA_PATH="$lua_path" timeout 60 luajit example.lua "$VELTIX_PORT")
    LD_LIBRARY_PATH="$ROOT/target/release" timeout 300 mono "$cs_out/VeltixTests.exe" client "$VELTIX_PORT"
    (cd "$cs_app" && timeout 60 mono Example.exe "$VELTIX_PORT")
    (cd bindings/node && timeout 300 node --test test/client.test.js)
    if [ "$server" = start_server ]; then
        # The timer loop (Windows's), and the packed package with the README's example.
        (cd bindings/node && VELTIX_NODE_LOOP=timer timeout 300 node --test test/client.test.js)
        (cd bindings/node && timeout 300 node --test test/pack.test.js)
    fi
    stop_server
done
rm -rf "$lua_tree" "$cs_app"
timeout 300 luajit bindings/lua/tests/test_server.lua "$VENV/bin/python"
LD_LIBRARY_PATH="$ROOT/target/release" timeout 300 mono "$cs_out/VeltixTests.exe" server "$VENV/bin/python" tests/support/ref_client.py
(cd bindings/node && timeout 300 node --test test/server.test.js)
rm -rf "$cs_out"

step "the demo command: the C examples against libveltix's embedded C server"
bash scripts/demo.sh

step "all tests passed"
