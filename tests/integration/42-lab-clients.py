#!/usr/bin/env python3
"""42-lab-clients: the "lab clients" group (issue 11, SPEC §2.4).

Small clients of our own, each with one habit of the public lab-era CS4032
clients that roomd must serve unchanged:

  no-newline   the last line of every request has no "\\n" at all;
  no-blank     a CHAT ends after its MESSAGE line, with no blank line;
  spaces       room and client names with inner spaces ("chatroom 1");
  client-ip    "CLIENT IP:" (misspelled, empty) in the JOIN, no PORT in
               the DISCONNECT;
  unknown      an unknown field inside every request.

Each is run through JOIN, a message relayed to a second member (a plain,
well-formed client), LEAVE and DISCONNECT, with exact bytes asserted on both
sides. A request that waits for the quiet period (end_quiet_ms, 250 ms by
default) is answered after it and well before request_timeout; the figure
is printed. The spaces client also checks that LIST_ROOMS, LIST_MEMBERS,
HISTORY and the database carry its names through a restart."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

END_QUIET = 0.25


def joined_ids(c, room):
    """Read the JOINED reply (exact form) for room: (ref, join_id)."""
    f = c.expect_frame()
    m = re.match(JOINED_RE_TMPL % re.escape(room.encode()), f.raw)
    check(m, "%s: JOINED reply not exact: %s" % (c.label, show(f.raw)))
    return int(m.group(2)), int(m.group(3))


class Habit:
    """How one lab client writes its four requests."""

    def join(self, room, name):
        return join_req(room, name)

    def chat(self, ref, jid, name, text):
        return chat_req(ref, jid, name, text)

    def leave(self, ref, jid, name):
        return leave_req(ref, jid, name)

    def disconnect(self, name):
        return disconnect_req(name)


class NoNewline(Habit):
    """Nothing after the last line: not even its "\\n"."""

    def join(self, room, name):
        return join_req(room, name)[:-1]

    def chat(self, ref, jid, name, text):
        return chat_req(ref, jid, name, text)[:-2]

    def leave(self, ref, jid, name):
        return leave_req(ref, jid, name)[:-1]

    def disconnect(self, name):
        return disconnect_req(name)[:-1]


class NoBlank(Habit):
    """CHAT ends with its MESSAGE line's "\\n"."""

    def chat(self, ref, jid, name, text):
        return chat_req(ref, jid, name, text)[:-1]


class ClientIp(Habit):
    """The misspelled key of several public clients, empty, and no PORT."""

    def join(self, room, name):
        return b"JOIN_CHATROOM: %s\nCLIENT IP: \nPORT: 0\nCLIENT_NAME: %s\n" % (room.encode(), name.encode())

    def disconnect(self, name):
        return b"DISCONNECT: 0\nCLIENT_NAME: %s\n" % name.encode()


class Unknown(Habit):
    """One field roomd does not know in each request, before its last line."""

    X = b"X_CLIENT_VERSION: lab-bot 0.1\n"

    def join(self, room, name):
        return b"JOIN_CHATROOM: %s\n%sCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: %s\n" % (room.encode(), self.X, name.encode())

    def chat(self, ref, jid, name, text):
        return b"CHAT: %d\nJOIN_ID: %d\n%sCLIENT_NAME: %s\nMESSAGE: %s\n\n" % (ref, jid, self.X, name.encode(), text.encode())

    def leave(self, ref, jid, name):
        return b"LEAVE_CHATROOM: %d\n%sJOIN_ID: %d\nCLIENT_NAME: %s\n" % (ref, self.X, jid, name.encode())

    def disconnect(self, name):
        return b"DISCONNECT: 0\nPORT: 0\n%sCLIENT_NAME: %s\n" % (self.X, name.encode())


def timed_expect(c, data, what, waits):
    """Expect exact bytes; returns the seconds it took. waits: whether the
    request needed the quiet period (then it must take about END_QUIET)."""
    t0 = time.monotonic()
    c.expect(data, what=what)
    took = time.monotonic() - t0
    if waits:
        check(took >= END_QUIET * 0.8, "%s: answered after %.3f s, before the quiet period" % (what, took))
    check(took < 1 + TIMEOUT, "%s: answered after %.3f s" % (what, took))
    return took


def lab_client(d, habit, label, room, name, peer_name, waits):
    """Run one lab client through its session next to a plain peer."""
    peer = d.connect(label + "-peer")
    pref, pjid, _, _ = peer.join(room, peer_name)
    c = d.connect(label)
    t0 = time.monotonic()
    c.send(habit.join(room, name))
    ref, jid = joined_ids(c, room)
    took_join = time.monotonic() - t0
    check(ref == pref, "%s: ROOM_REF %d, the peer has %d" % (label, ref, pref))
    c.expect(join_announce(ref, name), what="own join announcement")
    peer.expect(join_announce(ref, name), what="peer sees the join")

    # A message relayed to the second member, and the peer's answer back.
    text = "hello from %s" % label
    c.send(habit.chat(ref, jid, name, text))
    took_chat = timed_expect(c, chat_frame(ref, name, text), "own CHAT copy", waits["chat"])
    peer.expect(chat_frame(ref, name, text), what="relay to the peer")
    peer.chat(ref, pjid, peer_name, "hi " + name)
    c.expect(chat_frame(ref, peer_name, "hi " + name), what="peer's answer")
    peer.expect(chat_frame(ref, peer_name, "hi " + name))

    # The next request after the CHAT is a request, not message text.
    c.send(habit.leave(ref, jid, name))
    timed_expect(c, left_reply(ref, jid), "LEFT reply", waits["leave"])
    c.expect(leave_announce(ref, name), what="own leave announcement")
    peer.expect(leave_announce(ref, name), what="peer sees the leave")

    c.send(habit.disconnect(name))
    c.expect_closed()
    peer.expect_nothing()
    peer.leave(pref, pjid, peer_name)
    print("lab client %s: JOINED after %.3f s, own CHAT after %.3f s" % (label, took_join, took_chat))
    return took_join, took_chat


