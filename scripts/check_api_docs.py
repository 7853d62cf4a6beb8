#!/usr/bin/env python3
"""Fails when a function of include/veltix.h leaves a parameter undocumented.

The header's comments describe parameters in prose, naming each in
backquotes (`client`, `out_len` or `*out_len`), as the rest of the documentation does;
Doxygen (scripts/docs.sh) checks that every function, type, field and
constant has a comment at all. This check adds the parameters: each one
must be named in its function's comment.

    python3 scripts/check_api_docs.py [header]
"""

import pathlib
import re
import sys

HEADER = pathlib.Path(__file__).resolve().parents[1] / "include" / "veltix.h"
DECLARATION = re.compile(r"/\*\*(.*?)\*/\s*((?:const )?[\w ]+?[ *]+(veltix_\w+)\(([^;]*?)\);)", re.S)


def undocumented(text: str) -> list:
    """(function, parameter) pairs whose parameter its comment never names."""
    missing = []
    for doc, _, name, params in DECLARATION.findall(text):
        for param in params.split(","):
            param = " ".join(param.split())
            if param and param != "void":
                param_name = re.search(r"(\w+)$", param).group(1)
                if f"`{param_name}`" not in doc and f"`*{param_name}`" not in doc:
                    missing.append((name, param_name))
    return missing


def main() -> None:
    header = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HEADER
    text = header.read_text()
    functions = len(DECLARATION.findall(text))
    declared = len(set(re.findall(r"^(?:const )?[A-Za-z_][\w ]*?[ *]+(veltix_\w+)\(", text, re.M)))
    if functions != declared:
        print(f"{declared - functions} functions of {header} have no comment", file=sys.stderr)
        sys.exit(1)
    missing = undocumented(text)
    for function, param in missing:
        print(f"{function}: its comment does not name `{param}`", file=sys.stderr)
    if missing:
        sys.exit(1)
    print(f"every parameter of the {functions} functions is documented")


if __name__ == "__main__":
    main()
