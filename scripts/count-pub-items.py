#!/usr/bin/env python3
"""Counts the public API of roomgraph's library crates: the `pub` items an embedder can name.

An item counts when it is declared `pub` (not `pub(crate)` / `pub(super)`), outside `#[cfg(test)]`
code, in a module reachable from the crate root through `pub mod` declarations. Items are `fn`,
`struct`, `enum`, `trait`, `type`, `const`, `static`, `mod`, `macro` and `pub use` re-exports (each
re-exported name), and `pub` methods and fields of those types (any `pub fn` / `pub name:` line in a
reachable module). It is a count for comparing trees, not a rustdoc: a `pub` item of a public module
that no public path reaches by name still counts.

Usage: scripts/count-pub-items.py [CRATE_SRC_DIR...]   (default: the library crates under engine/ and ffi/)
"""

import glob
import importlib.util
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("cycles", os.path.join(here, "check-module-cycles.py"))
cycles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cycles)

ITEM = re.compile(
    r"^\s*pub\s+(?:(?:unsafe|async|const|extern\s+\"C\")\s+)*(fn|struct|enum|trait|type|const|static|mod|union)\b",
    re.M,
)
FIELD = re.compile(r"^\s*pub\s+\w+\s*:", re.M)
PUB_USE = re.compile(r"^\s*pub\s+use\s+([^;]+);", re.M)
PUB_MOD = re.compile(r"^\s*pub\s+mod\s+(\w+)\s*;", re.M)


def count(lib_rs):
    files = cycles.module_files(lib_rs)
    public = {()}
    changed = True
    while changed:
        changed = False
        for mod, text in files.items():
            if mod not in public:
                continue
            for m in PUB_MOD.finditer(text):
                child = mod + (m.group(1),)
                if child in files and child not in public:
                    public.add(child)
                    changed = True
    total = 0
    per_module = {}
    for mod in public:
        text = files[mod]
        n = len(ITEM.findall(text)) + len(FIELD.findall(text))
        for m in PUB_USE.finditer(text):
            n += len(cycles.split_use(m.group(1)))
        per_module[mod] = n
        total += n
    return total, len(public), len(files), per_module


def main():
    root = os.path.dirname(here)
    srcs = sys.argv[1:] or sorted(glob.glob(os.path.join(root, "engine", "*", "src")) + [os.path.join(root, "ffi", "src")])
    grand = 0
    for src in srcs:
        lib = os.path.join(src, "lib.rs")
        if not os.path.exists(lib):
            continue
        total, public, modules, _ = count(lib)
        grand += total
        crate = os.path.relpath(os.path.dirname(os.path.abspath(src)), root)
        print(f"{crate}: {total} pub items in {public} public modules ({modules} modules)")
    print(f"total: {grand}")


if __name__ == "__main__":
    main()
