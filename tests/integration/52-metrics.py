#!/usr/bin/env python3
"""52-metrics: [metrics] listen serves Prometheus text on GET /metrics
(issue 14), with numbers that match the traffic the test sent exactly.

roomd runs with listen = 127.0.0.1:0 and logs the port it bound. Known
traffic: three members join "stats room" (a name with a space), one
attaches a room connection, one sends N CHATs on its control connection,
one CHAT with a wrong JOIN_ID (error 3); from a second address, connections
up to max_clients_per_ip and one more (refused: error 7); in room "flood" a
member attaches a room connection it never reads while another floods the
room until the attached connection is cut off. Each scrape is checked
exactly: per room members, attached members, messages, bytes (the relayed
frames' own bytes), deliveries (members x frames, announcements included),
history length, cut-offs; server-wide connections by kind, accepted
connections, requests, errors by code, refusals by reason. After the
members of "stats room" leave, its series are gone (its thread ended). GET
elsewhere and other methods get 404. `promtool check metrics` passes on
the scrape (it must be installed: scripts/setup.sh)."""
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

N = 10
PER_IP = 12   # 127.0.0.1 holds up to 9 connections here
FLOOD_MSG = 3000
FLOOD_BATCH = 10
FLOOD_MAX = 24 * 1024 * 1024
METRICS_RE = re.compile(r"metrics listening on 127\.0\.0\.1:(\d+)")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def metrics_port(d):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        m = METRICS_RE.search(d.stderr())
        if m:
            return int(m.group(1))
        time.sleep(0.02)
    fail("roomd did not log 'metrics listening on 127.0.0.1:PORT'; stderr:\n%s" % d.stderr()[-3000:])


