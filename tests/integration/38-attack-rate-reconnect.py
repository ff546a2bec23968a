#!/usr/bin/env python3
"""38-attack-rate-reconnect: issue 10, attack 8 (a fresh burst per reconnect).

The token bucket used to be per connection only, so an address that
reconnected got a fresh burst each time (7x the nominal rate). Now every
connection of an address also draws on the address's bucket (rate_per_ip a
second, burst_per_ip saved up). Here one address floods HELO from four
connections at once, each replaced by a new one every 0.2 s, for a few
seconds: the requests answered per second stay within 1.5x rate_per_ip
(burst included), and a client from another address (127.0.0.2) keeps its
round trips short meanwhile. Room creation has its own per-address bucket
(room_create_rate a minute): the sixth new room from one address within the
minute gets error 9, reconnecting or not, while another address still
creates rooms."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

RATE_PER_IP = 100
BURST_PER_IP = 100
PER_CONN_BURST = 50
SECONDS = 4.0
PARALLEL = 4
CREATE_RATE = 5
LIMITS = {"rate": 50, "burst": PER_CONN_BURST, "rate_per_ip": RATE_PER_IP,
          "burst_per_ip": BURST_PER_IP, "connect_rate_per_ip": 1000, "connect_burst_per_ip": 1000}


def main():
    with Daemon(limits=LIMITS) as d:
        bystander = d.connect("bystander", source="127.0.0.2")
        reply_len = len(helo_reply("x", d.port))
        answered = 0
        reconnects = 0
        worst_rtt = 0.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < SECONDS:
            conns = [d.connect("flood") for _ in range(PARALLEL)]
            reconnects += PARALLEL
            for c in conns:
                c.send(helo_req("x") * PER_CONN_BURST)
            got = b""
            deadline = time.monotonic() + 0.2
            for c in conns:
                got_c = c.collect(max(0.0, deadline - time.monotonic()))
                answered += len(got_c) // reply_len
            for c in conns:
                c.close()
                d.conns.remove(c)
            r0 = time.monotonic()
            bystander.ping()
            worst_rtt = max(worst_rtt, time.monotonic() - r0)
        secs = time.monotonic() - t0
        per_s = answered / secs
        bound = 1.5 * RATE_PER_IP
        print("attack 8: %d connections (%d at a time, replaced every 0.2 s) got %d requests "
              "answered in %.1fs = %.0f/s; rate_per_ip %d, burst_per_ip %d (bound %.0f/s, "
              "without the per-address bucket: %d per connection); bystander's worst HELO "
              "round trip %.0f ms" % (reconnects, PARALLEL, answered, secs, per_s, RATE_PER_IP,
                                     BURST_PER_IP, bound, PER_CONN_BURST, worst_rtt * 1000))
        check(per_s <= bound, "one address got %.0f requests/s answered across reconnects "
              "(rate_per_ip %d: bound %.0f/s)" % (per_s, RATE_PER_IP, bound))
        check(per_s >= 0.5 * RATE_PER_IP / FACTOR,
              "only %.0f requests/s answered: the address is starved, not limited" % per_s)
        check(worst_rtt < 0.5 * FACTOR, "bystander's round trip %.0f ms" % (worst_rtt * 1000))
        d.assert_alive()

    with Daemon(limits={"room_create_rate": CREATE_RATE}) as d:
        created = 0
        for i in range(CREATE_RATE + 3):
            c = d.connect("creator")   # a fresh connection each time: no help
            c.send(join_req("new%d" % i, "creator%d" % i))
            f = c.expect_frame()
            if f.kind != "JOINED":
                m = ERROR_RE.match(f.raw)
                check(m and int(m.group(1)) == 9, "room creation over the rate: expected error 9, got %s"
                      % show(f.raw))
                c.ping()
                break
            created += 1
            c.expect_frame()   # own announcement
        check(created == CREATE_RATE, "one address created %d rooms at once (room_create_rate %d)"
              % (created, CREATE_RATE))
        other = d.connect("other-creator", source="127.0.0.2")
        other.join("elsewhere", "other")
        print("attack 8: room creation: one address created %d rooms, then error 9 (room_create_rate "
              "%d a minute); another address still creates" % (created, CREATE_RATE))


run(main)
