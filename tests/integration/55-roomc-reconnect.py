#!/usr/bin/env python3
"""55-roomc-reconnect: roomd restarts under a connected, piped roomc (issue 16).

roomd runs with a database (history 6) on a fixed control port. alice
(roomc, piped) joins lobby and dev; bob (raw) is in lobby. To make the
timing deterministic alice is stopped (SIGSTOP) while roomd restarts and
bob talks, then continued:
1. bob sends 3 messages while alice is away: alice says the connection was
   closed, reconnects with back-off, rejoins lobby and dev, prints
   "--- lobby: 3 messages missed while disconnected ---" and those 3
   (history lines), each exactly once in her whole output; dev reports
   nothing missed; "send dev ..." after the reconnect reaches a watcher.
2. bob sends 9 messages while alice is away again, more than the history
   keeps: alice prints the gap line; no message of bob appears twice.
3. "disconnect" exits 0."""
import os
import signal
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

LIMITS = {"history": 6}


def daemon(db, port=None):
    args = ["-p", str(port)] if port else []
    return Daemon(server={"database": db}, limits=LIMITS, rooms={"lobby": {}, "dev": {}}, args=args)




def main():
    tmp = tempfile.mkdtemp(prefix="roomc-reconnect-")
    db = os.path.join(tmp, "rooms.db")
    d1 = daemon(db).start()
    d2 = d3 = None
    try:
        bob = d1.connect("bob")
        ref, bid, _, _ = bob.join("lobby", "bob")
        alice = Roomc(d1.port, "alice", args=["--reconnect"])
        with alice:
            # "say" after the joins: once it is echoed, both joins are complete
            # (a join cut by the restart is not rejoined: see the README).
            alice.write("join dev\njoin lobby\nsay hi all\n")
            bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT, what="alice's join")
            bob.expect_chat(ref, "alice", "hi all")
            alice.wait_text(r"^\[lobby\] alice: hi all$", "alice's say, echoed")
            bob.chat(ref, bid, "bob", "before the restart")
            alice.wait_text(r"^\[lobby\] bob: before the restart$", "bob's first message")

            missed = ["while away %d" % i for i in range(3)]
            t0 = time.monotonic()
            d2, bob, ref, _ = restart_while_stopped(alice, d1, lambda: daemon(db, d1.port), missed)
            alice.wait_text(r"^--- dev: nothing missed ---$(?s:.*)^--- lobby: (?s:.*)bob: while away 2$",
                      "the catch-up of both rooms")
            print("reconnect: rejoined and caught up %.2f s after being continued"
                  % (time.monotonic() - t0))
            out = alice.text()
            check("roomc: connection closed by server\n" in out, "no loss report: %s" % show(out))
            check(re.search(r"^roomc: reconnecting to 127\.0\.0\.1:%d in \d\.\d s \(attempt 1" % d2.port,
                            out, re.M), "no reconnecting line: %s" % show(out))
            check("--- lobby: 3 messages missed while disconnected ---\n" in out,
                  "no missed header for lobby: %s" % show(out))
            for t in missed:
                n = len(re.findall(r"^\[lobby[^\]]*\] bob: %s$" % t, out, re.M))
                check(n == 1, "%r printed %d times: %s" % (t, n, show(out, 4000)))
            check(len(re.findall(r"bob: before the restart$", out, re.M)) == 1,
                  "the message seen before the restart was printed again")
            print("missed: %d of %d messages printed once each, marked" % (len(missed), len(missed)))

            w = d2.connect("watcher")
            dref, _, _, _ = w.join("dev", "watcher")
            alice.write("send dev back again\n")
            w.expect_chat(dref, "alice", "back again")

            flood = ["gone long %d" % i for i in range(9)]
            d3, bob, ref, _ = restart_while_stopped(alice, d2, lambda: daemon(db, d2.port), flood)
            d2 = None
            alice.wait_text(r"^--- lobby: gap: more was said while disconnected than the history keeps;"
                      r"(?s:.*)bob: gone long 8$", "the gap line and the history after it")
            out = alice.text()
            for t in flood:
                n = len(re.findall(r"bob: %s$" % t, out, re.M))
                check(n <= 1, "%r printed %d times" % (t, n))
            print("gap: gap line printed; %d of %d flood messages shown from the history"
                  % (sum(1 for t in flood if ("bob: %s\n" % t) in out), len(flood)))
            alice.write("disconnect\n")
            alice.close_stdin()
            check(alice.wait() == 0, "roomc did not exit 0 after disconnect")
        d3.stop()
    finally:
        for d in (d1, d2, d3):
            if d:
                d.cleanup()


run(main)
