#!/usr/bin/env python3
"""32-roombench-smoke: bench/roombench runs against a real roomd, so the
tool cannot rot (issue 4). No timing assertions: only that it sets up,
relays, checks every delivery and reports, in each mode, and that it fails
loudly when it cannot connect."""
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

ROOMBENCH = os.environ.get("ROOMBENCH") or _binary("ROOMBENCH", "bench/roombench")


def bench(args, timeout=60):
    p = subprocess.run([ROOMBENCH] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_ok(d, args, what):
    rc, out, err = bench(["-p", str(d.port), "--pid", str(d.proc.pid), "--warmup", "0.2"] + args)
    check(rc == 0, "%s: roombench exit %d\nstdout: %s\nstderr: %s" % (what, rc, out, err))
    lines = out.strip().splitlines()
    check(len(lines) == 1, "%s: one JSON line expected, got %r" % (what, out))
    r = json.loads(lines[0])
    for key in ("lost", "duplicated", "reordered", "misrouted", "silent_rooms"):
        check(r[key] == 0, "%s: %s = %s: %s" % (what, key, r[key], lines[0]))
    check(r["deliveries"] > 0 and r["deliveries"] == r["expected"],
          "%s: deliveries %s, expected %s" % (what, r["deliveries"], r["expected"]))
    check(r["deliveries_per_s"] > 0 and r["lat_p50_us"] > 0 and r["lat_p99_us"] >= r["lat_p50_us"],
          "%s: figures out of shape: %s" % (what, lines[0]))
    check(r["daemon_rss_peak_kib"] > 0 and r["daemon_cpu_s"] >= 0,
          "%s: no daemon figures from /proc: %s" % (what, lines[0]))
    check("deliveries/s" in err and "latency us" in err, "%s: no table on stderr: %r" % (what, err))
    return r


def main():
    rc, out, _ = bench(["--help"])
    check(rc == 0 and "--target" in out, "roombench --help")
    with Daemon(limits={"rate": 1000000, "burst": 1000000}) as d:
        # Closed loop, attached members; every member must get every message.
        r = run_ok(d, ["-r", "2", "-m", "5", "-s", "2", "-w", "4", "-d", "1"], "closed loop")
        check(r["mode"] == "closed" and r["rooms"] == 2 and r["members"] == 5, "echoed workload")
        # Fixed rate, plain control-connection members sharing connections.
        r = run_ok(d, ["-r", "3", "-m", "4", "-s", "1", "-R", "50", "-d", "1", "--plain",
                       "--share", "3"], "fixed rate, plain, shared")
        check(r["mode"] == "rate" and r["plain"] == 1, "fixed-rate mode reported")
        # Attached, shared control connections (how the scale check runs).
        run_ok(d, ["-r", "4", "-m", "3", "-s", "1", "-R", "20", "-d", "0.5", "--share", "2",
                   "--spin"], "attached, shared, spinning")
        d.assert_alive()
        port = d.port
    # Nothing listens any more: a clear failure, not a report.
    rc, out, err = bench(["-p", str(port), "-r", "1", "-m", "2", "-d", "1", "--setup-limit", "5"])
    check(rc == 1 and out == "" and "roombench:" in err,
          "no server: exit %d, stdout %r, stderr %r" % (rc, out, err))
    rc, _, err = bench(["-s", "5", "-m", "2"])
    check(rc == 1 and "--senders" in err, "bad arguments refused: %r" % err)


if __name__ == "__main__":
    main()
