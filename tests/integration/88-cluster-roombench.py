#!/usr/bin/env python3
"""88-cluster-roombench: roombench --servers over three nodes, one run after
another on the same cluster (issue 15; bench/cluster.sh's way).

Members of each room are spread over n1, n2, n3 (member i on node i mod 3),
every member checks every sender's sequence. Five short runs, back to back,
so that each run's members join rooms whose previous members have just
gone: closed loop with attached members (twice), plain members, several
rooms with shared control connections, a fixed rate. Every run: nothing
lost, duplicated or out of order, every expected delivery made. Also: a
--servers list roombench cannot use is refused."""
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import _binary, check, run  # noqa: E402

ROOMBENCH = os.environ.get("ROOMBENCH") or _binary("ROOMBENCH", "bench/roombench")
LIMITS = {"rate": 1000000, "burst": 1000000, "rate_per_ip": 1000000, "burst_per_ip": 1000000,
          "connect_rate_per_ip": 1000000, "connect_burst_per_ip": 1000000,
          "max_clients_per_ip": 2000, "room_create_rate": 1000000, "room_unattached_max": 256}
RUNS = (
    ("closed loop, attached", ["-r", "1", "-m", "30", "-s", "6", "-w", "8", "-d", "1"]),
    ("closed loop, attached, again", ["-r", "1", "-m", "30", "-s", "6", "-w", "8", "-d", "1"]),
    ("closed loop, plain", ["-r", "1", "-m", "30", "-s", "6", "-w", "8", "-d", "1", "--plain"]),
    ("rooms sharing connections", ["-r", "6", "-m", "9", "-s", "2", "-w", "4", "-d", "1",
                                   "--share", "3"]),
    ("fixed rate", ["-r", "2", "-m", "12", "-s", "3", "-R", "100", "-d", "1"]),
)


def bench(args, timeout=120):
    p = subprocess.run([ROOMBENCH] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def main():
    with Cluster(limits=LIMITS) as cl:
        servers = ",".join("127.0.0.1:%d" % node.port for node in cl.nodes)
        for what, args in RUNS:
            rc, out, err = bench(["--servers", servers, "--warmup", "0.2"] + args)
            # 3: the run completed, a delivery check failed (reported below)
            check(rc in (0, 3), "%s: roombench exit %d\nstdout: %s\nstderr: %s" % (what, rc, out, err))
            r = json.loads(out.strip().splitlines()[-1])
            for key in ("lost", "duplicated", "reordered", "misrouted", "silent_rooms"):
                check(r[key] == 0, "%s over three nodes: %s = %s (deliveries %d of %d expected; "
                      "%.0f messages/s, %.0f deliveries/s)\n%s"
                      % (what, key, r[key], r["deliveries"], r["expected"], r["messages_per_s"],
                         r["deliveries_per_s"], err))
            check(rc == 0, "%s: roombench exit %d\n%s" % (what, rc, err))
            check(r["deliveries"] > 0 and r["deliveries"] == r["expected"],
                  "%s: deliveries %s, expected %s" % (what, r["deliveries"], r["expected"]))
        for node in cl.nodes:
            node.assert_alive()
    rc, _, err = bench(["--servers", "127.0.0.1", "-d", "1"])
    check(rc == 1 and "ADDR:PORT" in err, "--servers without a port refused: %r" % err)


run(main)
