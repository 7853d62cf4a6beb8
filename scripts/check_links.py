#!/usr/bin/env python3
"""Fails on a broken link in the documentation.

Checks every Markdown link of README.md, docs/*.md and the bindings'
READMEs that points into the repository: the file (or folder) must exist,
and a `#fragment` must name a heading of the target file (GitHub's
anchors: lowercase, punctuation dropped, spaces as hyphens). Links to
other sites are not fetched.

    python3 scripts/check_links.py
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
CODE_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)


def documents() -> list:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "bindings").glob("*/README.md"))]


def anchors(path: pathlib.Path) -> set:
    """GitHub's anchors for the headings of `path`."""
    text = CODE_BLOCK.sub("", path.read_text())
    found = set()
    for heading in HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def broken(document: pathlib.Path) -> list:
    problems = []
    text = CODE_BLOCK.sub("", document.read_text())
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # another site, or mailto:
        path_part, _, fragment = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            problems.append(f"{document.relative_to(ROOT)}: {target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            problems.append(f"{document.relative_to(ROOT)}: {target}: no heading #{fragment}")
    return problems


def main() -> None:
    docs = documents()
    problems = [problem for document in docs for problem in broken(document)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"the links of {len(docs)} documents lead somewhere")


if __name__ == "__main__":
    main()
