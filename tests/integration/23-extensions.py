#!/usr/bin/env python3
"""23-extensions: the lobby requests beyond CS4032 (docs/PROTOCOL.md,
"Extensions"): WELCOME, LIST_ROOMS, LIST_MEMBERS, PRIVATE_MESSAGE and
SET_TOPIC, exact bytes and every error, the connection usable after each."""
import os
import re
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def read_list(c, head_re, entry_prefix, entry_lines):
    """A head frame with a count, then that many entry frames: (head match,
    [entry bytes])."""
    head = c.read_until(b"\n", what="a list head")
    if head.startswith(b"MEMBERS:") or head.startswith(b"ROOMS:"):
        head += c.read_until(b"\n", what="the COUNT line")
    m = re.match(head_re, head)
    check(m, "%s: bad list head %s" % (c.label, show(head)))
    entries = []
    for _ in range(int(m.group(1))):
        e = b""
        for _ in range(entry_lines):
            e += c.read_until(b"\n", what="a list entry")
        check(e.startswith(entry_prefix), "%s: bad list entry %s" % (c.label, show(e)))
        entries.append(e)
    return m, entries


def welcome(d):
    c = d.connect("welcome")
    c.send(b"WELCOME: 0\n")
    c.expect(b"WELCOME: test-id\nVERSION: roomd 0.1.0\nLIMITS: max_name=32 max_message=4096"
             b" max_rooms_per_client=32 history=50 rate=200 burst=400\nTEXT: Hi there, be nice.\n")
    c.ping()


def list_rooms(d, a, ref_new):
    a.send(b"LIST_ROOMS: 0\n")
    _, rooms = read_list(a, rb"\AROOMS: (\d+)\nTOTAL: 3\n\Z", b"ROOM: ", 5)
    check(len(rooms) == 3, "LIST_ROOMS: expected 3 rooms, got %s" % rooms)
    check(re.match(rb"\AROOM: lobby\nROOM_REF: 1\nPORT: [1-9]\d*\nMEMBERS: 2\nTOPIC: Say hi\n\Z", rooms[0]),
          "LIST_ROOMS lobby entry: %s" % show(rooms[0]))
    check(re.match(rb"\AROOM: locked\nROOM_REF: 2\nPORT: [1-9]\d*\nMEMBERS: 1\nTOPIC: Fixed\n\Z", rooms[1]),
          "LIST_ROOMS locked entry: %s" % show(rooms[1]))
    check(re.match(rb"\AROOM: fresh\nROOM_REF: %d\nPORT: [1-9]\d*\nMEMBERS: 1\nTOPIC: \n\Z" % ref_new,
                   rooms[2]), "LIST_ROOMS on-demand entry: %s" % show(rooms[2]))
    # Paged (options in the value, the request still one line), dormant
    # rooms on request, bad options refused.
    a.send(b"LIST_ROOMS: OFFSET=1 LIMIT=1\n")
    _, page = read_list(a, rb"\AROOMS: (1)\nTOTAL: 3\n\Z", b"ROOM: ", 5)
    check(page == rooms[1:2], "LIST_ROOMS OFFSET=1 LIMIT=1: %s" % page)
    a.send(b"LIST_ROOMS: limit=0\n")
    read_list(a, rb"\AROOMS: (0)\nTOTAL: 3\n\Z", b"ROOM: ", 5)
    a.send(b"LIST_ROOMS: OFFSET=3\n")
    read_list(a, rb"\AROOMS: (0)\nTOTAL: 3\n\Z", b"ROOM: ", 5)
    a.send(b"LIST_ROOMS: DORMANT=1\n")
    read_list(a, rb"\AROOMS: (0)\nTOTAL: 0\n\Z", b"ROOM: ", 5)
    for bad in (b"OFFSET=-1", b"LIMIT=x", b"DORMANT=2", b"PAGE=2", b"OFFSET=1 junk"):
        a.send(b"LIST_ROOMS: " + bad + b"\n")
        a.expect_error(1, context="LIST_ROOMS: %s" % bad.decode())
    a.ping()


def list_members(a):
    a.send(b"LIST_MEMBERS: 1\n")
    _, members = read_list(a, rb"\AMEMBERS: 1\nCOUNT: (\d+)\n\Z", b"MEMBER: ", 1)
    check(sorted(members) == [b"MEMBER: alice\n", b"MEMBER: bob\n"], "LIST_MEMBERS: %s" % members)
    a.send(b"LIST_MEMBERS: 999\n")
    a.expect_error(2, context="LIST_MEMBERS of an unknown room")
    a.send(b"LIST_MEMBERS: x\n")
    a.expect_error(1, context="LIST_MEMBERS with a bad ref")
    a.ping()


