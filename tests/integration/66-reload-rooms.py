#!/usr/bin/env python3
"""66-reload-rooms: a SIGHUP reload adds, removes and changes predefined
rooms without dropping a member. A topic changed in the file is set and
announced to the room as a SET_TOPIC is (a CHAT from the server id), and
LIST_ROOMS shows it; a room added is opened with the file's ref; a room
removed while members are in it stays open for them, they are told with a
notice, they can still chat, and the room closes when the last has left
(the rule in docs/OPERATIONS.md, "Reloading"); a room removed while empty
closes at once. With room_creation off, a closed room cannot be joined."""
import os
import re
import signal
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

import time  # noqa: E402

REMOVED = b"This room was removed from the server's configuration: it closes when its last member leaves."




def room_names(c):
    """LIST_ROOMS: {name: (ref, topic)}."""
    c.send(b"LIST_ROOMS: 0\n")
    head = c.read_until(b"\n", what="ROOMS") + c.read_until(b"\n", what="TOTAL")
    m = re.match(rb"\AROOMS: (\d+)\nTOTAL: \d+\n\Z", head)
    check(m, "bad LIST_ROOMS head %s" % show(head))
    out = {}
    for _ in range(int(m.group(1))):
        e = b"".join(c.read_until(b"\n", what="entry") for _ in range(5))
        r = re.match(rb"\AROOM: (.*)\nROOM_REF: (\d+)\nPORT: \d+\nMEMBERS: \d+\nTOPIC: (.*)\n\Z", e)
        check(r, "bad LIST_ROOMS entry %s" % show(e))
        out[r.group(1).decode()] = (int(r.group(2)), r.group(3).decode())
    return out


def main():
    rooms = [("lobby", {"ref": 1, "topic": "Old topic"}), ("gone", {"ref": 2}), ("empty", {"ref": 3})]
    with Daemon(rooms=rooms, features={"room_creation": False}) as d:
        a = d.connect("alice")
        b = d.connect("bob")
        ref1, ida, _, _ = a.join("lobby", "alice")
        _, idb, _, _ = b.join("lobby", "bob")
        a.expect(join_announce(ref1, "bob"))
        ref2, idg, _, _ = b.join("gone", "bob")
        check(ref2 == 2, "gone has ref %d" % ref2)

        d.rooms = [("lobby", {"ref": 1, "topic": "New topic"}), ("fresh", {"ref": 7})]
        text = d.reload("changes applied")
        for needle in ("[room:lobby] applied topic New topic (was Old topic)", "[room:gone] removed",
                       "[room:empty] removed", "[room:fresh] added",
                       "room gone removed from the config: it closes when its 1 member has left",
                       "room empty removed from the config: closed",
                       "room fresh added to the config: opened"):
            check(needle in text, "the reload log lacks %r:\n%s" % (needle, text))
        note = chat_frame(ref1, "test-id", "the server set the topic: New topic")
        a.expect(note)
        b.expect_unordered([note, chat_frame(ref2, "test-id", REMOVED)])
        expect_nothing_all((a, b))
        listed = room_names(a)
        check(listed.get("lobby") == (1, "New topic"), "LIST_ROOMS lobby: %s" % listed)
        check(listed.get("fresh") == (7, ""), "LIST_ROOMS fresh: %s" % listed)
        check("gone" in listed and "empty" not in listed, "LIST_ROOMS: %s" % listed)
        print("reload-rooms: topic announced and listed, fresh opened with ref 7, empty closed, "
              "gone told and kept for its member")

        # The added room takes members; the removed one still carries chat.
        c = d.connect("carol")
        ref7, _, _, _ = c.join("fresh", "carol")
        check(ref7 == 7, "fresh joined with ref %d" % ref7)
        b.chat(ref2, idg, "bob", "still here")
        b.expect_chat(ref2, "bob", "still here")
        # Its last member leaves: the room closes, and cannot be joined.
        b.leave(ref2, idg, "bob")
        d.wait_log("room gone closed")
        listed = room_names(a)
        check("gone" not in listed, "gone still listed after its last member left: %s" % listed)
        e = d.connect("eve")
        e.send(join_req("gone", "eve"))
        e.expect_error(10, context="JOIN of a removed room with room_creation off")
        for x in (a, b, c):
            x.ping()
        a.chat(ref1, ida, "alice", "after")
        a.expect_chat(ref1, "alice", "after")
        b.expect_chat(ref1, "alice", "after")
        print("reload-rooms: fresh joined; gone closed after its last member left, then refused")


run(main)
