#!/usr/bin/env python3
"""Finds import cycles between the modules of each crate's src/.

A module is a file (foo.rs, or foo/mod.rs for folder foo). An edge A -> B
is any `crate::`, `super::` or `self::` path in A (in `use` or in code)
that resolves to B or to an item inside B. A parent's own `mod child;`
declarations and a parent naming its children are not edges (the parent
owns them); a child reaching up into its parent is (that is how the
conn.rs <-> core.rs cycle through `CoreMsg` looked). Prints each cycle and
exits 1 if there is one."""
import os, re, sys

PATH = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")
USE_GROUP = re.compile(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{([^;]*)\};", re.S)

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            mods[tuple(rel)] = p
    return mods

def resolve(cur, path, mods):
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] == "self":
        base, rest = cur, parts[1:]
    else:
        base = cur
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
        rest = parts
    best = base
    for i in range(len(rest)):
        cand = base + tuple(rest[: i + 1])
        if cand in mods:
            best = cand
        else:
            break
    return best

def strip_comments(text):
    return "\n".join(l.split("//")[0] for l in text.splitlines())

def graph(src):
    mods = modules(src)
    g = {m: set() for m in mods}
    for m, p in mods.items():
        text = strip_comments(open(p).read())
        # cfg(test) test modules are leaves that may use anything.
        paths = PATH.findall(text)
        for base, group in USE_GROUP.findall(text):
            for item in re.split(r"[,\s]+", group):
                item = item.strip().split(" as ")[0].strip("{} ")
                if item and item != "self":
                    paths.append(base + "::" + item.split("::")[0])
        for path in paths:
            t = resolve(m, path, mods)
            # Not an edge: to itself, or down into its own children.
            if t == m or t[: len(m)] == m:
                continue
            g[m].add(t)
    return g

def cycles(g):
    found, state, stack = [], {}, []
    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(g.get(n, ())):
            if state.get(t) == 1:
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[n] = 2
    for n in sorted(g):
        if n not in state:
            visit(n)
    return found

def main():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    bad = 0
    for crate in ("proto", "bfd", "bgp", "ipam", "felix-lite", "agent", "tests/kube-standin"):
        src = os.path.join(top, crate, "src")
        for c in cycles(graph(src)):
            bad += 1
            print(f"{crate}: " + " -> ".join("::".join(m) or "<root>" for m in c))
    if bad:
        sys.exit(1)
    print("no import cycles between modules in proto, bfd, bgp, ipam, felix-lite, agent, tests/kube-standin")

main()
