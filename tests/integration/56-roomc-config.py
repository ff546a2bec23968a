#!/usr/bin/env python3
"""56-roomc-config: roomc's config file (issue 16), $XDG_CONFIG_HOME/roomc/config.

1. With only a config file (host, port, name, two `join` lines, one a name
   with a space) and no flags, a piped script runs as alice, in both rooms,
   joined at the start in order: raw member bob sees her joins and messages.
2. Flags win over the file: -n carol with the same file joins as carol.
3. --no-config reads nothing: no room joined at the start.
4. A bad file is a usage error naming the file and line (exit 2); so is a
   --config FILE that does not exist; a missing default file is no error."""
import os
import shlex
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def write_config(xdg, text):
    os.makedirs(os.path.join(xdg, "roomc"), exist_ok=True)
    with open(os.path.join(xdg, "roomc", "config"), "w") as f:
        f.write(text)


def piped(script, xdg, args=""):
    return "printf %s | XDG_CONFIG_HOME=%s %s %s" % (
        shlex.quote(script), shlex.quote(xdg), shlex.quote(roomc_path()), args)


def finished(r, want_rc):
    rc = r.wait()
    check(rc == want_rc, "roomc exited with %s, expected %d\n  stdout: %s\n  stderr: %s"
          % (rc, want_rc, show(r.out), show(r.err)))


def main():
    xdg = tempfile.mkdtemp(prefix="roomc-xdg-")
    with Daemon() as d:
        bob = d.connect("bob")
        ref1, _, _, _ = bob.join("room1", "bob")
        ref2, _, _, _ = bob.join("dev team", "bob")
        write_config(xdg, "# roomc's defaults\nhost = 127.0.0.1\nport = %d\nname = alice\n"
                          "join = room1\njoin = dev team\nreconnect = no\n" % d.port)

        # 1. The file alone.
        with Roomc(d.port, "alice", shell=piped(r"send room1 hi from the file\ndisconnect\n",
                                                xdg)) as alice:
            bob.expect_unordered([join_announce(ref1, "alice"), join_announce(ref2, "alice")],
                                 timeout=2 * TIMEOUT, what="alice's joins of both rooms")
            bob.expect_chat(ref1, "alice", "hi from the file")
            bob.expect_unordered([leave_announce(ref1, "alice"), leave_announce(ref2, "alice")],
                                 what="alice's leaves at her disconnect")
            finished(alice, 0)
        print("config file alone: host, port, name and both rooms taken from it")

        # 2. Flags win.
        with Roomc(d.port, "carol", shell=piped(r"disconnect\n", xdg, "-n carol")) as carol:
            bob.expect_unordered([join_announce(ref1, "carol"), join_announce(ref2, "carol")],
                                 timeout=2 * TIMEOUT, what="carol's joins (-n wins)")
            bob.expect_unordered([leave_announce(ref1, "carol"), leave_announce(ref2, "carol")])
            finished(carol, 0)

        # 3. --no-config: nothing from the file (the port must then be given).
        with Roomc(d.port, "dave", shell=piped(r"send room1 x\ndisconnect\n", xdg,
                                               "--no-config -p %d -n dave" % d.port)) as dave:
            finished(dave, 0)
            check("not in room1" in dave.text() + dave.err.decode(),
                  "dave, without the file, should not be in room1\n  stdout: %s\n  stderr: %s"
                  % (show(dave.out), show(dave.err)))
        bob.expect_nothing()
        print("flags win over the file; --no-config reads none")

        # 4. Errors.
        write_config(xdg, "name = erin\nport = 0\n")
        with Roomc(d.port, "erin", shell=piped(r"disconnect\n", xdg)) as erin:
            finished(erin, 2)
            want = os.path.join(xdg, "roomc", "config") + ":2: invalid port '0' (1-65535)"
            check(want in erin.err.decode(), "stderr lacks %r: %s" % (want, show(erin.err)))
        with Roomc(d.port, "erin", shell=piped(r"disconnect\n", xdg,
                                               "--config %s/nope -n erin" % shlex.quote(xdg))) as erin:
            finished(erin, 2)
            check("nope: No such file" in erin.err.decode(), "stderr: %s" % show(erin.err))
        empty = tempfile.mkdtemp(prefix="roomc-xdg-empty-")
        with Roomc(d.port, "fred", shell=piped(r"disconnect\n", empty,
                                               "-p %d -n fred" % d.port)) as fred:
            finished(fred, 0)
        print("a bad file names its line (exit 2); a missing --config FILE is an error, "
              "a missing default file is not")
        bob.expect_nothing()
        d.assert_alive()


run(main)
