#!/usr/bin/env python3
"""69-roombench-tls: roombench's --tls and --handshakes paths against a real
roomd in [tls] mode = required (issue 13's benchmark), so they cannot rot.
No timing assertions: a short closed-loop run over TLS, attached members
(control and room ports both TLS) and plain members, delivers every
message; --handshakes finishes every connection, over TLS (unverified, and
verified against the CA with --cafile) and plain; a certificate from
another CA fails --cafile loudly."""
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403
from tlstest import Pki, tls_ini  # noqa: E402

ROOMBENCH = os.environ.get("ROOMBENCH") or _binary("ROOMBENCH", "bench/roombench")
# Every connection comes from 127.0.0.1: the per-address limits must allow
# a run's connection rate (as bench/bench.ini does).
LIMITS = {"rate": 1000000, "burst": 1000000, "rate_per_ip": 1000000,
          "burst_per_ip": 1000000, "connect_rate_per_ip": 1000000,
          "connect_burst_per_ip": 1000000}


def bench(d, args, timeout=60):
    p = subprocess.run([ROOMBENCH, "-p", str(d.port), "--pid", str(d.proc.pid),
                        "--warmup", "0.2"] + args,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def one_line(rc, out, err, what):
    check(rc == 0, "%s: roombench exit %d\nstdout: %s\nstderr: %s" % (what, rc, out, err))
    lines = out.strip().splitlines()
    check(len(lines) == 1, "%s: one JSON line expected, got %r" % (what, out))
    return json.loads(lines[0])


def relay(d, args, what):
    r = one_line(*bench(d, ["--tls", "-d", "2"] + args), what)
    for key in ("lost", "duplicated", "reordered", "misrouted", "silent_rooms"):
        check(r[key] == 0, "%s: %s = %s" % (what, key, r[key]))
    check(r["tls"] == 1 and r["deliveries"] > 0 and r["deliveries"] == r["expected"],
          "%s: tls %s, deliveries %s, expected %s" % (what, r["tls"], r["deliveries"],
                                                      r["expected"]))
    print("%s: %d deliveries" % (what, r["deliveries"]))


def handshakes(d, args, tls, what):
    r = one_line(*bench(d, ["--handshakes", "-d", "1", "--inflight", "8"] + args), what)
    check(r["mode"] == "handshakes" and r["tls"] == tls, "%s: mode/tls: %r" % (what, r))
    check(r["handshakes"] > 0 and r["unfinished"] == 0,
          "%s: %s handshakes, %s unfinished" % (what, r["handshakes"], r["unfinished"]))
    check(r["daemon_cpu_s"] >= 0 and r["daemon_cpu_us_per_handshake"] >= 0,
          "%s: no daemon CPU figures: %r" % (what, r))
    print("%s: %d in 1 s" % (what, r["handshakes"]))


def main():
    pki = Pki()
    cert, key = pki.cert("server")
    other = Pki("another CA")
    with Daemon(limits=LIMITS, extra_ini=tls_ini("required", cert, key)) as d:
        relay(d, ["-r", "2", "-m", "5", "-s", "2", "-w", "4"], "closed loop, attached, TLS")
        relay(d, ["-r", "2", "-m", "4", "-s", "1", "-R", "50", "--plain", "--share", "2"],
              "fixed rate, plain members, TLS")
        handshakes(d, ["--tls"], 1, "TLS handshakes")
        handshakes(d, ["--tls", "--cafile", pki.ca], 1, "TLS handshakes, verified")
        rc, out, err = bench(d, ["--tls", "--cafile", other.ca, "--handshakes", "-d", "1"])
        check(rc == 1 and out == "" and "handshake failed" in err,
              "a certificate of another CA: exit %d, stdout %r, stderr %r" % (rc, out, err))
        d.assert_alive()
    with Daemon(limits=LIMITS) as d:
        handshakes(d, [], 0, "plain connections")
    p = subprocess.run([ROOMBENCH, "-t", "limit", "--tls"], capture_output=True, text=True,
                       timeout=10)
    check(p.returncode == 1 and "roomd only" in p.stderr,
          "--tls against the limit server: exit %d, %r" % (p.returncode, p.stderr))


if __name__ == "__main__":
    main()
