#!/usr/bin/env bash
# The documentation's checks and the API reference:
# - every parameter of every C function is named in its comment
#   (scripts/check_api_docs.py);
# - every link of README.md, docs/ and the bindings' READMEs leads somewhere
#   (scripts/check_links.py);
# - Doxygen renders include/veltix.h and include/veltix.hpp into
#   target/docs/html (start at index.html) and man pages for the C
#   functions into target/docs/man (man -l target/docs/man/man3/veltix_client_new.3),
#   failing on any warning: an undocumented function, type, field,
#   constant or C++ member.
# Installs Debian's doxygen when it is missing.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ensure_debian_package doxygen doxygen
python3 scripts/check_api_docs.py
python3 scripts/check_links.py
export VELTIX_DOCS_OUT="$ROOT/target/docs"
rm -rf "$VELTIX_DOCS_OUT" && mkdir -p "$VELTIX_DOCS_OUT"
if ! doxygen docs/Doxyfile; then
    cat "$VELTIX_DOCS_OUT/warnings.log" >&2
    exit 1
fi
echo "the API reference: $VELTIX_DOCS_OUT/html/index.html ($(ls "$VELTIX_DOCS_OUT/man/man3" | wc -l) man pages)"
