#!/usr/bin/env python3
"""59-seq-gap: a numbered member that reads too slowly gets a gap notice, not a
cut-off; a plain member is cut off as before (docs/PROTOCOL.md §7.7, issue 16).

sendq_bytes 65536, history 10000. Members of room1: "numbered" (WELCOME: SEQ,
tiny receive buffer, reads 1 KiB per batch of 20 messages: far too slowly),
"plain" (tiny receive buffer, never reads, never asks for numbers), "sender"
(floods 600-byte messages) and "observer" (reads everything).
1. plain is cut off: its connection closes, its leave is announced once, as
   today; the flood goes on a while after it.
2. numbered stays a member: what it reads is whole frames only; each
   "GAP: <ref>\nFIRST: a\nLAST: b\n" has a = the number after the last
   message (or gap) before it, and what follows is numbered after b. For
   each gap, HISTORY_AFTER a - 1, page by page, refills a..b, none of them
   seen live: every message of the flood is seen exactly once, in order.
3. When numbered stops reading for good, it is cut off at the next overflow
   with its notice unwritten (the notice cannot be delivered either).
4. The daemon's RSS stays within the bound of 19-slow-reader while it holds
   the stalled members (release builds)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

MSG = 600
RSS_BOUND = 8 * 1024 * 1024
MAX_MSGS = 8000  # with EXTRA, within the 10000 the history keeps
EXTRA = 1600


def rss(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def text(i):
    return ("%06d " % i) + "q" * (MSG - 7)


FRAME = re.compile(rb"(SEQ: (\d+)\n)?CHAT: (\d+)\nCLIENT_NAME: ([^\n]*)\nMESSAGE: ([^\n]*)\n\n"
                   rb"|GAP: (\d+)\nFIRST: (\d+)\nLAST: (\d+)\n"
                   rb"|HISTORY_AFTER: (\d+)\nFIRST: (\d+)\nLAST: (\d+)\nCOUNT: (\d+)\n"
                   rb"|ENTRY: [^\n]*\nCLIENT_NAME: ([^\n]*)\nMESSAGE: ([^\n]*)\n\n")


def frames(buf):
    """Split buf into whole frames; returns (list of match objects, rest)."""
    out, at = [], 0
    while True:
        m = FRAME.match(buf, at)
        if not m:
            return out, buf[at:]
        out.append(m)
        at = m.end()


def sip(conn, sink, n=1024):
    """A slow reader's read: at most n bytes, if any are there."""
    conn.sock.settimeout(0.001)
    try:
        sink.append(conn.sock.recv(n))
    except (socket.timeout, BlockingIOError):
        pass
    finally:
        conn.sock.settimeout(TIMEOUT)


def flood(snd, ref, sid, start, n, obs, slow=None, sink=None):
    """Send n messages in batches of 20; the sender and the observer read
    each batch, slow (if given) reads a little into sink: the stalled
    members fall behind. Returns what the observer got."""
    got = b""
    for b in range(start, start + n, 20):
        if slow:
            sip(slow, sink)
        for i in range(b, b + 20):
            snd.chat(ref, sid, "sender", text(i))
        end = b"MESSAGE: %s\n\n" % text(b + 19).encode()
        snd.read_until(end, what="the sender's batch")
        got += obs.read_until(end, what="the observer's batch")
    return got


def refill(num, ref, nid, a, b, have):
    """Add the entries numbered a..b to have, asking HISTORY_AFTER page by
    page; each must be new (not seen live)."""
    after = a - 1
    while after < b:
        num.send("HISTORY_AFTER: %d\nJOIN_ID: %d\nCLIENT_NAME: numbered\nSEQ: %d\n" % (ref, nid, after))
        head = num.read_until(b"\nCOUNT: ", what="HISTORY_AFTER head") + num.read_until(b"\n")
        m = re.search(rb"HISTORY_AFTER: \d+\nFIRST: (\d+)\nLAST: (\d+)\nCOUNT: (\d+)\n$", head)
        check(m, "bad HISTORY_AFTER head %s" % show(head))
        first, count = int(m.group(1)), int(m.group(3))
        check(first == after + 1 and count > 0, "page of %d from %d after %d" % (count, first, after))
        for k in range(count):
            f = num.expect_frame()
            e = re.match(rb"ENTRY: [^\n]*\nCLIENT_NAME: sender\nMESSAGE: ([^\n]*)\n\n$", f.raw)
            check(e, "bad ENTRY %s" % show(f.raw))
            if first + k <= b:
                check(first + k not in have, "message %d was seen live and dropped" % (first + k))
                have[first + k] = e.group(1)
        after = first + count - 1


