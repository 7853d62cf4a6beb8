#!/usr/bin/env bash
# Builds the C# binding with Mono's mcs, and its NuGet package:
#
#   bindings/csharp/build.sh <output folder> <libveltix shared library> [runtime id]
#
# writes Veltix.dll (+ Veltix.xml, its documentation), VeltixTests.exe,
# Layouts.exe and Veltix.<version>.nupkg, which carries the
# library for the runtime id (default linux-x64) under runtimes/<id>/native.
# Warnings are errors.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
native="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
rid="${3:-linux-x64}"
version="$(sed -n 's/^#define VELTIX_VERSION_STRING "\(.*\)"$/\1/p' "$here/../../include/veltix.h")"
cd "$here"
flags=(-warn:4 -warnaserror -langversion:6)
mcs "${flags[@]}" -target:library -out:"$out/Veltix.dll" -doc:"$out/Veltix.xml" Runtime/*.cs
mcs "${flags[@]}" -out:"$out/VeltixTests.exe" -r:"$out/Veltix.dll" -r:System.Core Tests/Harness.cs \
    Tests/ClientTests.cs Tests/ServerTests.cs Tests/Program.cs
mcs "${flags[@]}" -out:"$out/Layouts.exe" -r:System.Core Runtime/*.cs Tests/Layouts.cs
stage="$out/package"
rm -rf "$stage" && mkdir -p "$stage"
cp "$out/Veltix.dll" "$out/Veltix.xml" "$native" README.md Veltix.nuspec "$stage/"
(cd "$stage" && nuget pack Veltix.nuspec -NonInteractive -OutputDirectory "$out" -Version "$version" \
    -Properties "native=$(basename "$native");rid=$rid" >/dev/null)
rm -rf "$stage"
echo "built $out/Veltix.$version.nupkg"
