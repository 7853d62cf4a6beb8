#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each
# (default 60), starting from the seed corpus in fuzz/corpus. New inputs go
# to target/fuzz-corpus, so the tree stays clean; a crash fails the script
# and leaves its input in fuzz/artifacts. Installs cargo-fuzz when missing.
# Works on the stable toolchain through RUSTC_BOOTSTRAP=1 (cargo fuzz needs
# nightly flags such as -Zsanitizer=address).
#
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
for target in decoder handshake server_connection proxy_header bus_message; do
    corpus="$ROOT/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    echo "==> fuzzing $target for ${SECONDS_PER_TARGET} s"
    log="$ROOT/target/fuzz-$target.log"
    # -O: optimised build (with debug assertions), AddressSanitizer on.
    if ! cargo fuzz run -O "$target" "$corpus" "$ROOT/fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target, the log in $log" >&2
        exit 1
    fi
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
done
echo "==> fuzzing done"