def main():
    limits = {"sendq_bytes": 65536, "rate": 1000000, "burst": 1000000, "history": 10000,
              "max_message": 1024, "max_request": 2048}
    with Daemon(limits=limits) as d:
        num = d.connect("numbered", rcvbuf=4096)
        num.send("WELCOME: SEQ\n")
        num.read_until(b"\nTEXT: ", what="WELCOME")
        num.read_until(b"\n")
        ref, nid, _, _ = num.join("room1", "numbered")
        plain = d.connect("plain", rcvbuf=4096)
        plain.join("room1", "plain")
        snd = d.connect("sender")
        _, sid, _, _ = snd.join("room1", "sender")
        obs = d.connect("observer")
        obs.join("room1", "observer")
        snd.expect(join_announce(ref, "observer"))
        num.collect(0.2)
        rss_before = rss(d)

        # Flood until plain is cut off, then a little more.
        total, got, sink = 0, b"", []
        while leave_announce(ref, "plain") not in got:
            check(total < MAX_MSGS, "plain was not cut off after %d messages" % total)
            got += flood(snd, ref, sid, total, 200, obs, num, sink)
            total += 200
        # numbered reads a little: it falls behind as far, later
        got += flood(snd, ref, sid, total, EXTRA, obs, num, sink)
        total += EXTRA
        time.sleep(0.3)
        rss_peak = rss(d)
        got += obs.collect(0.5)
        check(got.count(leave_announce(ref, "plain")) == 1, "plain's cut-off announced twice")
        check(leave_announce(ref, "numbered") not in got, "numbered was cut off")
        print("plain: cut off and announced; numbered: still a member")

        # 2. numbered reads the rest: whole frames, GAPs, later numbers after each.
        buf = b"".join(sink) + num.buf + num.collect(2.0)
        num.buf = b""
        fs, rest = frames(buf)
        check(rest == b"", "numbered got half a frame or garbage: %s" % show(rest, 300))
        seen, gaps, last = [], [], 0
        for m in fs:
            if m.group(6):
                gaps.append((int(m.group(6)), int(m.group(7)), int(m.group(8))))
                check(int(m.group(7)) == last + 1, "GAP FIRST %s is not %d" % (m.group(7), last + 1))
                last = int(m.group(8))
            elif m.group(2) and m.group(4) == b"sender":
                seq = int(m.group(2))
                check(seq > last, "message %d after the gap's last %d" % (seq, last))
                last = seq
                seen.append((seq, m.group(5)))
        check(len(gaps) >= 1, "no GAP notice (got %d messages)" % len(seen))
        check(all(g[0] == ref for g in gaps), "GAP names another room")
        print("flood: %d messages; plain cut off after about %d" % (total, total - EXTRA))
        print("numbered: %d messages whole, %d gap notice(s): %s" % (len(seen), len(gaps), gaps))

        # Refill each gap: HISTORY_AFTER from the number before it, page by page.
        have = {s: t for s, t in seen}
        for _, a, b in gaps:
            refill(num, ref, nid, a, b, have)
        texts = [have[s] for s in sorted(have)]
        check(sorted(have) == list(range(1, total + 1)), "numbers are not 1..%d" % total)
        check(texts == [text(i).encode() for i in range(total)],
              "the messages are not the flood, once each, in order (%d of %d)" % (len(texts), total))
        print("refill: all %d messages once, in order" % total)

        # 3. numbered stops reading for good: one more gap, then the cut-off.
        got = b""
        for _ in range(MAX_MSGS // 200):
            got += flood(snd, ref, sid, total, 200, obs)
            total += 200
            if leave_announce(ref, "numbered") in got:
                break
        got += obs.collect(0.3)
        check(leave_announce(ref, "numbered") in got,
              "a numbered member that never reads was not cut off")
        print("numbered, never reading after its notice: cut off")

        if FACTOR == 1:  # a release build: sanitizers keep freed memory in quarantine
            check(rss_peak - rss_before < RSS_BOUND, "RSS grew by %d bytes" % (rss_peak - rss_before))
        print("rss: %d KiB before, %d KiB at the peak" % (rss_before // 1024, rss_peak // 1024))


run(main)
