#!/usr/bin/env python3
"""Fails when modules of a crate depend on each other in a cycle.

The rule is levelled: under every module, its child modules form a directed acyclic graph. A
reference from module `a::x` to `a::y::z` (by `use`, or a path written inline) is an edge
`x -> y` among the children of `a`. A module may always name its ancestors (`super::`) and its
descendants (`pub use child::*`): those are how Rust's module tree works, not dependencies
between peers.

Usage: check_modules.py [CRATE_DIR ...]   (default: every crate of the workspace)
Exit code 0 when no crate has a cycle, 1 otherwise; each cycle is printed with one reference
(file:line) per edge.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TOKEN = re.compile(
    r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>b?r(?P<hashes>\#*)".*?"(?P=hashes)|b?"(?:\\.|[^"\\])*"|b?'(?:\\.|[^'\\])'(?!\w))
    """,
    re.S | re.X,
)


def strip(source: str) -> str:
    """Comments and string literals blanked (newlines kept, so line numbers still hold)."""

    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return _TOKEN.sub(blank, source)


def file_module(src: Path, path: Path) -> tuple[str, ...]:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def expand_use(tree: str) -> list[list[str]]:
    """`a::{b, c::{d, e as f}, self}` -> [[a, b], [a, c, d], [a, c, e], [a]]."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    out: list[list[str]] = []

    def walk(prefix: list[str], t: str) -> None:
        if not t:
            return
        if t.startswith("{"):
            depth, start = 0, 1
            for i, ch in enumerate(t):
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if (ch == "," and depth == 1) or (ch == "}" and depth == 0):
                    walk(prefix, t[start:i])
                    start = i + 1
            return
        head, sep, rest = t.partition("::")
        if head == "self" and prefix:
            out.append(prefix)
            return
        if head in ("*", ""):
            out.append(prefix)
            return
        if sep:
            walk(prefix + [head], rest)
        else:
            out.append(prefix + [head])

    walk([], tree)
    return out


_USE = re.compile(r"\buse\s+([^;]+);")
_INLINE = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)")
_MOD_BLOCK = re.compile(r"\bmod\s+(\w+)\s*\{")


def inline_modules(text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every `mod name { ... }` block."""
    blocks = []
    for m in _MOD_BLOCK.finditer(text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        blocks.append((m.end(), i, m.group(1)))
    return blocks


def scope_at(module: tuple[str, ...], blocks, pos: int) -> tuple[str, ...]:
    inner = [b for b in blocks if b[0] <= pos < b[1]]
    inner.sort(key=lambda b: b[0])
    return module + tuple(b[2] for b in inner)


def resolve(scope: tuple[str, ...], path: list[str], children: set[tuple[str, ...]]):
    if not path:
        return None
    if path[0] == "crate":
        return tuple(path[1:])
    if path[0] in ("super", "self"):
        cur = list(scope)
        i = 0
        while i < len(path) and path[i] in ("super", "self"):
            if path[i] == "super":
                if not cur:
                    return None
                cur.pop()
            i += 1
        return tuple(cur) + tuple(path[i:])
    # A relative path names a child of the current module (2018 edition), or another crate.
    candidate = scope + (path[0],)
    if candidate in children:
        return tuple(scope) + tuple(path)
    return None


def crate_edges(crate: Path):
    src = crate / "src"
    files = [
        p
        for p in src.rglob("*.rs")
        if p.name != "main.rs" and "bin" not in p.relative_to(src).parts
    ]
    if not (src / "lib.rs").exists():
        return {}, {}
    modules = {file_module(src, p) for p in files}
    edges: dict[tuple, dict[tuple[str, str], str]] = {}
    for path in files:
        module = file_module(src, path)
        text = strip(path.read_text(encoding="utf-8"))
        blocks = inline_modules(text)
        refs: list[tuple[int, list[str]]] = []
        for m in _USE.finditer(text):
            for p in expand_use(m.group(1)):
                refs.append((m.start(), p))
        for m in _INLINE.finditer(text):
            refs.append((m.start(), m.group(1).split("::")))
        for pos, p in refs:
            scope = scope_at(module, blocks, pos)
            target = resolve(scope, p, modules)
            if target is None:
                continue
            # The module the target lives in: its longest prefix that is a file module.
            while target and target not in modules:
                target = target[:-1]
            n = 0
            while n < min(len(module), len(target)) and module[n] == target[n]:
                n += 1
            if n == len(module) or n == len(target):
                continue  # ancestor or descendant
            parent = module[:n]
            edge = (module[n], target[n])
            line = text.count("\n", 0, pos) + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            edges.setdefault(parent, {}).setdefault(edge, where)
    return edges, modules


def cycles(graph_edges: dict[tuple[str, str], str]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    graph: dict[str, list[str]] = {}
    for a, b in graph_edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(crate: Path) -> list[str]:
    edges, _ = crate_edges(crate)
    problems = []
    for parent, es in sorted(edges.items()):
        for comp in cycles(es):
            scope = "::".join(("crate",) + parent)
            lines = [f"{crate.relative_to(ROOT)}: module cycle under {scope}: {' <-> '.join(comp)}"]
            for (a, b), where in sorted(es.items()):
                if a in comp and b in comp:
                    lines.append(f"    {a} -> {b}  ({where})")
            problems.append("\n".join(lines))
    return problems


def workspace_crates() -> list[Path]:
    return sorted(p.parent for p in ROOT.glob("**/Cargo.toml") if "target" not in p.parts and (p.parent / "src").is_dir())


def main(argv: list[str]) -> int:
    crates = [Path(a).resolve() for a in argv] or workspace_crates()
    problems = [p for c in crates for p in check(c)]
    for p in problems:
        print(p)
    print(f"{len(crates)} crates checked, {len(problems)} module cycle(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
