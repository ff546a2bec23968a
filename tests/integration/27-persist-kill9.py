#!/usr/bin/env python3
"""27-persist-kill9: kill -9 in the middle of traffic, then a start on the
same database. What the restarted room's HISTORY shows must be exactly the
first k messages of the room's order (no gap, no reordering), and every
message that was relayed (acknowledged by its echo) before the kill but is
missing must have been relayed within the documented bound before the kill:
the store's batch interval (100 ms) plus the commit in progress. Prints the
figures."""
import os
import sys
import threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

BATCH_S = 0.100                     # STORE batch_ms (docs/OPERATIONS.md)
BOUND_S = BATCH_S + 0.150 * FACTOR  # plus a commit (fsync) in progress
LIMITS = {"history": 10000, "max_message": 1024, "rate": 1000000, "burst": 1000000}
TRAFFIC_S = 1.5


def traffic(d, db):
    """Chat as fast as echoes come back for TRAFFIC_S, then kill -9 with
    messages in flight. Returns (texts sent, {index: ack time}, kill time)."""
    c = d.connect("alice")
    ref, jid, _, _ = c.join("busy", "alice")
    sent, acked = [], {}
    start = time.monotonic()
    stop = threading.Event()

    def reader():
        # Echoes are read as soon as they arrive, so an ack time is close
        # to the relay time (and never before it).
        while not c.eof:
            try:
                if not c._read_some(time.monotonic() + 0.05):
                    if stop.is_set():
                        return
                    continue
            except OSError:
                return
            while True:
                i = c.buf.find(b"\n\n")
                if i < 0:
                    break
                frame, c.buf = c.buf[:i + 2], c.buf[i + 2:]
                m = re.match(rb"CHAT: \d+\nCLIENT_NAME: alice\nMESSAGE: k(\d+)\n\n", frame)
                if m:
                    acked[int(m.group(1))] = time.monotonic()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    n = 0
    # Below history (10000), so that the restarted room holds all it stored.
    while time.monotonic() - start < TRAFFIC_S and n < 9000:
        burst = b"".join(chat_req(ref, jid, "alice", "k%d" % (n + j)) for j in range(20))
        sent += ["k%d" % (n + j) for j in range(20)]
        n += 20
        c.send(burst)
        time.sleep(0.005)
        if len(sent) - len(acked) > 2000:   # keep the window bounded
            time.sleep(0.02)
    d.assert_alive()                         # and sanitizer-clean so far
    kill_at = time.monotonic()
    d.proc.kill()                            # SIGKILL: no flush
    d.proc.wait(5)
    d.finished = True
    stop.set()
    t.join(5)
    return ref, sent, acked, kill_at


def main():
    with DataDir() as dd:
        db = dd.file("roomd.db")
        with Daemon(server={"database": db}, limits=LIMITS) as d:
            ref, sent, acked, kill_at = traffic(d, db)
        check(len(acked) > 500, "too little traffic to measure: %d messages acknowledged" % len(acked))
        with Daemon(server={"database": db}, limits=LIMITS) as d:
            c = d.connect("carol")
            ref2, jid, _, _ = c.join("busy", "carol")
            check(ref2 == ref, "the room came back as ref %d, was %d" % (ref2, ref))
            got = [t for _, t in history_of(c, ref, jid, "carol", timeout=20 * FACTOR)]
            d.stop()
        k = len(got)
        check(got == sent[:k], "the stored history is not a prefix of the room's order: first "
              "difference at %s" % next((i for i, (g, s) in enumerate(zip(got, sent)) if g != s), k))
        missing = sorted(i for i in acked if i >= k)
        ages = [kill_at - acked[i] for i in missing]
        worst = max(ages) if ages else 0.0
        recent = sum(1 for i in acked if kill_at - acked[i] <= BATCH_S)
        print("kill -9 after %.1fs of traffic: %d sent, %d acknowledged, %d stored; %d acknowledged messages "
              "missing, the oldest acknowledged %.0f ms before the kill (bound %.0f ms; %d were "
              "acknowledged in the last %.0f ms)" % (TRAFFIC_S, len(sent), len(acked), k, len(missing),
                                                      worst * 1000, BOUND_S * 1000, recent, BATCH_S * 1000))
        check(worst <= BOUND_S, "a message acknowledged %.0f ms before the kill was lost (bound %.0f ms)"
              % (worst * 1000, BOUND_S * 1000))


run(main)
