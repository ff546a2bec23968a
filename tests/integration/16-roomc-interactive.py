#!/usr/bin/env python3
"""16-roomc-interactive: roomc driven line by line through a pipe (SPEC §3).

alice = roomc (stdin/stdout pipes), bob = a raw CS4032 member of room1.
'join room1' -> bob sees alice's join announcement; bob's "hi alice" prints
as "[room1] bob: hi alice"; 'send room1 hello from roomc' reaches bob as an
exact CHAT frame and prints "[room1] alice: hello from roomc";
'leave_chatroom room1' -> bob sees the leave announcement and bob's later
messages are no longer shown; 'disconnect' -> roomc exits 0. While in the
room, roomc holds a connection to the room's port (SPEC §1, §2.2)."""
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def connections_to(port):
    """Established TCP connections to 127.0.0.1:port, per ss; None without ss."""
    ss = shutil.which("ss")
    if not ss:
        return None
    out = subprocess.run([ss, "-Htn", "state", "established", "dst", "127.0.0.1:%d" % port],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        return None
    return [l for l in out.stdout.splitlines() if l.strip()]


def main():
    with Daemon() as d:
        bob = d.connect("bob")
        ref, bid, _, room_port = bob.join("room1", "bob")
        with Roomc(d.port, "alice") as alice:
            alice.write("join room1\n")
            bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT,
                       what="alice's join announcement (roomc 'join room1')")

            bob.chat(ref, bid, "bob", "hi alice")
            bob.expect_chat(ref, "bob", "hi alice")
            alice.expect_output("[room1] bob: hi alice")

            conns = connections_to(room_port)
            if conns is not None:
                check(len(conns) >= 1, "roomc holds no connection to room1's port %d (ss shows none);"
                      " SPEC §1: roomc opens a connection to every joined room's port" % room_port)

            alice.write("send room1 hello from roomc\n")
            bob.expect(b"CHAT: %d\nCLIENT_NAME: alice\nMESSAGE: hello from roomc\n\n" % ref,
                       what="alice's message (roomc 'send room1 ...')")
            alice.expect_output("[room1] alice: hello from roomc")

            alice.write("leave_chatroom room1\n")
            bob.expect(leave_announce(ref, "alice"), what="alice's leave announcement")
            bob.chat(ref, bid, "bob", "are you gone")
            bob.expect_chat(ref, "bob", "are you gone")

            alice.write("disconnect\n")
            alice.close_stdin()
            rc = alice.wait()
            check(rc == 0, "roomc exited with %s, expected 0\n  stdout: %s\n  stderr: %s"
                  % (rc, show(alice.out), show(alice.err)))
            check("are you gone" not in alice.text(),
                  "roomc printed a room1 message after leave_chatroom: %s" % show(alice.out))
            check(alice.text().count("[room1] bob: hi alice") == 1,
                  "bob's message shown %d times (must be once): %s"
                  % (alice.text().count("[room1] bob: hi alice"), show(alice.out)))
            bob.expect_nothing()
            if conns is not None:
                time.sleep(0.2 * FACTOR)
                left = connections_to(room_port)
                check(not left, "a connection to room1's port is still open after roomc exited: %s" % left)
        d.assert_alive()


run(main)
