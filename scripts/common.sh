# Shared by scripts/test.sh and scripts/demo.sh: the test venv (veltix 3.3.0,
# cmake when missing) and a server in the background (the Python reference,
# or libveltix's C example server).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VELTIX_REFERENCE="veltix==3.3.0"

# Creates .venv with the reference package, and puts cmake and pkg-config
# on PATH, installing them into the venv when the machine has none.
ensure_tools() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c 'import veltix, sys; sys.exit(veltix.__version__ != "3.3.0")' 2>/dev/null; then
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$VELTIX_REFERENCE"
    fi
    export PATH="$VENV/bin:$PATH"
    if ! command -v cmake >/dev/null; then
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "cmake>=3.16"
    fi
    if ! command -v pkg-config >/dev/null && ! command -v pkgconf >/dev/null; then
        "$VENV/bin/pip" install --quiet --disable-pip-version-check pkgconf
    fi
    export VELTIX_TEST_PYTHON="$VENV/bin/python"
}

# Installs Debian package $2 when command $1 is missing.
ensure_debian_package() {
    if command -v "$1" >/dev/null; then
        return 0
    fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    # Another apt run (a fresh machine's own updates) holds the dpkg lock:
    # wait for it rather than fail.
    local wait_for_lock=(-o DPkg::Lock::Timeout=600)
    if ! $sudo apt-get install "${wait_for_lock[@]}" -y -q "$2" >/dev/null 2>&1; then
        $sudo apt-get update "${wait_for_lock[@]}" -q >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install "${wait_for_lock[@]}" -y -q "$2" >/dev/null
    fi
}

# Debian's luajit (the LuaJIT binding's tests).
ensure_luajit() { ensure_debian_package luajit luajit; }

# Debian's luarocks (the LuaJIT binding's install test).
ensure_luarocks() { ensure_debian_package luarocks luarocks; }

# Debian's Mono C# compiler and runtime, and NuGet (the C# binding).
ensure_mono() {
    ensure_debian_package mcs mono-mcs
    ensure_debian_package nuget nuget
}

# Debian's HAProxy (the PROXY protocol tests run one in front of the
# server; they start their own, so the packaged service is not needed).
ensure_haproxy() {
    ensure_debian_package haproxy haproxy
}

# Debian's Redis (the cluster tests start their own servers on free ports
# in temporary folders, so the packaged service is not needed).
ensure_redis() { ensure_debian_package redis-server redis-server; }

# Debian's clang (the C++ API is compiled by Clang as well as GCC).
ensure_clang() { ensure_debian_package clang++ clang; }

# Node.js (Debian's nodejs and npm when missing) and the npm package koffi
# in target/node (outside the tree); sets NODE_PATH for the Node binding's
# tests.
ensure_node_koffi() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q nodejs npm >/dev/null
    fi
    local prefix="$ROOT/target/node"
    if [ ! -d "$prefix/node_modules/koffi" ]; then
        mkdir -p "$prefix"
        npm install --silent --no-save --no-package-lock --no-audit --no-fund \
            --prefix "$prefix" koffi@2 >/dev/null
    fi
    export NODE_PATH="$prefix/node_modules"
}

# Starts the scripted reference server (Python, veltix 3.3.0) on a free
# port; sets VELTIX_PORT and SERVER_PID. stop_server kills it.
start_server() {
    start_background "reference server" "^READY" \
        "$VENV/bin/python" "$ROOT/tests/support/ref_server.py" --port PORT --forever
}

# Starts the C example server (build/echo_server, libveltix's own server)
# on a free port, as start_server does.
start_c_server() {
    start_background "C echo server" "listening on" "$ROOT/build/echo_server" PORT
}

# Runs a server command in the background on a free port (the argument PORT
# is replaced by it) until its log shows `ready_pattern`.
start_background() {
    local name="$1" ready_pattern="$2" log="$ROOT/target/server.log"
    shift 2
    VELTIX_PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    export VELTIX_PORT VELTIX_HOST=127.0.0.1
    mkdir -p "$ROOT/target"
    "${@/#PORT/$VELTIX_PORT}" </dev/null >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        grep -q "$ready_pattern" "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the $name did not start; its log:" >&2
    cat "$log" >&2
    return 1
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
