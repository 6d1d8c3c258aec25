"""Import circles in src/: between top-level modules (a folder or a file beside lib.rs), and between
the files of one folder. A module depends on another when its code names it (`crate::x::...`,
`super::x`, `use super::{x, ...}`); tests (`#[cfg(test)]` modules) are left out. Prints every
strongly connected group of more than one module, with one edge each way; exit 1 if there is one."""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve() / "src"


def code(path):
    text = path.read_text()
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
    text = text[: cut.start()] if cut else text
    text = re.sub(r"//[^\n]*", "", text)  # comments (doc links too)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # strings


def module_path(path):
    """['audit', 'engine'] for src/audit/engine.rs, ['audit', 'discover'] for src/audit/discover/mod.rs."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def refs(path):
    """Absolute module paths this file names."""
    me = module_path(path)
    text = code(path)
    out = set()
    for m in re.finditer(r"\bcrate((?:::\w+)+)", text):
        out.add(tuple(m.group(1).strip(":").split("::")))
    for m in re.finditer(r"\bcrate::\{([^}]*)\}", text):
        for item in m.group(1).split(","):
            if item.strip():
                out.add(tuple(item.strip().split("::")))
    for m in re.finditer(r"\b((?:super::)+)(\w+(?:::\w+)*)", text):
        up = m.group(1).count("super::")
        # `super` is the parent of the file's own module, a mod.rs's as any other's.
        base = me[: len(me) - up]
        out.add(tuple(base + m.group(2).split("::")))
    for m in re.finditer(r"\buse super::\{([^}]*)\}", text):
        base = me[:-1]
        for item in m.group(1).split(","):
            if item.strip() and item.strip() != "self":
                out.add(tuple(base + item.strip().split("::")))
    return out


files = sorted(ROOT.rglob("*.rs"))
mods = {tuple(module_path(f)) for f in files}


def owner(ref):
    """The longest known module that `ref` is in."""
    for n in range(len(ref), 0, -1):
        if tuple(ref[:n]) in mods:
            return tuple(ref[:n])
    return None


def sccs(nodes, edges):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = i[0]
        i[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


top, folder = {}, {}
why = {}
for f in files:
    me = tuple(module_path(f))
    if not me or me in {("main",), ("lib",)}:
        continue
    for r in refs(f):
        o = owner(list(r))
        if not o:
            continue
        if o[0] != me[0]:
            top.setdefault(me[0], set()).add(o[0])
            why.setdefault((me[0], o[0]), f"{f.relative_to(ROOT.parent)} names {'::'.join(r)}")
        elif len(me) >= 2 and len(o) >= 2 and me[:-1] == o[:-1] and me != o:
            key = me[:-1]
            folder.setdefault(key, {}).setdefault(me, set()).add(o)
            why.setdefault((me, o), f"{f.relative_to(ROOT.parent)} names {'::'.join(r)}")
        elif len(me) >= 2 and len(o) >= 2 and me[0] == o[0] and me != o and len(me) == len(o):
            key = me[:-1]
            folder.setdefault(key, {}).setdefault(me, set()).add(o)
            why.setdefault((me, o), f"{f.relative_to(ROOT.parent)} names {'::'.join(r)}")

found = 0
for group in sccs(top.keys() | {w for v in top.values() for w in v}, top):
    found += 1
    print("top level: " + " <-> ".join(group))
    for a in group:
        for b in group:
            if b in top.get(a, ()):
                print(f"    {a} -> {b}: {why[(a, b)]}")
for key, edges in sorted(folder.items()):
    for group in sccs(edges.keys() | {w for v in edges.values() for w in v}, edges):
        found += 1
        print(f"in {'/'.join(key)}/: " + " <-> ".join("/".join(g) for g in group))
        for a in group:
            for b in group:
                if b in edges.get(a, ()):
                    print(f"    {'/'.join(a)} -> {'/'.join(b)}: {why[(a, b)]}")
print(f"{found} import circles")
sys.exit(1 if found else 0)
