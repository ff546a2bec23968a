#!/usr/bin/env python3
"""58-seq-numbers: sequence numbers and HISTORY_AFTER (docs/PROTOCOL.md §7.7, issue 16).

roomd runs with a database, history 4, room lobby.
1. A connection that sent WELCOME: SEQ gets "seq=1" in LIMITS and each member's
   message as "SEQ: n\\n" then the CHAT frame, numbered 1, 2, ...; join and leave
   announcements come unnumbered. A plain CS4032 connection and one that sent
   WELCOME: 0 get exactly today's bytes (no SEQ frame, no seq=1).
2. A numbered member's attached room connection gets the numbered form too.
3. HISTORY_AFTER: SEQ n answers the kept entries numbered after n under
   HISTORY_AFTER/FIRST/LAST/COUNT; n beyond the newest: COUNT 0, FIRST LAST+1;
   a bad SEQ is error 1; a non-member is error 3.
4. After a restart (same database) the numbers go on where they stopped, and
   HISTORY_AFTER still answers the stored entries with their numbers."""
import os
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def daemon(db, port=None):
    args = ["-p", str(port)] if port else []
    return Daemon(server={"database": db}, limits={"history": 4}, rooms={"lobby": {}}, args=args)


def welcome(conn, value):
    conn.send("WELCOME: %s\n" % value)
    return conn.read_until(b"\nTEXT: ", what="WELCOME reply") + conn.read_until(b"\n")


def numbered(ref, seq, name, text):
    return b"SEQ: %d\n" % seq + chat_frame(ref, name, text)


def history_after(conn, ref, jid, name, seq):
    conn.send("HISTORY_AFTER: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\nSEQ: %s\n" % (ref, jid, name, seq))


def expect_after(conn, ref, first, last, entries):
    head = b"HISTORY_AFTER: %d\nFIRST: %d\nLAST: %d\nCOUNT: %d\n" % (ref, first, last, len(entries))
    conn.expect(head, what="HISTORY_AFTER head")
    for name, text in entries:
        f = conn.expect_frame()
        check(re.match(rb"ENTRY: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\nCLIENT_NAME: %s\nMESSAGE: %s\n\n$"
                       % (re.escape(name.encode()), re.escape(text.encode())), f.raw),
              "expected the ENTRY of %s: %s, got %s" % (name, text, show(f.raw)))


def main():
    tmp = tempfile.mkdtemp(prefix="seq-numbers-")
    db = os.path.join(tmp, "rooms.db")
    d = daemon(db).start()
    d2 = None
    try:
        a = d.connect("alice")
        check(b" seq=1\n" in welcome(a, "SEQ"), "LIMITS does not say seq=1 after WELCOME: SEQ")
        ref, aid, _, _ = a.join("lobby", "alice")
        e = d.connect("ext")
        check(b"seq=1" not in welcome(e, "0"), "WELCOME: 0 was answered seq=1")
        _, eid, _, _ = e.join("lobby", "ext")
        p = d.connect("plain")
        _, pid, _, _ = p.join("lobby", "plain")
        a.expect(join_announce(ref, "ext") + join_announce(ref, "plain"), what="joins, unnumbered")
        e.expect(join_announce(ref, "plain"))
        for i in range(1, 6):
            p.chat(ref, pid, "plain", "m%d" % i)
            a.expect(numbered(ref, i, "plain", "m%d" % i), what="numbered message %d" % i)
            e.expect(chat_frame(ref, "plain", "m%d" % i), what="unnumbered for WELCOME: 0")
            p.expect(chat_frame(ref, "plain", "m%d" % i), what="plain CS4032 bytes")
        print("live: numbered 1..5 on the SEQ connection, today's bytes on the others")

        # Attached room connection of a numbered member.
        a.send("LIST_ROOMS: 0\n")
        lst = a.read_until(b"TOPIC:", what="LIST_ROOMS") + a.read_until(b"\n")
        port = int(re.search(rb"PORT: (\d+)", lst).group(1))
        r = d.room_connect(port, "alice-room")
        r.send(attach_req(ref, aid, "alice"))
        r.expect(attached_reply(ref, aid), what="ATTACHED")
        p.chat(ref, pid, "plain", "m6")
        r.expect(numbered(ref, 6, "plain", "m6"), what="numbered on the room connection")
        p.expect(chat_frame(ref, "plain", "m6"))
        e.expect(chat_frame(ref, "plain", "m6"))
        a.expect_nothing(0.2)
        print("attached: the numbered member's room connection gets SEQ frames")

        history_after(a, ref, aid, "alice", 3)
        expect_after(a, ref, 4, 6, [("plain", "m4"), ("plain", "m5"), ("plain", "m6")])
        history_after(a, ref, aid, "alice", 0)
        expect_after(a, ref, 3, 6, [("plain", "m%d" % i) for i in range(3, 7)])
        history_after(a, ref, aid, "alice", 6)
        expect_after(a, ref, 7, 6, [])
        history_after(a, ref, aid, "alice", 99)
        expect_after(a, ref, 7, 6, [])
        history_after(a, ref, aid, "alice", "x")
        a.expect_error(1, context="HISTORY_AFTER with a bad SEQ")
        history_after(a, ref, aid + 1 if aid < 2 ** 31 - 1 else aid - 1, "alice", 0)
        a.expect_error(3, context="HISTORY_AFTER with another JOIN_ID")
        # A plain client may ask too (it is an extension request).
        history_after(p, ref, pid, "plain", 5)
        expect_after(p, ref, 6, 6, [("plain", "m6")])
        print("HISTORY_AFTER: entries after n, empty beyond the newest, errors 1 and 3")

        port_ctl = d.port
        d.stop()
        d = None
        d2 = daemon(db, port_ctl).start()
        a = d2.connect("alice")
        welcome(a, "SEQ")
        ref2, aid, _, _ = a.join("lobby", "alice")
        check(ref2 == ref, "lobby changed ref across the restart")
        history_after(a, ref, aid, "alice", 4)
        expect_after(a, ref, 5, 6, [("plain", "m5"), ("plain", "m6")])
        a.chat(ref, aid, "alice", "after the restart")
        a.expect(numbered(ref, 7, "alice", "after the restart"), what="numbering goes on at 7")
        print("restart: numbers survive, the next message is 7")
        d2.stop()
    finally:
        for x in (d, d2):
            if x:
                x.cleanup()


run(main)
