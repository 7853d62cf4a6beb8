#!/usr/bin/env python3
"""Checks a binding's struct layouts against the C compiler's.

Every struct of include/veltix.h is compiled into a C program that prints
its size and each field's offset (`offsetof`), one `name size` or
`name.field offset` line each; the binding's own program prints the same
lines from what it declares. Any difference fails, naming the line.

    python3 bindings/check_layouts.py -- <binding's command that prints the lines>
"""

import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEADER = ROOT / "include" / "veltix.h"
STRUCT = re.compile(r"typedef struct (\w+) \{(.*?)\} \1;", re.S)
FIELD = re.compile(r"(\w+)(\[\d+\])?;$")


def structs() -> dict:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    found = {}
    for name, body in STRUCT.findall(text):
        fields = [FIELD.search(line.strip()).group(1) for line in body.splitlines() if line.strip()]
        found[name] = fields
    return found


def c_lines() -> list:
    program = ['#include <stddef.h>', '#include <stdio.h>', f'#include "{HEADER}"', "int main(void) {"]
    for name, fields in structs().items():
        program.append(f'    printf("{name} %zu\\n", sizeof({name}));')
        for field in fields:
            program.append(f'    printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
    program += ["    return 0;", "}"]
    with tempfile.TemporaryDirectory() as folder:
        source = pathlib.Path(folder) / "layouts.c"
        binary = pathlib.Path(folder) / "layouts"
        source.write_text("\n".join(program) + "\n")
        subprocess.run(["cc", "-std=c11", "-o", str(binary), str(source)], check=True)
        return subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.splitlines()


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1:]
    expected = c_lines()
    got = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    missing = sorted(set(expected) - set(got))
    wrong = sorted(set(got) - set(expected))
    if missing or wrong:
        for line in missing:
            print(f"the C compiler says {line!r}; the binding does not", file=sys.stderr)
        for line in wrong:
            print(f"the binding says {line!r}; the C compiler does not", file=sys.stderr)
        sys.exit(1)
    print(f"{len(expected)} sizes and offsets match the C compiler's")


if __name__ == "__main__":
    main()
