#!/usr/bin/env python3
"""57-roomc-seq-resume: roomc catches up by sequence number after a restart (issue 16).

As 55-roomc-reconnect (roomd with a database, history 10, restarted on the
same port while a piped roomc --reconnect is stopped), but the messages are
chosen so that matching by content cannot find the place: bob says "ok" three
times before alice joins (she is shown them as history) and three times after,
then "ok", "ok", "new" while she is away. Numbers tell:
1. alice prints "--- lobby: 3 messages missed while disconnected ---" and
   exactly those three: "bob: ok" appears 3 + 3 + 2 times in all, "bob: new"
   once; a message bob sends after the rejoin is printed once, live.
2. Away again, 12 more "ok"s, more than the history keeps: the gap line, then
   the 10 entries the history has, each once ("bob: ok" 8 + 10 times in all).
3. "disconnect" exits 0."""
import os
import signal
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

LIMITS = {"history": 10}


def daemon(db, port=None):
    args = ["-p", str(port)] if port else []
    return Daemon(server={"database": db}, limits=LIMITS, rooms={"lobby": {}}, args=args)




def count(out, text):
    return len(re.findall(r"^\[lobby[^\]]*\] bob: %s$" % re.escape(text), out, re.M))


def wait_for_count(rc, text, n):
    deadline = time.monotonic() + 10 * TIMEOUT
    while count(rc.text(), text) < n:
        check(time.monotonic() < deadline, "'bob: %s' not printed %d times: %s"
              % (text, n, show(rc.out, 4000)))
        rc._pump(time.monotonic() + 0.1)


def main():
    tmp = tempfile.mkdtemp(prefix="roomc-seq-")
    db = os.path.join(tmp, "rooms.db")
    d1 = daemon(db).start()
    d2 = d3 = None
    try:
        bob = d1.connect("bob")
        ref, bid, _, _ = bob.join("lobby", "bob")
        for _ in range(3):
            bob.chat(ref, bid, "bob", "ok")
            bob.expect_chat(ref, "bob", "ok")
        alice = Roomc(d1.port, "alice", args=["--reconnect"])
        with alice:
            alice.write("join lobby\n")
            bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT, what="alice's join")
            alice.wait_text(r"^history of lobby: 3 messages$", "the history at the join")
            for _ in range(3):
                bob.chat(ref, bid, "bob", "ok")
                bob.expect_chat(ref, "bob", "ok")
            wait_for_count(alice, "ok", 6)

            d2, bob, ref, bid = restart_while_stopped(alice, d1, lambda: daemon(db, d1.port), ["ok", "ok", "new"])
            alice.wait_text(r"^--- lobby: (?s:.*)bob: new$", "the catch-up")
            bob.chat(ref, bid, "bob", "live after")
            alice.wait_text(r"bob: live after$", "a live message after the rejoin")
            out = alice.text()
            check("--- lobby: 3 messages missed while disconnected ---\n" in out,
                  "not exactly 3 missed: %s" % show(out, 4000))
            check(count(out, "ok") == 8, "'bob: ok' printed %d times, not 8: %s"
                  % (count(out, "ok"), show(out, 4000)))
            check(count(out, "new") == 1 and count(out, "live after") == 1,
                  "'new' or 'live after' not printed once: %s" % show(out, 4000))
            print("resume: 3 missed messages (2 the same as seen ones) printed once each")

            d3, bob, ref, bid = restart_while_stopped(alice, d2, lambda: daemon(db, d2.port), ["ok"] * 12)
            d2 = None
            alice.wait_text(r"^--- lobby: gap: more was said while disconnected than the history keeps;"
                      r" its 10 oldest kept messages follow ---$", "the gap line")
            wait_for_count(alice, "ok", 18)
            alice._pump(time.monotonic() + 0.3)
            out = alice.text()
            check(count(out, "ok") == 18, "'bob: ok' printed %d times, not 8 + 10" % count(out, "ok"))
            check(count(out, "live after") == 1, "'live after' printed again")
            print("gap: gap line, then the 10 kept messages, none twice")
            alice.write("disconnect\n")
            alice.close_stdin()
            check(alice.wait() == 0, "roomc did not exit 0 after disconnect")
        d3.stop()
    finally:
        for d in (d1, d2, d3):
            if d:
                d.cleanup()


run(main)
