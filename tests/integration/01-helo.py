#!/usr/bin/env python3
"""01-helo: the HELO round trip (SPEC §2.1), exact bytes.

HELO <text> -> HELO <text>\\nIP:127.0.0.1\\nPort:<control port>\\nStudentID:<server_id>\\n,
repeatable on one connection, with CRLF input, on several connections, and
with the server_id taken from the config."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c = d.connect("c1")
        c.send(b"HELO BASE_TEST\n")
        c.expect(b"HELO BASE_TEST\nIP:127.0.0.1\nPort:%d\nStudentID:test-id\n" % d.port,
                 what="HELO reply")
        # Again on the same connection, with spaces inside the text.
        c.send(b"HELO hello world 42\n")
        c.expect(helo_reply("hello world 42", d.port), what="second HELO reply")
        # CRLF line ending: the \r is not part of the text.
        c.send(b"HELO crlf\r\n")
        c.expect(helo_reply("crlf", d.port), what="HELO reply to a CRLF request")
        # A second connection at the same time; the first gets nothing more.
        c2 = d.connect("c2")
        c2.send(b"HELO other\n")
        c2.expect(helo_reply("other", d.port), what="HELO reply on a second connection")
        c.expect_nothing()
        d.assert_alive()

    # The StudentID line is the configured server_id.
    with Daemon(server={"server_id": "roomd-4032"}) as d:
        c = d.connect("c1")
        c.send(b"HELO BASE_TEST\n")
        c.expect(b"HELO BASE_TEST\nIP:127.0.0.1\nPort:%d\nStudentID:roomd-4032\n" % d.port,
                 what="HELO reply with a configured server_id")


run(main)