def private(d, a, b, plain):
    a.send(b"PRIVATE_MESSAGE: bob\nCLIENT_NAME: alice\nMESSAGE: just us\n\n")
    b.expect(b"PRIVATE_FROM: alice\nMESSAGE: just us\n\n")
    a.expect(b"PRIVATE_SENT: bob\nCOUNT: 1\n")
    # A plain CS4032 client is never sent an extension frame: it does not
    # count as reachable.
    a.send(b"PRIVATE_MESSAGE: carol\nCLIENT_NAME: alice\nMESSAGE: hi carol\n\n")
    a.expect_error(2, context="PRIVATE_MESSAGE to a client that never used an extension")
    plain.expect_nothing()
    a.send(b"PRIVATE_MESSAGE: nobody\nCLIENT_NAME: alice\nMESSAGE: hello?\n\n")
    a.expect_error(2, context="PRIVATE_MESSAGE to an unknown name")
    a.send(b"PRIVATE_MESSAGE: bob\nCLIENT_NAME: mallory\nMESSAGE: it's me\n\n")
    a.expect_error(3, context="PRIVATE_MESSAGE under a name this connection does not hold")
    a.send(b"PRIVATE_MESSAGE: b/o/b\nCLIENT_NAME: alice\nMESSAGE: x\n\n")
    a.expect_error(4, context="PRIVATE_MESSAGE to an invalid name")
    a.send(b"PRIVATE_MESSAGE: bob\nCLIENT_NAME: alice\nMESSAGE: " + b"x" * 5000 + b"\n\n")
    a.expect_error(8, context="PRIVATE_MESSAGE over max_message")
    b.expect_nothing()
    # Names are server wide (SPEC 2.1): nobody else can be bob, so a
    # private message to bob reaches bob's connection only.
    b2 = d.connect("bob2")
    b2.send(b"WELCOME: 0\n")
    b2.expect_frame()
    b2.send(join_req("fresh2", "bob"))
    b2.expect_error(5, context="JOIN as bob from another connection, in another room")
    a.send(b"PRIVATE_MESSAGE: bob\nCLIENT_NAME: alice\nMESSAGE: only you\n\n")
    b.expect(b"PRIVATE_FROM: alice\nMESSAGE: only you\n\n")
    a.expect(b"PRIVATE_SENT: bob\nCOUNT: 1\n")
    b2.expect_nothing(0.05)
    b.expect_nothing(0.05)


def topics(a, b, plain, ref1, id1, ref2, id2):
    a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\nTOPIC: Lunch at noon\n" % (ref1, id1))
    a.expect(b"TOPIC_SET: %d\nTOPIC: Lunch at noon\n" % ref1)
    note = chat_frame(ref1, "test-id", "alice set the topic: Lunch at noon")
    for c in (a, b):
        c.expect(note)
    a.send(b"LIST_ROOMS: 0\n")
    _, rooms = read_list(a, rb"\AROOMS: (\d+)\nTOTAL: \d+\n\Z", b"ROOM: ", 5)
    check(rooms[0].endswith(b"TOPIC: Lunch at noon\n"), "topic not listed: %s" % show(rooms[0]))
    a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\nTOPIC: mine now\n" % (ref2, id2))
    a.expect_error(10, context="SET_TOPIC in a room whose topic is fixed")
    b.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\nTOPIC: hijack\n" % (ref1, id1))
    b.expect_error(3, context="SET_TOPIC with another connection's JOIN_ID")
    a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\nTOPIC: %s\n" % (ref1, id1, b"t" * 300))
    a.expect_error(8, context="SET_TOPIC over 256 bytes")
    expect_nothing_all((a, b))
    a.ping()


def main():
    rooms = {"lobby": {"ref": 1, "topic": "Say hi"},
             "locked": {"ref": 2, "topic": "Fixed", "topic_change": "false"}}
    with Daemon(server={"welcome": "Hi there, be nice."}, rooms=rooms) as d:
        welcome(d)
        a = d.connect("alice")
        b = d.connect("bob")
        plain = d.connect("carol")
        for c in (a, b):
            c.send(b"WELCOME: 0\n")
            c.expect_frame()
        ref1, id1, _, _ = a.join("lobby", "alice")
        b.join("lobby", "bob")
        a.expect(join_announce(ref1, "bob"))
        ref2, id2, _, _ = a.join("locked", "alice")
        ref_new, _, _, _ = plain.join("fresh", "carol")
        list_rooms(d, a, ref_new)
        list_members(a)
        private(d, a, b, plain)
        topics(a, b, plain, ref1, id1, ref2, id2)
        d.assert_alive()


run(main)
