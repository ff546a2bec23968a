#!/usr/bin/env python3
"""26-persist-restart: with [server] database set, a SIGTERM and a start on
the same file keep everything: rooms created on demand come back under the
same ROOM_REFs (also one whose last member had left), a topic set by a
member stays, configured rooms keep their configured refs, a new room gets a
ref never used before, and HISTORY returns every message sent before the
restart, in order, whichever port it was sent on. A third start shows nothing
duplicated."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

ROOMS = {"lobby": {"ref": 1, "topic": "configured topic"}}
LIMITS = {"history": 500, "rate": 100000, "burst": 100000}


def first_run(db):
    """Create rooms, chat, set a topic, let one room go dormant; return
    what a restart must show."""
    sent = {}
    with Daemon(server={"database": db}, limits=LIMITS, rooms=ROOMS) as d:
        a = d.connect("alice")
        b = d.connect("bob")
        refs = {}
        for room in ("alpha", "beta", "gamma"):
            refs[room], ida, _, _ = a.join(room, "alice")
            sent[room] = []
            if room != "gamma":
                _, idb, _, port = b.join(room, "bob")
                a.expect(join_announce(refs[room], "bob"))
            refs[room + "_ids"] = (ida, idb if room != "gamma" else None, port)
        refs["lobby"], idl, _, _ = a.join("lobby", "alice")
        check(refs["lobby"] == 1, "configured lobby must have ref 1, got %d" % refs["lobby"])
        sent["lobby"] = []
        check(len({refs["alpha"], refs["beta"], refs["gamma"], 1}) == 4, "refs not distinct: %s" % refs)
        # Bob speaks in beta over the room port (attached), alice over control.
        _, idb_beta, port_beta = refs["beta_ids"]
        r = d.room_connect(port_beta, "bob-beta")
        r.send(attach_req(refs["beta"], idb_beta, "bob"))
        r.expect(attached_reply(refs["beta"], idb_beta))
        for i in range(60):
            for room in ("alpha", "beta", "gamma", "lobby"):
                ref = refs[room]
                ida = refs[room + "_ids"][0] if room != "lobby" else idl
                text = "%s message %d: \u00e9t\u00e9 \u2713" % (room, i)
                if room == "beta" and i % 2:
                    r.send(chat_req(ref, idb_beta, "bob", text))
                    sent[room].append(("bob", text))
                else:
                    a.chat(ref, ida, "alice", text)
                    sent[room].append(("alice", text))
        # Rooms are not ordered with each other: compare each room's order.
        got = {}
        for _ in range(4 * 60):
            f = a.expect_frame(10 * FACTOR)
            check(f.kind == "CHAT", "alice: expected CHAT, got %s" % show(f.raw))
            got.setdefault(int(f.fields["CHAT"]), []).append((f.fields["CLIENT_NAME"], f.fields["MESSAGE"]))
        for room in ("alpha", "beta", "gamma", "lobby"):
            check(sorted(got.get(refs[room], [])) == sorted(sent[room]), "%s: not every message relayed" % room)
            if room != "beta":
                check(got[refs[room]] == sent[room], "relay order of %s differs" % room)
            # The room's own total order (two senders on two ports in beta)
            # is what its history must show.
            sent[room] = got[refs[room]]
        a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\nTOPIC: kept across restarts\n"
               % (refs["beta"], refs["beta_ids"][0]))
        a.expect(b"TOPIC_SET: %d\nTOPIC: kept across restarts\n" % refs["beta"])
        a.expect(chat_frame(refs["beta"], "test-id", "alice set the topic: kept across restarts"))
        # gamma's last member leaves: it goes dormant before the restart.
        a.leave(refs["gamma"], refs["gamma_ids"][0], "alice")
        d.stop()
        check("%d messages stored, none lost" % (4 * 60) in d.stderr(),
              "the store must report all 240 messages stored at exit; stderr:\n%s" % d.stderr()[-2000:])
    return refs, sent


def check_restart(db, refs, sent, run):
    with Daemon(server={"database": db}, limits=LIMITS, rooms=ROOMS) as d:
        a = d.connect("carol")
        # LIST_ROOMS lists live rooms; the stored ones are dormant until
        # joined, and listed with DORMANT=1 (issue 10).
        live = list_rooms(a)
        dormant = list_rooms(a, b"DORMANT=1")
        listed = live + dormant
        names = [(n, ref) for n, ref, _, _, _ in live]
        check(names == [("lobby", 1)], "run %d: LIST_ROOMS must show the configured room only, got %s"
              % (run, names))
        names = sorted((n, ref) for n, ref, _, _, _ in dormant)
        want = [("alpha", refs["alpha"]), ("beta", refs["beta"]), ("gamma", refs["gamma"])]
        check(names == want, "run %d: LIST_ROOMS DORMANT=1 must show the stored rooms under their "
              "refs (those with history): want %s, got %s" % (run, want, names))
        topics = {n: t for n, _, _, _, t in listed}
        check(topics["beta"] == "kept across restarts", "run %d: beta's topic lost: %s" % (run, listed))
        check(topics["lobby"] == "configured topic", "run %d: lobby's topic: %s" % (run, listed))
        for room in ("alpha", "beta", "gamma", "lobby"):
            ref, jid, _, _ = a.join(room, "carol")
            check(ref == refs[room], "run %d: %s came back as ref %d, was %d" % (run, room, ref, refs[room]))
            got = history_of(a, ref, jid, "carol")
            check(got == sent[room], "run %d: history of %s after the restart: %d entries, expected "
                  "the %d sent, in order\n  first differences: %s" % (
                      run, room, len(got), len(sent[room]),
                      [(i, g, w) for i, (g, w) in enumerate(zip(got, sent[room])) if g != w][:3]))
        # A new room gets a ref never used before (also after a restart
        # that forgot the previous run's delta, which had no history).
        ref, _, _, _ = a.join("delta-%d" % run, "carol")
        used = [1, refs["alpha"], refs["beta"], refs["gamma"]] + refs.get("new", [])
        check(ref > max(used), "run %d: new room got ref %d; used so far %s" % (run, ref, used))
        refs.setdefault("new", []).append(ref)
        d.stop()


def main():
    with DataDir() as dd:
        db = dd.file("roomd.db")
        refs, sent = first_run(db)
        check(os.path.isfile(db), "no database file at %s" % db)
        check_restart(db, refs, sent, 2)
        check_restart(db, refs, sent, 3)


run(main)