def get(port, path="/metrics", method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, "", ""


def scrape(port):
    status, ctype, text = get(port)
    check(status == 200, "GET /metrics: status %d" % status)
    check(ctype.startswith("text/plain; version=0.0.4"), "GET /metrics: Content-Type %r" % ctype)
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        check(m is not None, "not a sample line: %r" % line)
        key = m.group(1) + (m.group(2) or "")
        check(key not in samples, "duplicate series %s" % key)
        samples[key] = float(m.group(3))
    return text, samples


def expect_values(s, want, what):
    bad = ["  %s: expected %s, got %s" % (k, v, s.get(k)) for k, v in want.items() if s.get(k) != v]
    check(not bad, "%s:\n%s" % (what, "\n".join(bad)))


def room(name, metric):
    return 'roomd_room_%s{room="%s"}' % (metric, name)


def promtool_check(text):
    tool = shutil.which("promtool")
    check(tool is not None, "promtool not found: install it (scripts/setup.sh takes it from Debian's "
          "prometheus package) to check the exposition format")
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(p.returncode == 0 and not out.strip(), "promtool check metrics failed (%d):\n%s"
          % (p.returncode, out))


def wait_for(port, pred, what):
    deadline = time.monotonic() + TIMEOUT * 2
    while True:
        text, s = scrape(port)
        if pred(s):
            return text, s
        if time.monotonic() > deadline:
            fail("%s: not seen within %.0fs; last scrape:\n%s" % (what, TIMEOUT * 2, text))
        time.sleep(0.05)


def main():
    limits = {"sendq_bytes": 65536, "rate": 1000000, "burst": 1000000, "rate_per_ip": 1000000,
              "burst_per_ip": 1000000, "max_clients_per_ip": PER_IP,
              "connect_burst_per_ip": 1000, "connect_rate_per_ip": 1000, "history": 5,
              "max_dormant_rooms": 0}
    with Daemon(limits=limits, extra_ini="[metrics]\nlisten = 127.0.0.1:0") as d:
        port = metrics_port(d)
        for path, method in (("/", "GET"), ("/metrics/x", "GET"), ("/metrics", "POST"),
                             ("/metrics", "PUT")):
            status = get(port, path, method)[0]
            check(status == 404, "%s %s: expected 404, got %d" % (method, path, status))
        _, s = scrape(port)
        expect_values(s, {'roomd_connections{kind="control"}': 0, "roomd_requests_total": 0,
                          "roomd_rooms": 0}, "before any client")

        # -- "stats room": 3 members, b attached, a sends N messages.
        rn = "stats room"
        a, b, c = d.connect("a"), d.connect("b"), d.connect("c")
        ref, aid, _, rport = a.join(rn, "a")
        _, bid, _, _ = b.join(rn, "b")
        a.expect(join_announce(ref, "b"))
        _, cid, _, _ = c.join(rn, "c")
        a.expect(join_announce(ref, "c"))
        b.expect(join_announce(ref, "c"))
        broom = d.room_connect(rport, "b-room")
        broom.send(attach_req(ref, bid, "b"))
        broom.expect(attached_reply(ref, bid))
        sent_bytes = 0
        for i in range(N):
            text = "message %d of the stats test" % i
            a.chat(ref, aid, "a", text)
            frame = chat_frame(ref, "a", text)
            sent_bytes += len(frame)
            for conn in (a, broom, c):
                conn.expect(frame)
        a.chat(ref, aid + 1 if aid < 2 ** 31 - 1 else aid - 1, "a", "wrong id")
        a.expect_error(3)
        # -- a second address opens max_clients_per_ip connections, and one more.
        others = [d.connect("o%d" % i, source="127.0.0.2") for i in range(PER_IP)]
        refused = d.connect("refused", source="127.0.0.2")
        refused.expect_error(7)
        refused.expect_closed()
        for o in others:
            o.ping()   # HELO: a request each, and proof each is served
        requests = 3 + 1 + N + 1 + len(others)   # joins, attach, chats, bad chat, HELOs
        deliveries = 1 + 2 + 3 + 3 * N           # join announcements, then 3 x N chats
        want = {
            room(rn, "members"): 3, room(rn, "attached_members"): 1,
            room(rn, "messages_total"): N, room(rn, "bytes_total"): sent_bytes,
            room(rn, "deliveries_total"): deliveries, room(rn, "history_messages"): 5,
            room(rn, "slow_consumers_cut_off_total"): 0,
            'roomd_connections{kind="control"}': 3 + len(others),
            'roomd_connections{kind="room"}': 1,
            'roomd_connections_accepted_total{kind="control"}': 3 + len(others),
            'roomd_connections_accepted_total{kind="room"}': 1,
            "roomd_requests_total": requests,
            'roomd_errors_total{code="3"}': 1, 'roomd_errors_total{code="7"}': 1,
            'roomd_errors_total{code="1"}': 0,
            'roomd_refusals_total{reason="max_clients_per_ip"}': 1,
            'roomd_refusals_total{reason="connect_rate_per_ip"}': 0,
            "roomd_rooms": 1,
        }
        text, s = scrape(port)
        expect_values(s, want, "after the stats room's traffic")
        promtool_check(text)
        print("metrics: %d series, %d bytes; %s messages, %s deliveries, %s bytes in '%s'"
              % (len(s), len(text), s[room(rn, "messages_total")], s[room(rn, "deliveries_total")],
                 s[room(rn, "bytes_total")], rn))
        for o in others:
            o.close()
        wait_for(port, lambda s: s.get('roomd_connections{kind="control"}') == 3,
                 "the second address's connections closed")

        # -- "flood": slow attaches a room connection it never reads.
        f = d.connect("f")
        fref, fid, _, fport = f.join("flood", "f")
        slow = d.connect("slow")
        _, sid, _, _ = slow.join("flood", "slow")
        f.expect(join_announce(fref, "slow"))
        sroom = d.room_connect(fport, "slow-room", rcvbuf=4096)
        sroom.send(attach_req(fref, sid, "slow"))
        wait_for(port, lambda s: s.get(room("flood", "attached_members")) == 1, "slow attached")
        k = 0
        t0 = time.monotonic()
        while True:
            texts = []
            for _ in range(FLOOD_BATCH):
                text = ("%08d " % k) + "z" * (FLOOD_MSG - 9)
                f.chat(fref, fid, "f", text)
                texts.append(text)
                k += 1
            for text in texts:
                f.expect(chat_frame(fref, "f", text))
            _, s = scrape(port)
            if s.get(room("flood", "slow_consumers_cut_off_total")) == 1:
                break
            check(k * FLOOD_MSG < FLOOD_MAX and time.monotonic() - t0 < TEST_BOUND / 2,
                  "slow's room connection not cut off after %d messages" % k)
        frame_len = len(chat_frame(fref, "f", "x" * FLOOD_MSG))
        want = {
            room("flood", "members"): 2, room("flood", "attached_members"): 0,
            room("flood", "messages_total"): k, room("flood", "bytes_total"): k * frame_len,
            room("flood", "deliveries_total"): 1 + 2 + 2 * k,
            room("flood", "slow_consumers_cut_off_total"): 1,
            room("flood", "history_messages"): 5,
            'roomd_slow_consumers_cut_off_total{kind="room"}': 1,
            'roomd_slow_consumers_cut_off_total{kind="control"}': 0,
            "roomd_rooms": 2,
        }
        text, s = scrape(port)
        expect_values(s, want, "after the flood")
        promtool_check(text)
        print("metrics: slow consumer cut off after %d messages of %d bytes" % (k, frame_len))

        # -- the stats room empties: its thread ends, its series go.
        for conn, jid, name in ((a, aid, "a"), (b, bid, "b"), (c, cid, "c")):
            conn.send(leave_req(ref, jid, name))
        text, s = wait_for(port, lambda s: s.get("roomd_rooms") == 1, "stats room stopped")
        gone = [k for k in s if 'room="%s"' % rn in k]
        check(not gone, "series of a room that ended are still listed: %s" % gone)
        check(room("flood", "messages_total") in s, "the flood room's series went too")
        promtool_check(text)
        print("metrics: '%s' series gone after its members left" % rn)


run(main)
