#!/usr/bin/env python3
"""Fails if the modules of a roomgraph crate depend on each other in a loop.

The crates' own graph is acyclic by construction (Cargo refuses cycles); inside a crate nothing stops
`a` from using `b` while `b` uses `a`, which is what makes a tree hard to read and to split. This is
the equivalent of `cargo modules dependencies --acyclic` for the workspace's library crates, without
a nightly toolchain or a build:

- a node is a module: a file (`lib.rs`, `foo.rs`, `foo/mod.rs`) or an inline `mod name { ... }`
  belongs to the file that holds it;
- an edge A -> B is any path in A's code (a `use`, a `pub use` re-export, a qualified call or type)
  that starts with `crate::` or `super::` and names module B or an item of B;
- declaring a child (`mod b;`) is not an edge; code under `#[cfg(test)]` is not looked at (tests
  may use anything); nor are comments.

Usage: scripts/check-module-cycles.py [CRATE_SRC_DIR...]   (default: engine/*/src)
Prints every cycle found (one per strongly connected component) and exits 1 if there is any.
"""

import glob
import os
import re
import sys


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)  # string literals
    return re.sub(r"//[^\n]*", "", text)


def strip_test_code(text):
    """Drops `#[cfg(test)]` items: an inline `mod x { ... }` (to its closing brace) or one item."""
    out = []
    i = 0
    marker = re.compile(r"#\[cfg\(test\)\]")
    while True:
        m = marker.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        j = m.end()
        # The item runs to its first `;` at depth 0 or to the brace closing its first `{`.
        depth = 0
        while j < len(text):
            c = text[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif c == ";" and depth == 0:
                j += 1
                break
            j += 1
        i = j


MOD_DECL = re.compile(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")


def load(path):
    return strip_test_code(strip_comments(open(path, encoding="utf-8").read()))


def module_files(root):
    """The non-test modules of the crate rooted at `root` (`lib.rs` or `main.rs`), by following
    `mod name;` declarations: {module path: code}."""
    files = {}
    todo = [((), root)]
    while todo:
        mod, path = todo.pop()
        text = load(path)
        files[mod] = text
        base = os.path.dirname(path)
        stem = os.path.basename(path)[:-3]
        child_dir = base if (stem in ("lib", "main", "mod") or not mod) else os.path.join(base, stem)
        for m in MOD_DECL.finditer(text):
            for cand in (os.path.join(child_dir, m.group(1) + ".rs"),
                         os.path.join(child_dir, m.group(1), "mod.rs")):
                if os.path.exists(cand):
                    todo.append((mod + (m.group(1),), cand))
                    break
    return files


PATH_RE = re.compile(r"(?<![\w:])((?:crate|super|self|\w+)(?:::(?:super|\w+))*)(?:::\{([^;]*?)\})?")
REEXPORT_RE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);")


def split_use(tree):
    """`a::{b, c::d as e}` -> [(["a", "b"], "b"), (["a", "c", "d"], "e")] (one level of braces)."""
    tree = re.sub(r"\s+", " ", tree).strip()
    m = re.match(r"^(.*?)::\{(.*)\}$", tree)
    if m:
        prefix = m.group(1).split("::")
        return [(prefix + p, a) for sub in m.group(2).split(",") if sub.strip()
                for p, a in split_use(sub.strip())]
    alias = None
    if " as " in tree:
        tree, alias = tree.split(" as ")
    path = tree.strip().split("::")
    return [(path, (alias or path[-1]).strip())]


def inline_modules(text):
    """Spans of the bodies of inline `mod name { ... }` blocks."""
    spans = []
    for m in re.finditer(r"\bmod\s+\w+\s*\{", text):
        depth, j = 0, m.end() - 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        spans.append((m.end(), j))
    return spans


def crate_graph(root):
    files = module_files(root)
    modules = set(files)
    children = {mod: {m[-1] for m in modules if len(m) == len(mod) + 1 and m[:-1] == mod} for mod in modules}
    reexports = {m: {} for m in modules}

    def start(mod, head, inline=0):
        """Where a path written in `mod` (inside `inline` levels of inline `mod x { }`) starts:
        (module, remaining segments), or None (external)."""
        if head[0] == "crate":
            return (), head[1:]
        if head[0] in ("super", "self"):
            base, rest = mod, head
            if rest[0] == "self":
                rest = rest[1:]
            while rest and rest[0] == "super":
                if inline:
                    inline -= 1  # up from an inline module: still this file
                else:
                    base = base[:-1]
                rest = rest[1:]
            return base, rest
        if head[0] in children[mod]:
            return mod, head
        return None

    def resolve(base, rest, seen=()):
        target = base
        for i, seg in enumerate(rest):
            if target + (seg,) in modules:
                target = target + (seg,)
            elif seg in reexports[target] and (target, seg) not in seen:
                # An item a facade re-exports: the use is of the module that defines it.
                return reexports[target][seg](seen + ((target, seg),))
            else:
                break
        return target

    # A module's `pub use` lines are its interface (a facade re-exporting its children), not uses.
    for mod in sorted(modules):
        for m in REEXPORT_RE.finditer(files[mod]):
            for path, alias in split_use(m.group(1)):
                where = start(mod, path)
                if where is None or path[-1] == "*":
                    continue
                reexports[mod][alias] = (lambda w: lambda seen: resolve(w[0], w[1], seen))(where)
    edges = {m: set() for m in modules}
    for mod, text in files.items():
        text = REEXPORT_RE.sub(lambda m: " " * len(m.group(0)), text)
        spans = inline_modules(text)
        for m in PATH_RE.finditer(text):
            head = m.group(1).split("::")
            where = start(mod, head, sum(1 for a, b in spans if a <= m.start() < b))
            # A bare `self`, `super` (`pub(super)`, `&self`) or child name is not a path to anything.
            if where is None or (len(head) == 1 and m.group(2) is None):
                continue
            base, rest = where
            targets = [rest]
            if m.group(2) is not None:
                targets = [rest + [n.strip().split("::")[0]] for n in m.group(2).split(",") if n.strip()]
            for t in targets:
                target = resolve(base, t)
                if target != mod and target in modules:
                    edges[mod].add(target)
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of size > 1."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(("crate",) + m)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    srcs = sys.argv[1:] or sorted(glob.glob(os.path.join(root, "engine", "*", "src")))
    found = False
    for src in srcs:
        crate = os.path.basename(os.path.dirname(os.path.abspath(src)))
        for kind in ("lib", "main"):
            path = os.path.join(src, kind + ".rs")
            if not os.path.exists(path):
                continue
            edges = crate_graph(path)
            label = f"{crate} ({kind})"
            comps = cycles(edges)
            if comps:
                found = True
                for comp in comps:
                    members = set(comp)
                    print(f"{label}: modules in a loop: {', '.join(name(m) for m in comp)}")
                    for m in comp:
                        uses = sorted(name(t) for t in edges[m] if t in members)
                        print(f"    {name(m)} uses {', '.join(uses)}")
            else:
                n_edges = sum(len(v) for v in edges.values())
                print(f"{label}: {len(edges)} modules, {n_edges} uses between them, no loops")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
