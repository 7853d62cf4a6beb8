#!/usr/bin/env python3
"""Checks a binding's declarations against the C compiler's.

Every struct of include/veltix.h is compiled into a C program that prints
its size and each field's offset (`offsetof`), one `name size` or
`name.field offset` line each; the binding's own program prints the same
lines from what it declares. Any difference fails, naming the line.

The C program also prints a line per function, `fn name(p8,u2,...)->i4`
(and per callback type, `cb name(...)->v0`):
each parameter's and the result's kind (`p` pointer, `i` signed, `u`
unsigned integer, `f` floating point, `b` bool, `v` void) and size; and
`const NAME value` per integer constant. A binding that declares functions
or constants by hand prints the same lines for those it declares, and
each must match (a binding need not declare every function).

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
FUNCTION = re.compile(r"^((?:const )?[\w ]+?[ *]+)(veltix_\w+)\(([^;]*?)\);", re.M)
CALLBACK = re.compile(r"^typedef (\w+) \(\*(veltix_\w+_fn)\)\(([^;]*?)\);", re.M)
CONSTANT = re.compile(r"^#define (VELTIX_\w+) \(?(-?\d+)\)?$", re.M)


def structs() -> dict:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    found = {}
    for name, body in STRUCT.findall(text):
        fields = [FIELD.search(line.strip()).group(1) for line in body.splitlines() if line.strip()]
        found[name] = fields
    return found


def kind(c_type: str) -> str:
    """A C expression for the kind letter of `c_type` (see the module's doc)."""
    c_type = c_type.strip()
    if "*" in c_type or c_type.endswith("_fn"):
        return "'p'"
    if c_type in ("float", "double"):
        return "'f'"
    if c_type == "bool":
        return "'b'"
    return f"(({c_type})-1 < ({c_type})0 ? 'i' : 'u')"


def functions(pattern=FUNCTION) -> dict:
    """Each function's (or with CALLBACK, each callback type's) parameter types and result type."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    found = {}
    for result, name, params in pattern.findall(text):
        types = []
        for param in params.split(","):
            param = " ".join(param.split())
            if param and param != "void":
                types.append(re.sub(r"\w+$", "", param).strip())
        found[name] = (types, result.strip())
    return found


def c_lines() -> list:
    program = ['#include <stddef.h>', '#include <stdio.h>', f'#include "{HEADER}"', "int main(void) {"]
    for name, fields in structs().items():
        program.append(f'    printf("{name} %zu\\n", sizeof({name}));')
        for field in fields:
            program.append(f'    printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
    shapes = [("fn", name, shape) for name, shape in functions().items()]
    shapes += [("cb", name, shape) for name, shape in functions(CALLBACK).items()]
    for prefix, name, (params, result) in shapes:
        shape = '"," '.join(['"%c%zu"'] * len(params)) if params else '""'
        args = "".join(f", {kind(t)}, sizeof({t})" for t in params)
        returned = '"v0"' if result == "void" else '"%c%zu"'
        returned_args = "" if result == "void" else f", {kind(result)}, sizeof({result})"
        program.append(f'    printf("{prefix} {name}(" {shape} ")->" {returned} "\\n"{args}{returned_args});')
    text = HEADER.read_text()
    for name, _ in CONSTANT.findall(text):
        program.append(f'    printf("const {name} %lld\\n", (long long){name});')
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
    declared = lambda line: line.startswith(("fn ", "cb ", "const "))
    missing = sorted(line for line in set(expected) - set(got) if not declared(line))
    wrong = sorted(set(got) - set(expected))
    if missing or wrong:
        for line in missing:
            print(f"the C compiler says {line!r}; the binding does not", file=sys.stderr)
        for line in wrong:
            print(f"the binding says {line!r}; the C compiler does not", file=sys.stderr)
        sys.exit(1)
    structs_checked = sum(1 for line in got if not declared(line))
    by_hand = len(got) - structs_checked
    print(f"{structs_checked} sizes and offsets, and {by_hand} declared functions and constants, match the C compiler's")


if __name__ == "__main__":
    main()
