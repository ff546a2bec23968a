#!/usr/bin/env python3
"""13-framing-split-coalesced: request framing (SPEC §2 "Reading requests").

The same requests give the same replies whether sent one byte per TCP
segment, or several in one send() with "\\n\\n" after each and CRLF line
endings; "KEY:value" equals "KEY: value" and values are trimmed."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

JOINED_ANY = rb"JOINED_CHATROOM: %s\nSERVER_IP: 127\.0\.0\.1\nPORT: (\d+)\nROOM_REF: (\d+)\nJOIN_ID: (\d+)\n"


def crlf(b):
    return b.replace(b"\n", b"\r\n")


def script_phase1(name):
    """HELO, JOIN room1, JOIN room2, as one block, "\\n\\n" after each."""
    return (helo_req("split test") + b"\n" + join_req("room1", name) + b"\n" +
            join_req("room2", name) + b"\n")


def expect_phase1(c, d, name, w):
    c.expect(helo_reply("split test", d.port), what="HELO reply")
    # JOINED room1, JOINED room2 in request order; each room's announcement
    # after its JOINED (room1's may come after JOINED room2: another thread).
    frames = [c.expect_frame() for _ in range(4)]
    raws = [f.raw for f in frames]
    joined = [f for f in frames if f.kind == "JOINED"]
    check(len(joined) == 2, "%s: expected two JOINED replies and two announcements, got %s"
          % (c.label, " | ".join(show(x) for x in raws)))
    m1 = re.match(JOINED_ANY % b"room1" + rb"\Z", joined[0].raw)
    check(m1, "%s: first JOINED is not an exact room1 reply: %s" % (c.label, show(joined[0].raw)))
    m2 = re.match(JOINED_ANY % b"room2" + rb"\Z", joined[1].raw)
    check(m2, "%s: second JOINED is not an exact room2 reply: %s" % (c.label, show(joined[1].raw)))
    ref1, id1 = int(m1.group(2)), int(m1.group(3))
    ref2, id2 = int(m2.group(2)), int(m2.group(3))
    a1, a2 = join_announce(ref1, name), join_announce(ref2, name)
    check(sorted(raws) == sorted([joined[0].raw, joined[1].raw, a1, a2]),
          "%s: expected the two own join announcements %s and %s, got %s"
          % (c.label, show(a1), show(a2), " | ".join(show(x) for x in raws)))
    check(raws.index(joined[0].raw) < raws.index(a1) and raws.index(joined[1].raw) < raws.index(a2),
          "%s: a join announcement came before its JOINED reply: %s"
          % (c.label, " | ".join(show(x) for x in raws)))
    w.expect(join_announce(ref1, name), what="watcher sees %s join" % name)
    return ref1, id1, ref2, id2


def script_phase2(name, ref1, id1, ref2, id2):
    return (chat_req(ref1, id1, name, "first") + b"\n" +
            chat_req(ref2, id2, name, "second") +
            leave_req(ref1, id1, name) + b"\n" +
            helo_req("done") + b"\n\n")


def expect_phase2(c, d, name, ref1, id1, ref2, id2, w):
    first = chat_frame(ref1, name, "first")
    left = left_reply(ref1, id1)
    bye = leave_announce(ref1, name)
    helo = helo_reply("done", d.port)
    got = c.expect_unordered([first, chat_frame(ref2, name, "second"), left, bye, helo],
                             what="replies to the phase-2 requests")
    # Orders the SPEC fixes: room1's CHAT before LEFT (no room1 CHAT after
    # LEFT), LEFT before its announcement, replies of one connection in order.
    check(got.index(first) < got.index(left) < got.index(bye) and got.index(left) < got.index(helo),
          "%s: replies in an impossible order: %s" % (c.label, " | ".join(show(x) for x in got)))
    c.expect_nothing()
    w.expect(chat_frame(ref1, name, "first"))
    w.expect(leave_announce(ref1, name))


def main():
    with Daemon() as d:
        w = d.connect("watcher")
        w.join("room1", "watcher")

        # Coalesced, LF.
        c = d.connect("coalesced-lf")
        c.send(script_phase1("co_lf"))
        ids = expect_phase1(c, d, "co_lf", w)
        c.send(script_phase2("co_lf", *ids))
        expect_phase2(c, d, "co_lf", *ids, w)

        # Coalesced, CRLF.
        c = d.connect("coalesced-crlf")
        c.send(crlf(script_phase1("co_crlf")))
        ids = expect_phase1(c, d, "co_crlf", w)
        c.send(crlf(script_phase2("co_crlf", *ids)))
        expect_phase2(c, d, "co_crlf", *ids, w)

        # One byte per segment, LF.
        c = d.connect("split-lf")
        c.send_split(script_phase1("sp_lf"))
        ids = expect_phase1(c, d, "sp_lf", w)
        c.send_split(script_phase2("sp_lf", *ids))
        expect_phase2(c, d, "sp_lf", *ids, w)

        # One byte per segment, CRLF.
        c = d.connect("split-crlf")
        c.send_split(crlf(script_phase1("sp_crlf")))
        ids = expect_phase1(c, d, "sp_crlf", w)
        c.send_split(crlf(script_phase2("sp_crlf", *ids)))
        expect_phase2(c, d, "sp_crlf", *ids, w)

        # Nothing is answered before a request is complete.
        c = d.connect("partial")
        req = join_req("room1", "partial")
        # (Cut inside the CLIENT_NAME key: a pause after part of its value
        # would end the JOIN there after end_quiet_ms, SPEC §2.4.)
        cut = req.index(b"CLIENT_NAME") + 6
        c.send(req[:cut])
        c.expect_nothing()
        w.expect_nothing()
        c.send(req[cut:])
        f = c.expect_frame()
        check(f.kind == "JOINED", "JOIN completed late: %s" % show(f.raw))

        # KEY:value without the space, and padded values, are the same request.
        c = d.connect("liberal")
        c.send(b"JOIN_CHATROOM:room1\r\nCLIENT_IP:0\r\nPORT:0\r\nCLIENT_NAME:   liberal  \r\n\r\n")
        f = c.expect_frame()
        m = re.match(JOINED_ANY % b"room1" + rb"\Z", f.raw)
        check(m, "liberal JOIN: JOINED not exact: %s" % show(f.raw))
        ref1, jid = int(m.group(2)), int(m.group(3))
        c.expect(join_announce(ref1, "liberal"))
        c.send(b"CHAT:%d\nJOIN_ID:%d\nCLIENT_NAME:liberal\nMESSAGE:  padded  \n\n" % (ref1, jid))
        c.expect(chat_frame(ref1, "liberal", "padded"), what="relay of a trimmed MESSAGE")
        d.assert_alive()


run(main)
