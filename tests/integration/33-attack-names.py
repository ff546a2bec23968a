#!/usr/bin/env python3
"""33-attack-names (issue 10, attack 7): private-message spoofing through
per-room names. Names are server wide (SPEC 2.1): a second connection cannot
take "alice" in a room of its own (error 5, and no room is opened for it),
so a private message from alice comes only from alice's connection and one
to alice reaches only alice's connection. The holder may use its name in
many rooms. With name_scope = room the classic per-room rule returns, and a
private message to or from a name several connections hold is refused with
error 5. Exact bytes."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

NAME_IN_USE = b"ERROR_CODE: 5\nERROR_DESCRIPTION: name already in use in that room\n"


def opt_in(c):
    c.send(b"WELCOME: 0\n")
    f = c.expect_frame()
    check(f.kind == "WELCOME", "%s: WELCOME: %s" % (c.label, show(f.raw)))


def pm(frm, to, text):
    return b"PRIVATE_MESSAGE: %s\nCLIENT_NAME: %s\nMESSAGE: %s\n\n" % (to.encode(), frm.encode(),
                                                                       text.encode())


def server_scope():
    with Daemon() as d:
        alice = d.connect("alice")
        bob = d.connect("bob")
        mallory = d.connect("mallory")
        for c in (alice, bob, mallory):
            opt_in(c)
        ref, _, _, _ = alice.join("lobby", "alice")
        bob.join("lobby", "bob")
        alice.expect(join_announce(ref, "bob"))
        # The attack: mallory takes "alice" (and "bob") in a room of her own.
        for name in ("alice", "bob"):
            mallory.send(join_req("mallory-den", name))
            mallory.expect(NAME_IN_USE, what="JOIN mallory-den as %s from another connection" % name)
        mallory.send(join_req("lobby", "alice"))
        mallory.expect(NAME_IN_USE, what="JOIN lobby as alice from another connection")
        check(all(r[0] != "mallory-den" for r in list_rooms(mallory)),
              "a room was opened for a refused JOIN")
        # So she cannot speak as alice...
        mallory.join("mallory-den", "mallory")
        mallory.send(pm("alice", "bob", "it is me, alice"))
        mallory.expect_error(3, context="PRIVATE_MESSAGE under a name another connection holds")
        bob.expect_nothing()
        # ...nor receive bob's mail; alice's private message reaches bob only.
        alice.send(pm("alice", "bob", "lunch?"))
        bob.expect(b"PRIVATE_FROM: alice\nMESSAGE: lunch?\n\n")
        alice.expect(b"PRIVATE_SENT: bob\nCOUNT: 1\n")
        bob.send(pm("bob", "alice", "yes"))
        alice.expect(b"PRIVATE_FROM: bob\nMESSAGE: yes\n\n")
        bob.expect(b"PRIVATE_SENT: alice\nCOUNT: 1\n")
        expect_nothing_all((alice, bob, mallory))
        # The holder uses its name in several rooms; a message still comes once.
        ref2, _, _, _ = alice.join("garden", "alice")
        bob.send(pm("bob", "alice", "once"))
        alice.expect(b"PRIVATE_FROM: bob\nMESSAGE: once\n\n")
        bob.expect(b"PRIVATE_SENT: alice\nCOUNT: 1\n")
        alice.expect_nothing()
        # The name is free again once its last membership ends.
        alice.send(disconnect_req("alice"))
        alice.expect_closed(allowed=(leave_announce(ref, "alice"), leave_announce(ref2, "alice")))
        bob.expect(leave_announce(ref, "alice"))
        den, _, _, _ = mallory.join("mallory-den", "alice")
        # (her other membership there, as mallory, gets the announcement too)
        mallory.expect(join_announce(den, "alice"))
        bob.send(pm("bob", "alice", "are you new?"))
        mallory.expect(b"PRIVATE_FROM: bob\nMESSAGE: are you new?\n\n")
        bob.expect(b"PRIVATE_SENT: alice\nCOUNT: 1\n")
        d.assert_alive()
        print("attack 7 (server scope): alice taken elsewhere -> error 5; private messages reach "
              "only the holder's connection")


def room_scope():
    with Daemon(server={"name_scope": "room"}) as d:
        a1 = d.connect("alice-1")
        a2 = d.connect("alice-2")
        bob = d.connect("bob")
        for c in (a1, a2, bob):
            opt_in(c)
        ref, _, _, _ = a1.join("lobby", "alice")
        a2.send(join_req("lobby", "alice"))
        a2.expect(NAME_IN_USE, what="JOIN lobby as alice twice (name_scope room)")
        ref_e, _, _, _ = a2.join("elsewhere", "alice")  # the classic rule: allowed
        bob.join("lobby", "bob")
        a1.expect(join_announce(ref, "bob"))
        # To an ambiguous name: refused, nobody receives anything.
        bob.send(pm("bob", "alice", "which one?"))
        bob.expect(b"ERROR_CODE: 5\nERROR_DESCRIPTION: the recipient's name is held by several "
                   b"connections\n")
        # From an ambiguous name: refused too.
        a2.send(pm("alice", "bob", "trust me"))
        a2.expect(b"ERROR_CODE: 5\nERROR_DESCRIPTION: CLIENT_NAME is held by several connections\n")
        expect_nothing_all((a1, a2, bob))
        # An unambiguous name works as before.
        a1.send(pm("alice", "alice", "note to self"))  # ambiguous even to oneself
        a1.expect_error(5, context="PRIVATE_MESSAGE to an ambiguous name (name_scope room)")
        a1.send(pm("alice", "bob", "x"))
        a1.expect_error(5, context="PRIVATE_MESSAGE from an ambiguous name (name_scope room)")
        a2.send(disconnect_req("alice"))
        a2.expect_closed(allowed=(leave_announce(ref_e, "alice"),))
        a1.send(pm("alice", "bob", "just me now"))
        bob.expect(b"PRIVATE_FROM: alice\nMESSAGE: just me now\n\n")
        a1.expect(b"PRIVATE_SENT: bob\nCOUNT: 1\n")
        d.assert_alive()
        print("attack 7 (name_scope room): ambiguous names refused with error 5 both ways")


def main():
    server_scope()
    room_scope()


run(main)
