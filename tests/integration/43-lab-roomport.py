#!/usr/bin/env python3
"""43-lab-roomport: room ports speak the member's requests (issue 11, SPEC §2.4).

Lab-era CS4032 clients send every request after the JOIN to the JOINED
reply's SERVER_IP/PORT (the room port), without any ATTACH. Two habits:

  per-request  a new room connection for every request (HELO, CHAT, LEAVE,
               DISCONNECT), each closed after its answer;
  reused       one room connection for all of them (run twice: well-formed
               requests, and the lab habit of no final newline).

Each runs through JOIN (control port), a message relayed to a second member,
LEAVE and DISCONNECT, exact bytes asserted on every connection: after the
first room-port CHAT the room's traffic arrives on the room connection and
never also on the control connection; LEAVE answers LEFT_CHATROOM and the
leaver's own announcement there; DISCONNECT on the connection that carried
the member's JOIN_ID closes the control connection (the others see the
leave once) and the room connection; on a fresh one it closes that room
connection only (a name is not a capability). Then the capability
rules: from another address (127.0.0.2) a valid id is refused (CHAT: error 3,
closed; LEAVE: the same LEFT echo as an unknown id, counted; after 5 refusals
error 9, closed) and changes nothing; HELO on the room port names the room
port; JOIN_CHATROOM there names the control port."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

CAP_BURST = 5  # server/iptable.h IPTABLE_CAP_BURST
ROOM = "lab room"


def joined(d, label, name, peers):
    """A member joined over the control port; the peers see it."""
    c = d.connect(label)
    ref, jid, _, port = c.join(ROOM, name)
    for p in peers:
        p.expect(join_announce(ref, name), what="%s sees %s join" % (p.label, name))
    return c, ref, jid, port


def per_request(d, peer, pjid):
    c, ref, jid, port = joined(d, "per-request", "lab one", [peer])

    # HELO on the room port: answered with that port; it attaches nothing.
    h = d.room_connect(port, "per-request-helo")
    h.send(helo_req("lab"))
    h.expect(helo_reply("lab", port), what="HELO reply on the room port")
    peer.chat(ref, pjid, "peer", "before any room request")
    c.expect_chat(ref, "peer", "before any room request")
    peer.expect_chat(ref, "peer", "before any room request")
    h.expect_nothing()
    h.close()

    # CHAT on a new connection: relayed; from then on the room's traffic
    # comes on that connection, exactly once.
    t0 = time.monotonic()
    r1 = d.room_connect(port, "per-request-chat")
    r1.send(chat_req(ref, jid, "lab one", "hello from the room port"))
    r1.expect(chat_frame(ref, "lab one", "hello from the room port"), what="own CHAT copy")
    took = time.monotonic() - t0
    peer.expect(chat_frame(ref, "lab one", "hello from the room port"), what="relay to the peer")
    peer.chat(ref, pjid, "peer", "hi lab one")
    r1.expect_chat(ref, "peer", "hi lab one")
    peer.expect_chat(ref, "peer", "hi lab one")
    c.expect_nothing()
    r1.expect_nothing()
    # The client closes it: its traffic goes back to the control connection.
    r1.close()
    d.conns.remove(r1)
    time.sleep(0.2 * FACTOR)
    peer.chat(ref, pjid, "peer", "back on control")
    c.expect_chat(ref, "peer", "back on control")
    peer.expect_chat(ref, "peer", "back on control")

    # LEAVE on a new connection: LEFT and the own announcement there.
    r2 = d.room_connect(port, "per-request-leave")
    r2.send(leave_req(ref, jid, "lab one"))
    r2.expect(left_reply(ref, jid) + leave_announce(ref, "lab one"), what="LEFT + own leave announcement")
    peer.expect(leave_announce(ref, "lab one"), what="the peer sees the leave")
    peer.chat(ref, pjid, "peer", "after the leave")
    peer.expect_chat(ref, "peer", "after the leave")
    expect_nothing_all([c, r2])
    r2.close()
    d.conns.remove(r2)

    # DISCONNECT on a new connection (no JOIN_ID, and a connection that
    # never showed it): a name is not a capability, so only that room
    # connection closes, nothing sent; the control connection ends when
    # the client exits (an abrupt close is a disconnect).
    r3 = d.room_connect(port, "per-request-disconnect")
    r3.send(disconnect_req("lab one"))
    r3.expect_closed()
    c.expect_nothing()
    c.close()
    d.conns.remove(c)
    peer.expect_nothing()
    print("lab per-request client: own CHAT back on a new room connection after %.3f s; "
          "HELO, CHAT, LEAVE, DISCONNECT each on its own connection" % took)


def reused(d, peer, pjid, label, name, cut):
    """cut: bytes cut off the end of each request (1: no final newline)."""
    c, ref, jid, port = joined(d, label, name, [peer])
    r = d.room_connect(port, label + "-room")

    def req(b, chat=False):
        return b[:len(b) - cut - (1 if chat and cut else 0)]
    t0 = time.monotonic()
    r.send(req(chat_req(ref, jid, name, "one connection for all"), chat=True))
    r.expect(chat_frame(ref, name, "one connection for all"), what="own CHAT copy")
    took = time.monotonic() - t0
    peer.expect_chat(ref, name, "one connection for all")
    for i in range(3):
        peer.chat(ref, pjid, "peer", "to %s %d" % (name, i))
        peer.expect_chat(ref, "peer", "to %s %d" % (name, i))
    for i in range(3):
        r.expect_chat(ref, "peer", "to %s %d" % (name, i))
    c.expect_nothing()
    r.expect_nothing()

    r.send(req(leave_req(ref, jid, name)))
    r.expect(left_reply(ref, jid) + leave_announce(ref, name), what="LEFT + own leave announcement")
    peer.expect(leave_announce(ref, name))
    peer.chat(ref, pjid, "peer", "after %s left" % name)
    peer.expect_chat(ref, "peer", "after %s left" % name)
    expect_nothing_all([c, r])

    r.send(req(disconnect_req(name)))
    r.expect_closed()
    c.expect_closed()
    peer.expect_nothing()
    print("lab reused-connection client (%s): own CHAT after %.3f s; CHAT, LEAVE, DISCONNECT on "
          "one room connection" % (label, took))


def no_leave(d, peer, pjid):
    """A client that disconnects without leaving. Its DISCONNECT (no
    JOIN_ID) on a fresh room connection, from its own address, closes that
    connection only: a name is not a capability, and a neighbour behind the
    same address must not end the session. On the connection that carries
    its JOIN_ID (attached by its CHAT), it closes the control connection."""
    c, ref, jid, port = joined(d, "no-leave", "lab four", [peer])
    r = d.room_connect(port, "no-leave-chat")
    r.send(chat_req(ref, jid, "lab four", "bye soon"))
    r.expect_chat(ref, "lab four", "bye soon")
    peer.expect_chat(ref, "lab four", "bye soon")
    r2 = d.room_connect(port, "no-leave-disconnect")
    r2.send(disconnect_req("lab four"))
    r2.expect_closed()
    expect_nothing_all([c, r, peer])
    r.send(disconnect_req("lab four"))
    r.expect_closed()
    c.expect_closed()
    peer.expect(leave_announce(ref, "lab four"), what="the peer sees the disconnect once")
    peer.expect_nothing()
    print("lab client without LEAVE: DISCONNECT by name on a fresh room connection closed only "
          "that connection; on its attached one, its control connection")


def capability_rules(d, peer, pref, pjid):
    c, ref, jid, port = joined(d, "victim", "victim", [peer])
    never = 2147480000
    while never in (jid, pjid):
        never += 1

    # JOIN on a room port: error 1 naming the control port.
    j = d.room_connect(port, "join-on-room-port")
    j.send(join_req(ROOM, "someone"))
    text = j.expect_error(1)
    check(text == "JOIN_CHATROOM goes to the control port %d" % d.port,
          "JOIN on the room port: description %r" % text)
    j.expect_nothing()
    j.close()
    d.conns.remove(j)

    # The right capability from another address: refused, counted.
    x = d.room_connect(port, "other-address-chat", source="127.0.0.2")
    x.send(chat_req(ref, jid, "victim", "not the victim"))
    x.expect_error(3, context="CHAT with the victim's id from 127.0.0.2")
    x.expect_closed()
    peer.expect_nothing()
    # LEAVE: the same LEFT echo for a live id (right name, wrong address),
    # an id never issued, and a wrong name; no announcement, nothing ends.
    x = d.room_connect(port, "other-address-leave", source="127.0.0.2")
    probes = [(ref, jid, "victim"), (ref, never, "victim"), (ref, jid, "nobody"), (pref, pjid, "peer")]
    # (Each echo is read as exact bytes, so an announcement after one would
    # fail the next; all within the 3 s attach deadline of x.)
    for (pr, pj, pn) in probes:
        x.send(leave_req(pr, pj, pn))
        x.expect(left_reply(pr, pj), what="LEFT echo for %d/%s" % (pj, pn))
    # One more refusal than the burst: throttled, even the right id.
    x.send(leave_req(ref, jid, "victim"))
    x.expect_error(9, context="LEAVE from a throttled address")
    x.expect_closed()
    # DISCONNECT by the victim's name from another address: that room
    # connection closes, nothing else.
    y = d.room_connect(port, "other-address-disconnect", source="127.0.0.2")
    y.send(disconnect_req("victim"))
    y.expect_closed()
    refused = 1 + len(probes)
    check(refused == CAP_BURST, "test expects %d refusals before the throttle, made %d" % (CAP_BURST, refused))
    # Nothing changed: the victim is still a member, served on control.
    peer.chat(ref, pjid, "peer", "still there?")
    c.expect_chat(ref, "peer", "still there?")
    peer.expect_chat(ref, "peer", "still there?")
    c.ping()
    # The member itself, from its own address, is not throttled.
    r = d.room_connect(port, "victim-room")
    r.send(chat_req(ref, jid, "victim", "still here"))
    r.expect_chat(ref, "victim", "still here")
    peer.expect_chat(ref, "victim", "still here")
    c.expect_nothing()
    # An attached connection answers another id with the echo, no lookup.
    r.send(leave_req(ref, never, "victim"))
    r.expect(left_reply(ref, never))
    c.leave(ref, jid, "victim")  # on control: the room connection closes
    peer.expect(leave_announce(ref, "victim"))
    r.expect_closed()
    print("capability rules: from 127.0.0.2, CHAT with a valid id refused (3, closed), LEAVE "
          "with live, dead and misnamed ids: %d identical LEFT echoes, then error 9 after %d "
          "refusals" % (len(probes), refused))


def main():
    with Daemon() as d:
        peer = d.connect("peer")
        pref, pjid, _, _ = peer.join(ROOM, "peer")
        per_request(d, peer, pjid)
        reused(d, peer, pjid, "reused", "lab two", 0)
        reused(d, peer, pjid, "reused-no-newline", "lab three", 1)
        no_leave(d, peer, pjid)
        capability_rules(d, peer, pref, pjid)
        peer.ping()
        d.assert_alive()


run(main)
