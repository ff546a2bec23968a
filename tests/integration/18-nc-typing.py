#!/usr/bin/env python3
"""18-nc-typing: a person typing the CS4032 requests into nc.

Each line goes out when Enter is pressed (one segment a line, LF endings,
pauses between lines), with a blank line after each request. HELO, JOIN,
CHAT, LEAVE and DISCONNECT get their exact replies, nothing is answered
early, and the blank lines produce nothing."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def type_lines(c, text, pause=0.05):
    for line in text.split(b"\n")[:-1]:
        c.send(line + b"\n")
        time.sleep(pause)


def main():
    with Daemon() as d:
        w = d.connect("watcher")
        ref, wid, _, _ = w.join("room1", "watcher")
        nc = d.connect("nc")

        type_lines(nc, b"HELO BASE_TEST\n\n")
        nc.expect(b"HELO BASE_TEST\nIP:127.0.0.1\nPort:%d\nStudentID:test-id\n" % d.port, what="HELO reply")
        nc.expect_nothing(0.1)

        # The JOIN is not answered before its last line.
        type_lines(nc, b"JOIN_CHATROOM: room1\nCLIENT_IP: 0\nPORT: 0\n")
        nc.expect_nothing(0.2)
        type_lines(nc, b"CLIENT_NAME: typist\n\n")
        f = nc.expect_frame()
        m = re.match(rb"\AJOINED_CHATROOM: room1\nSERVER_IP: 127\.0\.0\.1\nPORT: (\d+)\nROOM_REF: %d\n"
                     rb"JOIN_ID: ([1-9]\d*)\n\Z" % ref, f.raw)
        check(m, "JOINED reply not exact (ROOM_REF must be %d): %s" % (ref, show(f.raw)))
        jid = int(m.group(2))
        nc.expect(b"CHAT: %d\nCLIENT_NAME: typist\nMESSAGE: typist has joined this chatroom.\n\n" % ref)
        w.expect(join_announce(ref, "typist"))
        nc.expect_nothing(0.1)

        # The CHAT is relayed at its blank line, or once end_quiet_ms (250 ms)
        # pass after its MESSAGE line (SPEC §2.4): a slow typist's blank line
        # then ends nothing and produces nothing. Typed promptly: not before
        # the blank line.
        type_lines(nc, b"CHAT: %d\nJOIN_ID: %d\nCLIENT_NAME: typist\nMESSAGE: hello from nc\n" % (ref, jid),
                   pause=0.01)
        nc.expect_nothing(0.1)
        w.expect_nothing(0.01)
        type_lines(nc, b"\n")
        nc.expect(b"CHAT: %d\nCLIENT_NAME: typist\nMESSAGE: hello from nc\n\n" % ref, what="relay of the typed CHAT")
        w.expect_chat(ref, "typist", "hello from nc")
        type_lines(nc, b"CHAT: %d\nJOIN_ID: %d\nCLIENT_NAME: typist\nMESSAGE: slow typist\n" % (ref, jid))
        nc.expect(b"CHAT: %d\nCLIENT_NAME: typist\nMESSAGE: slow typist\n\n" % ref, what="relay after the quiet period")
        w.expect_chat(ref, "typist", "slow typist")
        type_lines(nc, b"\n")
        nc.expect_nothing(0.1)

        # The watcher answers; the typist sees it.
        w.chat(ref, wid, "watcher", "hi typist")
        nc.expect_chat(ref, "watcher", "hi typist")
        w.expect_chat(ref, "watcher", "hi typist")

        type_lines(nc, b"LEAVE_CHATROOM: %d\nJOIN_ID: %d\nCLIENT_NAME: typist\n\n" % (ref, jid))
        nc.expect(b"LEFT_CHATROOM: %d\nJOIN_ID: %d\n" % (ref, jid), what="LEFT reply")
        nc.expect(b"CHAT: %d\nCLIENT_NAME: typist\nMESSAGE: typist has left this chatroom.\n\n" % ref)
        w.expect(leave_announce(ref, "typist"))
        nc.expect_nothing(0.1)

        type_lines(nc, b"DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: typist\n\n")
        nc.expect_closed()
        w.expect_nothing()
        d.assert_alive()


run(main)
