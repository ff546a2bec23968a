#!/usr/bin/env python3
# check-layers.sh - the allowed #include directions between the source
# directories and between server/'s modules, checked (a python3 script; CTest
# runs it as check_layers, and its --self-test as check_layers_self_test).
#
# usage: scripts/check-layers.sh [--root DIR]   # exit 1, a line per violation
#        scripts/check-layers.sh --self-test    # plants violations in a copy
#
# Reads the #include "..." lines of server/, common/ and client/ (*.c, *.h)
# and fails when:
#   (a) common/ includes a server/ or client/ header;
#   (b) client/ includes a server/ header, or server/ a client/ one;
#   (c) server/ modules form an include cycle (module = file name without
#       .c/.h; x.c or x.h including y.h makes x depend on y), directly or
#       through a chain;
#   (d) a server/ file includes a server/ header its module may not use
#       according to LAYERS below (a module missing from it is a violation
#       too: add a row when you add a module).
# A quoted include resolves as the compiler does here: the including file's
# own directory first, then common/ (every target's include path), then
# server/ and client/.
#
# LAYERS: each server/ module and the server/ headers it may include
# (common/ headers are open to every layer). Bottom to top:
#   - the threads' shared services (no thread of their own to speak of);
#   - transport, tls, conn, loop: a connection's bytes (plain or TLS), the connection, and the
#     event loop every thread runs (it calls up only through handlers);
#   - delivery: what a room hands the control connections' owner;
#   - room: a room thread; it knows the mailbox and delivery, never the
#     acceptor, control or the room lifecycle;
#   - rooms: the room lifecycle, on the acceptor thread;
#   - control: the control-port commands, on the acceptor thread;
#   - acceptor: the main thread's loop, which drives all of the above;
#   - service, main: the daemon around the acceptor.
LAYERS = """
mailbox   -
iptable   -
metrics   -
registry  -
store     metrics
transport -
tls       transport
conn      iptable metrics transport
loop      conn iptable metrics tls
delivery  mailbox
cluster   mailbox
room      cluster conn delivery iptable loop mailbox metrics store
rooms     cluster conn iptable metrics registry room store
control   cluster conn metrics registry room rooms store
acceptor  cluster conn control delivery iptable loop mailbox metrics registry room rooms
service   acceptor tls
main      acceptor cluster metrics registry service store tls
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

DIRS = ("common", "server", "client")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def parse_layers(text):
    table = {}
    for line in text.strip().splitlines():
        words = line.split()
        table[words[0]] = set(w for w in words[1:] if w != "-")
    return table


def sources(root):
    for d in DIRS:
        path = os.path.join(root, d)
        for name in sorted(os.listdir(path)):
            if name.endswith((".c", ".h")):
                yield d, name


def resolve(root, d, inc):
    """The (directory, file name) a quoted include names, or None."""
    if "/" in inc:
        full = os.path.normpath(os.path.join(root, d, inc))
        rel = os.path.relpath(full, root)
        parts = rel.split(os.sep)
        if len(parts) == 2 and parts[0] in DIRS and os.path.exists(full):
            return parts[0], parts[1]
        return None
    for cand in (d, "common", "server", "client"):
        if os.path.exists(os.path.join(root, cand, inc)):
            return cand, inc
    return None


def module(name):
    return os.path.splitext(name)[0]


def includes(root, d, name):
    with open(os.path.join(root, d, name), encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1)


def find_cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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


def check(root):
    layers = parse_layers(LAYERS)
    problems = []
    graph = {}  # server module -> server modules it includes
    for d, name in sources(root):
        where = f"{d}/{name}"
        mod = module(name)
        if d == "server":
            graph.setdefault(mod, set())
            if mod not in layers:
                problems.append(f"{where}: module {mod} is not in the LAYERS table")
        for n, inc in includes(root, d, name):
            target = resolve(root, d, inc)
            if target is None:
                continue  # a system or generated header
            td, tname = target
            at = f"{where}:{n}: includes {td}/{tname}"
            if d == "common" and td != "common":
                problems.append(f"{at}: common/ may not use {td}/")
            elif {d, td} == {"server", "client"}:
                problems.append(f"{at}: {d}/ may not use {td}/")
            if d != "server" or td != "server" or module(tname) == mod:
                continue
            graph[mod].add(module(tname))
            if mod in layers and module(tname) not in layers[mod]:
                problems.append(f"{at}: layer {mod} may not use {module(tname)} (LAYERS)")
    for comp in find_cycles(graph):
        problems.append("server/: include cycle between modules " + " ".join(comp))
    return problems


def self_test():
    """Plant one violation of each kind in a copy of the tree; each must fail."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    plants = [
        # (file, line to add, text the report must contain)
        ("server/room.c", '#include "acceptor.h"', "layer room may not use acceptor"),
        ("server/room.c", '#include "acceptor.h"', "include cycle between modules acceptor"),
        ("server/rooms.c", '#include "control.h"', "include cycle between modules control rooms"),
        ("server/delivery.h", '#include "room.h"', "layer delivery may not use room"),
        ("common/msg.c", '#include "conn.h"', "common/ may not use server/"),
        ("client/session.c", '#include "registry.h"', "client/ may not use server/"),
        ("server/conn.c", '#include "../client/output.h"', "server/ may not use client/"),
    ]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for d in DIRS:
            shutil.copytree(os.path.join(root, d), os.path.join(tmp, d))
        clean = check(tmp)
        if clean:
            print("self-test: the tree as it is fails:\n  " + "\n  ".join(clean))
            return 1
        for path, line, expect in plants:
            full = os.path.join(tmp, path)
            with open(full, encoding="utf-8") as f:
                orig = f.read()
            with open(full, "w", encoding="utf-8") as f:
                f.write(line + "\n" + orig)
            run = subprocess.run([sys.executable, os.path.abspath(__file__), "--root", tmp],
                                 capture_output=True, text=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(orig)
            ok = run.returncode == 1 and expect in run.stdout
            failed += not ok
            print(f"self-test: {path} + {line}: exit {run.returncode}, "
                  f"{'reported' if ok else 'NOT reported'}: {expect}")
            for report in run.stdout.splitlines():
                print("    " + report)
    return 1 if failed else 0


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) == 3 and argv[1] == "--root":
        root = argv[2]
    elif len(argv) != 1:
        print("usage: check-layers.sh [--root DIR | --self-test]", file=sys.stderr)
        return 2
    problems = check(root)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
