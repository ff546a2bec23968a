#!/usr/bin/env python3
"""17-roomc-script: roomc fed a whole script on a pipe (SPEC §3).

1. printf 'join room1\\nsend room1 hello from roomc\\nleave_chatroom room1\\n
   disconnect\\n' | roomc -h 127.0.0.1 -p PORT -n alice: exits 0; raw member
   bob sees alice join, her exact CHAT frame, and her leave; roomc's stdout
   shows "[room1] alice: hello from roomc".
2. EOF without 'disconnect' disconnects: bob sees carol's leave; exit 0.
3. An error reply prints as "error K: DESCRIPTION" and the script goes on:
   joining room1 as a name bob's room already has -> "error 5: ...", then
   the next commands still run."""
import os
import shlex
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def piped(script, port, name):
    return "printf %s | %s -h 127.0.0.1 -p %d -n %s" % (
        shlex.quote(script), shlex.quote(roomc_path()), port, shlex.quote(name))


def main():
    with Daemon(rooms={"small": {"max_members": 1}}) as d:
        bob = d.connect("bob")
        ref, _, _, _ = bob.join("room1", "bob")

        # 1. The full script.
        with Roomc(d.port, "alice", shell=piped(
                r"join room1\nsend room1 hello from roomc\nleave_chatroom room1\ndisconnect\n",
                d.port, "alice")) as alice:
            bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT, what="alice's join announcement")
            bob.expect(b"CHAT: %d\nCLIENT_NAME: alice\nMESSAGE: hello from roomc\n\n" % ref,
                       what="alice's message")
            bob.expect(leave_announce(ref, "alice"), what="alice's leave announcement")
            rc = alice.wait()
            check(rc == 0, "scripted roomc exited with %s, expected 0\n  stdout: %s\n  stderr: %s"
                  % (rc, show(alice.out), show(alice.err)))
            check("[room1] alice: hello from roomc" in alice.text(),
                  "roomc's stdout lacks '[room1] alice: hello from roomc' (its own message, echoed"
                  " by the room before the next command runs)\n  stdout: %s\n  stderr: %s"
                  % (show(alice.out), show(alice.err)))
        bob.expect_nothing()

        # 2. EOF disconnects.
        with Roomc(d.port, "carol", shell=piped(r"join room1\nsend room1 bye now\n", d.port, "carol")) as carol:
            bob.expect(join_announce(ref, "carol"), timeout=2 * TIMEOUT, what="carol's join announcement")
            bob.expect_chat(ref, "carol", "bye now")
            bob.expect(leave_announce(ref, "carol"), what="carol's leave announcement after EOF")
            rc = carol.wait()
            check(rc == 0, "roomc exited with %s at EOF, expected 0\n  stdout: %s\n  stderr: %s"
                  % (rc, show(carol.out), show(carol.err)))
        bob.expect_nothing()

        # 3. An error is printed, and the script goes on. (Names are server
        # wide, so the error is a full room: bob, being a name another
        # connection holds, could join nothing.)
        w = d.connect("watcher")
        ref2, _, _, _ = w.join("room2", "watcher")
        f = d.connect("filler")
        f.join("small", "filler")
        with Roomc(d.port, "dave", shell=piped(r"join small\njoin room2\nsend room2 still here\ndisconnect\n",
                                               d.port, "dave")) as dave:
            w.expect(join_announce(ref2, "dave"), timeout=2 * TIMEOUT,
                     what="roomc's join of room2 after its failed join of small")
            w.expect_chat(ref2, "dave", "still here")
            w.expect(leave_announce(ref2, "dave"))
            rc = dave.wait()
            dave.expect_output(re.compile(r"^error 6: \S", re.M), stream="any")
            check(rc is not None, "roomc did not exit")
        bob.expect_nothing()
        d.assert_alive()


run(main)