def names_carried(d, c_label="spaces-check"):
    """Names with spaces through LIST_ROOMS, LIST_MEMBERS, HISTORY."""
    c = d.connect(c_label)
    ref, jid, _, _ = c.join("chatroom 1", "I AM A BOT")
    c.chat(ref, jid, "I AM A BOT", "beep boop")
    c.expect_chat(ref, "I AM A BOT", "beep boop")
    rooms = [r for r in list_rooms(c) if r[0] == "chatroom 1"]
    check(len(rooms) == 1 and rooms[0][1] == ref and rooms[0][3] == 1,
          "LIST_ROOMS does not carry 'chatroom 1' (ref %d, 1 member): %s" % (ref, rooms))
    c.send(b"LIST_MEMBERS: %d\n" % ref)
    c.expect(b"MEMBERS: %d\nCOUNT: 1\nMEMBER: I AM A BOT\n" % ref, what="LIST_MEMBERS with a spaced name")
    hist = history_of(c, ref, jid, "I AM A BOT")
    check(("I AM A BOT", "beep boop") in hist, "HISTORY lost the spaced name: %s" % hist)
    return c, ref, jid


def roomc_names(d, c, ref):
    """roomc takes spaced names in double quotes and prints them quoted."""
    with Roomc(d.port, "Client 2") as rc:
        rc.write('join "chatroom 1"\nsend "chatroom 1" hi there\nwho "chatroom 1"\n'
                 'leave_chatroom "chatroom 1"\nquit\n')
        rc.close_stdin()
        code = rc.wait(timeout=10 * FACTOR)
        check(code == 0, "roomc exited with %s: %s %s" % (code, show(rc.out), show(rc.err)))
        out = rc.text()
        for want in ('joined "chatroom 1" (ref %d, port ' % ref,
                     '["chatroom 1"] "Client 2": Client 2 has joined this chatroom.',
                     '["chatroom 1"] "Client 2": hi there',
                     'members of "chatroom 1": 3', '  "Client 2"', '  "I AM A BOT"',
                     'left "chatroom 1"'):
            check(want in out, "roomc output lacks %r:\n%s" % (want, out))
    c.expect(join_announce(ref, "Client 2"))
    c.expect_chat(ref, "Client 2", "hi there")
    c.expect(leave_announce(ref, "Client 2"))
    print("roomc: quoted names typed and shown")


def main():
    with DataDir() as dd:
        db = dd.file("lab.db")
        with Daemon(server={"database": db}) as d:
            lab_client(d, NoNewline(), "no-newline", "room1", "nonl", "peer1",
                       {"chat": True, "leave": True})
            lab_client(d, NoBlank(), "no-blank", "room2", "noblank", "peer2",
                       {"chat": True, "leave": False})
            lab_client(d, Habit(), "spaces", "chatroom 1", "Client 1", "mad max 21",
                       {"chat": False, "leave": False})
            lab_client(d, ClientIp(), "client-ip", "room3", "clientip", "peer3",
                       {"chat": False, "leave": False})
            lab_client(d, Unknown(), "unknown", "room4", "unknown", "peer4",
                       {"chat": False, "leave": False})
            c, ref, jid = names_carried(d)
            # Outer spaces are trimmed by the wire; a control byte is refused.
            e = d.connect("edges")
            e.send(b"JOIN_CHATROOM:   chatroom 1  \nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME:  edge case \n")
            r2, _ = joined_ids(e, "chatroom 1")
            check(r2 == ref, "trimmed 'chatroom 1' is another room: %d vs %d" % (r2, ref))
            e.expect(join_announce(ref, "edge case"))
            c.expect(join_announce(ref, "edge case"))
            e.send(join_req("chatroom\x011", "edge"))
            e.expect_error(4, context="room name with a control byte")
            d.assert_alive()
            roomc_names(d, c, ref)
        # The store keeps the names: after a restart, the same ref and history.
        with Daemon(server={"database": db}) as d:
            c = d.connect("after-restart")
            rooms = [r for r in list_rooms(c, b"DORMANT=1") if r[0] == "chatroom 1"]
            check(len(rooms) == 1 and rooms[0][1] == ref,
                  "after a restart, 'chatroom 1' is not listed with ref %d: %s" % (ref, rooms))
            r3, jid3, _, _ = c.join("chatroom 1", "I AM A BOT")
            check(r3 == ref, "'chatroom 1' changed ref across a restart")
            hist = history_of(c, ref, jid3, "I AM A BOT")
            check(("I AM A BOT", "beep boop") in hist and ("Client 1", "hello from spaces") in hist,
                  "history after a restart lost the spaced names: %s" % hist)
            print("names with spaces: LIST_ROOMS, LIST_MEMBERS, HISTORY and the store carry them "
                  "(%d history entries after the restart)" % len(hist))


run(main)
