#!/usr/bin/env python3
"""68-roomc-gap-refill: roomc, reading too slowly, gets a gap notice and refills
(docs/PROTOCOL.md §7.7, issue 16).

sendq_bytes 65536, history 10000. alice (roomc, piped) is in room1 with a
sender and an observer (raw, reading). alice is stopped (SIGSTOP) while the
sender floods, batch by batch, until roomd logs that it dropped her queued
messages and queued a gap notice; then the flood stops and she is continued.
She prints a refill line ("--- room1: N messages dropped by the server,
refilled from its history ---"), and her output holds every message of the
flood exactly once, in order (live lines and refilled history lines
together), and no gap line (the history keeps them all)."""
import os
import signal
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

MSG = 600
MAX_MSGS = 9000  # within the 10000 the history keeps
REFILL = re.compile(r"^--- room1: \d+ messages? dropped by the server, refilled from its history ---$", re.M)


def text(i):
    return ("%06d " % i) + "r" * (MSG - 7)


def batch(snd, obs, ref, sid, start, n):
    for b in range(start, start + n, 20):
        for i in range(b, b + 20):
            snd.chat(ref, sid, "sender", text(i))
        end = b"MESSAGE: %s\n\n" % text(b + 19).encode()
        snd.read_until(end, what="the sender's batch")
        obs.read_until(end, what="the observer's batch")


def main():
    limits = {"sendq_bytes": 65536, "rate": 1000000, "burst": 1000000, "history": 10000,
              "max_message": 1024, "max_request": 2048}
    with Daemon(limits=limits) as d:
        snd = d.connect("sender")
        ref, sid, _, _ = snd.join("room1", "sender")
        obs = d.connect("observer")
        obs.join("room1", "observer")
        snd.expect(join_announce(ref, "observer"))
        snd.chat(ref, sid, "sender", "before")
        snd.expect_chat(ref, "sender", "before")
        obs.expect_chat(ref, "sender", "before")
        alice = Roomc(d.port, "alice")
        with alice:
            alice.write("join room1\n")
            snd.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT, what="alice's join")
            obs.expect(join_announce(ref, "alice"))
            # The join is complete once its history is shown.
            deadline = time.monotonic() + 10 * TIMEOUT
            while "history of room1: 1 message\n" not in alice.text():
                check(time.monotonic() < deadline, "no history at the join: %s" % show(alice.out))
                alice._pump(time.monotonic() + 0.1)
            total = 0
            os.kill(alice.proc.pid, signal.SIGSTOP)
            try:
                while "gap notice queued" not in d.stderr():
                    check(total < MAX_MSGS, "no gap notice after %d messages" % total)
                    batch(snd, obs, ref, sid, total, 20)
                    total += 20
            finally:
                os.kill(alice.proc.pid, signal.SIGCONT)
            print("flood: a gap notice after %d messages" % total)
            last = re.compile(r"sender: %s$" % re.escape(text(total - 1)), re.M)
            deadline = time.monotonic() + 20 * TIMEOUT
            while not last.search(alice.text()):
                check(time.monotonic() < deadline, "alice did not catch up: %s" % show(alice.out[-2000:]))
                alice._pump(time.monotonic() + 0.1)
            alice._pump(time.monotonic() + 0.5)
            out = alice.text()
            got = [int(m.group(1)) for m in
                   re.finditer(r"^\[room1[^\]]*\] sender: (\d{6}) r+$", out, re.M)]
            check(got == list(range(total)),
                  "not every message once in order: %d lines, first wrong at %s" %
                  (len(got), next((i for i, v in enumerate(got) if v != i), len(got))))
            check("gap:" not in out, "a gap line although the history keeps everything")
            check(REFILL.search(out), "no refill line: %s" % show(out[-2000:]))
            print("alice: %d refill line(s); all %d messages once, in order"
                  % (len(REFILL.findall(out)), total))
            alice.write("disconnect\n")
            alice.close_stdin()
            check(alice.wait() == 0, "roomc did not exit 0")


run(main)
