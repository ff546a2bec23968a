#!/usr/bin/env python3
"""20-config-cli: configured rooms and the command line.

Configured rooms: ROOM_REF stable across restarts (SPEC §2.1), whatever the
join order; a room's fixed port is the PORT of the JOINED reply.
Command line (SPEC §3): roomd --help and --version exit 0; a bad value or an
unknown key is reported with its line and roomd refuses to start; roomc
--help exits 0."""
import os
import socket
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def command_line():
    for binary, arg in ((roomd_path(), "--help"), (roomd_path(), "--version"), (roomc_path(), "--help")):
        p = subprocess.run([binary, arg], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=5 * FACTOR)
        check(p.returncode == 0, "%s %s: exit code %d, expected 0\n  stdout: %s\n  stderr: %s"
              % (os.path.basename(binary), arg, p.returncode, show(p.stdout), show(p.stderr)))
        check(p.stdout.strip(), "%s %s printed nothing on stdout" % (os.path.basename(binary), arg))
    with tempfile.TemporaryDirectory(prefix="roomd-it-") as tmp:
        cases = [
            ("[server]\nbind = 127.0.0.1\n\n[limits]\nmax_rooms = lots\n", 5, "max_rooms"),
            ("[server]\nbind = 127.0.0.1\nserver_id = x\n[limits]\nno_such_key = 1\n", 5, "no_such_key"),
        ]
        for text, line, key in cases:
            path = os.path.join(tmp, "rooms.ini")
            with open(path, "w") as f:
                f.write(text)
            try:
                p = subprocess.run([roomd_path(), "-p", "0", "-c", path], stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=5 * FACTOR)
            except subprocess.TimeoutExpired:
                fail("roomd started with a bad config (line %d: %s):\n%s" % (line, key, text))
            err = p.stderr.decode("utf-8", "replace")
            check(p.returncode != 0, "roomd exited 0 with a bad config:\n%s" % text)
            check(re.search(r"\b%d\b" % line, err) and key in err,
                  "roomd's error for a bad config does not name line %d and key %s:\n%s" % (line, key, err))
            check("control listening" not in err, "roomd listened with a bad config:\n%s" % err)


def main():
    command_line()
    fixed = free_port()
    rooms = [("lobby", {"topic": "the lobby"}), ("games", {"topic": "games", "port": fixed}),
             ("quiet", {})]
    with Daemon(rooms=rooms) as d:
        c = d.connect("c")
        g = c.join("games", "client1")
        q = c.join("quiet", "client1")
        l = c.join("lobby", "client1")
        check(g[3] == fixed, "room 'games' configured with port %d, JOINED says PORT: %d" % (fixed, g[3]))
        refs1 = {"games": g[0], "quiet": q[0], "lobby": l[0]}
        check(len(set(refs1.values())) == 3, "configured rooms share refs: %s" % refs1)
    with Daemon(rooms=rooms) as d:
        c = d.connect("c")
        refs2 = {}
        for room in ("lobby", "quiet", "games"):
            refs2[room] = c.join(room, "client1")[0]
        check(refs1 == refs2, "configured rooms' ROOM_REFs changed across a restart: %s then %s"
              % (refs1, refs2))


run(main)
