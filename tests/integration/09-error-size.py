#!/usr/bin/env python3
"""09-error-size: error 8, too large (SPEC §2.1; max_message 64, max_request 1024).

A MESSAGE over max_message in a request under max_request -> 8, nothing
relayed, connection kept (a 64-byte MESSAGE is then relayed). A request over
max_request (one long line; many short lines; a long line with no newline
yet) -> 8, then the server closes that connection; others are unaffected."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon(limits={"max_message": 64, "max_request": 1024}) as d:
        c1, w, ref, _, id1, wid = d.two_members("client1", "watcher")

        c1.chat(ref, id1, "client1", "m" * 65)
        c1.expect_error(8, context="CHAT with a 65-byte MESSAGE (max_message 64)")
        w.expect_nothing()
        c1.expect_nothing()
        c1.chat(ref, id1, "client1", "k" * 64)
        c1.expect_chat(ref, "client1", "k" * 64)
        w.expect_chat(ref, "client1", "k" * 64)
        c1.ping()

        # Hostile: one request over max_request.
        h1 = d.connect("hostile1")
        h1.send(b"HELO " + b"x" * 1200 + b"\n")
        h1.expect_error(8, context="a 1206-byte HELO line (max_request 1024)")
        h1.expect_closed()

        h2 = d.connect("hostile2")
        h2.send(chat_req(ref, wid, "watcher", "\n".join(["line %02d of many" % i for i in range(80)])))
        h2.expect_error(8, context="a CHAT request of ~1400 bytes in short lines")
        h2.expect_closed()
        w.expect_nothing()

        h3 = d.connect("hostile3")
        h3.send(b"y" * 2000)   # no newline at all
        h3.expect_error(8, context="2000 bytes without a newline")
        h3.expect_closed()

        # Nobody else noticed.
        w.expect_nothing()
        c1.expect_nothing()
        w.chat(ref, wid, "watcher", "still fine")
        w.expect_chat(ref, "watcher", "still fine")
        c1.expect_chat(ref, "watcher", "still fine")
        c1.ping()
        d.assert_alive()


run(main)
