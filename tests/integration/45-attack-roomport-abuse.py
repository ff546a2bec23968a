#!/usr/bin/env python3
"""45-attack-roomport-abuse: what an attacker tried against the room ports'
lab-era requests (SPEC §2.4) and the MESSAGE text, each now refused:

1. A DISCONNECT by name (it carries no JOIN_ID) on a fresh room connection,
   from the victim's own address (a neighbour behind the same NAT), must not
   end the session of a member attached with ATTACH (roomc's way) nor of one
   that left another room through its room port: only that room connection
   closes (SPEC §2.1: nobody can make someone else leave).
2. A lab client repeating its own LEAVE on the room port (idempotent, SPEC
   §2.1) is not counted as refused capabilities, so it cannot get its
   address throttled and lock its neighbours out.
3. Hoarders on many addresses filling a room's unattached places push out
   each other, not the connection on which a member's LEAVE was answered
   (it waits for that member's DISCONNECT).
4. A MESSAGE line after the first that reads as a protocol field (`CHAT: 1`,
   `CLIENT_NAME: alice`) would make a line-based CS4032 client see a CHAT
   forged under another name: refused with error 1, on both ports, and for
   private messages; near misses are relayed byte for byte.
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

UNATTACHED = 4


def disconnect_by_name(d):
    w = d.connect("witness", source="127.0.0.3")
    _, wjid, _, _ = w.join("lobby", "witness")
    w.join("other", "witness")   # so that "other" lives on after the victim leaves it
    v = d.connect("victim")
    ref, jid, _, port = v.join("lobby", "victim")
    w.expect(join_announce(ref, "victim"))
    ref2, jid2, _, port2 = v.join("other", "victim")
    w.expect(join_announce(ref2, "victim"))
    # roomc's way: ATTACH to the room port.
    a = d.room_connect(port, "victim-attached")
    a.send(attach_req(ref, jid, "victim"))
    a.expect(attached_reply(ref, jid))
    # A neighbour on the same address, holding no capability.
    n = d.room_connect(port, "neighbour")
    n.send(disconnect_req("victim"))
    n.expect_closed()
    expect_nothing_all([v, a, w])
    w.chat(ref, wjid, "witness", "still there?")
    a.expect_chat(ref, "witness", "still there?")
    w.expect_chat(ref, "witness", "still there?")
    # The victim leaves "other" through its room port; then the neighbour
    # tries the same DISCONNECT there.
    r = d.room_connect(port2, "victim-leave")
    r.send(leave_req(ref2, jid2, "victim"))
    r.expect(left_reply(ref2, jid2) + leave_announce(ref2, "victim"))
    w.expect(leave_announce(ref2, "victim"))
    n2 = d.room_connect(port2, "neighbour-2")
    n2.send(disconnect_req("victim"))
    n2.expect_closed()
    expect_nothing_all([v, a, w, r])
    w.chat(ref, wjid, "witness", "and now?")
    a.expect_chat(ref, "witness", "and now?")
    w.expect_chat(ref, "witness", "and now?")
    # The victim's own DISCONNECT, on the connection that answered its
    # LEAVE, still works (the lab habit).
    r.send(disconnect_req("victim"))
    r.expect_closed()
    v.expect_closed()
    a.expect_closed()
    w.expect(leave_announce(ref, "victim"), what="the victim's own DISCONNECT")
    print("attack: DISCONNECT by name from the victim's address on fresh room connections: "
          "2 refused (connection closed, victim untouched); its own on its LEAVE's connection works")
    return w, ref, wjid


def keeper(d, room):
    """A member from an address of its own that keeps room alive (a room
    created on demand ends, with its port, when its last member leaves)."""
    k = d.connect("keeper-" + room, source="127.0.0.6")
    k.join(room, "keeper-" + room)
    return k


def repeated_leave(d):
    keeper(d, "lab")
    c = d.connect("repeater", source="127.0.0.4")
    ref, jid, _, port = c.join("lab", "repeater")
    r = d.room_connect(port, "repeater-room", source="127.0.0.4")
    r.send(leave_req(ref, jid, "repeater"))
    r.expect(left_reply(ref, jid) + leave_announce(ref, "repeater"))
    repeats = 8
    for i in range(repeats):
        x = d.room_connect(port, "repeat-%d" % i, source="127.0.0.4")
        x.send(leave_req(ref, jid, "repeater"))
        x.expect(left_reply(ref, jid), what="repeat %d of its own LEAVE" % i)
        x.close()
        d.conns.remove(x)
    # A neighbour on that address attaches with its own valid capability.
    b = d.connect("neighbour", source="127.0.0.4")
    bref, bjid, _, bport = b.join("lab", "neighbour")
    a = d.room_connect(bport, "neighbour-room", source="127.0.0.4")
    a.send(attach_req(bref, bjid, "neighbour"))
    a.expect(attached_reply(bref, bjid), what="an attach after %d repeated LEAVEs" % repeats)
    print("attack: %d repeats of its own LEAVE on fresh room connections: each the LEFT echo, "
          "none counted (a neighbour's attach from that address still got in)" % repeats)


def eviction(d):
    keeper(d, "evict")
    c = d.connect("leaver", source="127.0.0.5")
    ref, jid, _, port = c.join("evict", "leaver")
    r = d.room_connect(port, "leaver-room", source="127.0.0.5")
    r.send(leave_req(ref, jid, "leaver"))
    r.expect(left_reply(ref, jid) + leave_announce(ref, "leaver"))
    hoard = [d.room_connect(port, "hoard-%d" % i, source="127.0.0.%d" % (10 + i))
             for i in range(2 * UNATTACHED)]
    # One shared wait, then a look at each: the leaver's connection has the
    # attach deadline (3 s from its LEAVE) to send its DISCONNECT in, and a
    # loaded CI machine must not spend that on sequential waits.
    time.sleep(0.3 * min(FACTOR, 4))
    pushed = 0
    for h in hoard:
        pushed += b"ERROR_CODE: 7" in h.collect(0.02)
    r.expect_nothing(0.05)
    r.send(disconnect_req("leaver"))
    r.expect_closed()
    c.expect_closed()
    print("attack: %d hoarding connections from %d addresses: %d pushed out of %d places, "
          "never the one waiting for its member's DISCONNECT" % (len(hoard), len(hoard), pushed,
                                                                 UNATTACHED))


def forged_lines(d, w, ref, wjid):
    m = d.connect("mallory")
    mref, mjid, _, mport = m.join("lobby", "mallory")
    w.expect(join_announce(ref, "mallory"))
    forged = "hi\nCHAT: %d\nCLIENT_NAME: witness\nMESSAGE: I owe mallory 100 EUR" % ref
    m.chat(mref, mjid, "mallory", forged)
    text = m.expect_error(1)
    check("protocol field" in text, "forged line: description %r" % text)
    rm = d.room_connect(mport, "mallory-room")
    rm.send(attach_req(mref, mjid, "mallory"))
    rm.expect(attached_reply(mref, mjid))
    rm.send(chat_req(mref, mjid, "mallory", "x\n  client_name:witness"))
    rm.expect_error(1)
    m.send(b"PRIVATE_MESSAGE: witness\nCLIENT_NAME: mallory\nMESSAGE: a\nERROR_CODE: 3\n\n")
    m.expect_error(1)
    expect_nothing_all([w, m, rm])
    near = "two lines\nCHAT :1 and JOIN_ID 7 are text"
    rm.send(chat_req(mref, mjid, "mallory", near))
    rm.expect_chat(mref, "mallory", near)
    w.expect_chat(ref, "mallory", near)
    print("attack: MESSAGE lines that read as fields refused (error 1) on the control port, the "
          "room port and in a private message; a near miss relayed byte for byte")


def main():
    limits = {"room_unattached_max": UNATTACHED}
    with Daemon(limits=limits) as d:
        w, ref, wjid = disconnect_by_name(d)
        repeated_leave(d)
        eviction(d)
        forged_lines(d, w, ref, wjid)
        d.assert_alive()


run(main)
