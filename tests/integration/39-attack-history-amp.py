#!/usr/bin/env python3
"""39-attack-history-amp.py - issue 10, attack 2: HISTORY amplification.

A room holds a full history with the shipped limits (history 50 x
max_message 4096: ~205 KB per reply). 64 members each send 400 HISTORY
requests back to back (1.15 MB sent in all; each reply would be 205 KB, 5 GB
in total): a few of them read what comes, the rest never read. Meanwhile
another member measures its CHAT round trip.

Bounds: daemon RSS growth under 48 MB (x FACTOR under sanitizers; replies reference the kept frames and
at most one is in flight per connection; before: 5.1 GB), and every CHAT
round trip under 100 ms (x FACTOR under sanitizers). Scaled by FACTOR: the
request count per attacker and the duration."""

import os
import selectors
import time

from roomtest import (FACTOR, Daemon, chat_frame, chat_req, check, run, _b)

ATTACKERS = 64
REQUESTS = max(400 // FACTOR, 50)
READERS = 2                       # attackers that read (the others never do)
HISTORY = 50
MAX_MESSAGE = 4096
RSS_BOUND_MB = 48 * FACTOR           # sanitizers keep freed memory in quarantine
RTT_BOUND_S = 0.100 * FACTOR
MEASURE_S = 4.0 * min(FACTOR, 2)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def drain_for(socks, seconds):
    """Read everything the sockets get for that long; the bytes read."""
    sel = selectors.DefaultSelector()
    for sk in socks:
        sk.setblocking(False)
        sel.register(sk, selectors.EVENT_READ)
    total, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.1):
            try:
                data = key.fileobj.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                continue
            total += len(data)
    return total


def main():
    # All clients share 127.0.0.1: the per-address limits are raised so that
    # the test models attackers on many addresses (their own test: 36-38).
    limits = {"history": HISTORY, "max_message": MAX_MESSAGE, "max_clients_per_ip": 128,
              "connect_rate_per_ip": 1000, "connect_burst_per_ip": 1000,
              "rate_per_ip": 1000000, "burst_per_ip": 1000000}
    with Daemon(limits=limits) as d:
        pid = d.proc.pid
        filler = d.connect("filler")
        ref, fid, _, _ = filler.join("busy", "filler")
        big = "x" * MAX_MESSAGE
        for i in range(HISTORY):
            filler.chat(ref, fid, "filler", "%04d%s" % (i, big[4:]))
        for i in range(HISTORY):
            filler.expect(chat_frame(ref, "filler", "%04d%s" % (i, big[4:])), what="history fill %d" % i)

        attackers = []
        for i in range(ATTACKERS):
            c = d.connect("attacker%d" % i)
            _, jid, _, _ = c.join("busy", "a%d" % i)
            attackers.append((c, jid))
        m = d.connect("measurer")
        _, mid, _, _ = m.join("busy", "measurer")
        time.sleep(0.3)
        # Forget the join announcements queued to everyone so far.
        for c in [filler, m] + [a for a, _ in attackers]:
            c.sock.setblocking(False)
            try:
                while c.sock.recv(1 << 20):
                    pass
            except OSError:
                pass
            c.sock.setblocking(True)
            c.sock.settimeout(2.0 * FACTOR)
            c.buf = b""
        base = rss_kb(pid)

        for i, (c, jid) in enumerate(attackers):
            req = b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: a%d\n" % (ref, jid, i)
            c.send(req * REQUESTS)
        # The reading attackers read in a child process: the measurer's
        # round trips must not wait for this process's interpreter lock.
        rfd, wfd = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(rfd)
            os.nice(10)  # the test's own reading must not starve the daemon on a small machine
            total = drain_for([c.sock for c, _ in attackers[:READERS]], MEASURE_S + 1.0)
            os.write(wfd, b"%d" % total)
            os._exit(0)
        os.close(wfd)
        sent_at = time.monotonic()

        rtts, peak, n = [], base, 0
        end = time.monotonic() + MEASURE_S
        while time.monotonic() < end:
            text = "rtt%d" % n
            want = chat_frame(ref, "measurer", text)
            t0 = time.monotonic()
            m.send(chat_req(ref, mid, "measurer", text))
            m.expect(want, timeout=5.0 * FACTOR, what="CHAT round trip %d" % n)
            rtts.append(time.monotonic() - t0)
            peak = max(peak, rss_kb(pid))
            n += 1
            time.sleep(0.02)
        os.waitpid(child, 0)
        read_bytes = int(os.read(rfd, 64) or b"0")
        os.close(rfd)
        d.assert_alive()
        growth_mb = (peak - base) / 1024.0
        worst = max(rtts)
        read_mb = read_bytes / 1e6
        print("attack 2: %d members x %d HISTORY (%.1f KB sent in %.2fs): RSS %.1f MB -> peak "
              "%.1f MB (growth %.1f MB, bound %d MB); %d CHAT round trips, max %.1f ms, median "
              "%.1f ms (bound %.0f ms); %d reading attackers got %.1f MB"
              % (ATTACKERS, REQUESTS, ATTACKERS * REQUESTS * len(req) / 1e3, time.monotonic() - sent_at,
                 base / 1024.0, peak / 1024.0, growth_mb, RSS_BOUND_MB, len(rtts), worst * 1e3,
                 sorted(rtts)[len(rtts) // 2] * 1e3, RTT_BOUND_S * 1e3, READERS, read_mb))
        check(growth_mb < RSS_BOUND_MB, "daemon RSS grew by %.1f MB under the HISTORY burst (bound %d MB)"
              % (growth_mb, RSS_BOUND_MB))
        check(worst < RTT_BOUND_S, "a CHAT round trip took %.1f ms under the HISTORY burst (bound %.0f ms)"
              % (worst * 1e3, RTT_BOUND_S * 1e3))
        check(read_mb > 1.0, "the reading attackers got only %.2f MB: HISTORY replies are not served" % read_mb)
        # Replies are byte-exact: one more HISTORY on a fresh member, checked entry by entry.
        from roomtest import history_of
        h = d.connect("checker")
        _, hid, _, _ = h.join("busy", "checker")
        entries = history_of(h, ref, hid, "checker", timeout=5.0 * FACTOR)
        said = [("filler", "%04d%s" % (i, big[4:])) for i in range(HISTORY)] + \
               [("measurer", "rtt%d" % i) for i in range(n)]
        check(entries == said[-HISTORY:], "history after the burst: %d entries, not the last %d "
              "messages said" % (len(entries), HISTORY))
        for c, _ in attackers:
            c.close()


run(main)
