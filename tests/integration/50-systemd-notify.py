#!/usr/bin/env python3
"""50-systemd-notify: roomd under a fake systemd. The test owns the notify
socket (an abstract AF_UNIX datagram socket named in NOTIFY_SOCKET) and sets
WATCHDOG_USEC, as systemd does for a Type=notify unit with WatchdogSec=.

- READY=1 once the control port listens;
- WATCHDOG=1 at half of WATCHDOG_USEC, each interval within a stated bound;
- SIGHUP with a changed file: RELOADING=1 then READY=1; log_level applies
  at once (debug lines appear), [limits] room_unattached_max is reported as
  needing a restart, and the control port given by -p is not reported;
- SIGHUP with log_target = syslog: stderr gets one line saying so and then
  nothing more; back to stderr with the next SIGHUP;
- SIGHUP with a bad file: RELOADING=1, READY=1, the error logged with its
  file and line, and roomd keeps serving;
- SIGTERM: STOPPING=1 and exit 0.
"""

import os
import signal
import socket
import time

from roomtest import FACTOR, TIMEOUT, Daemon, check, fail, run


class FakeSystemd:
    def __init__(self):
        self.name = "roomd-it-notify-%d" % os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.log = []  # (monotonic time, set of "KEY=VALUE" lines)

    def env(self):
        return "@" + self.name

    def _recv(self, timeout):
        self.sock.settimeout(max(0.001, timeout))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        entry = (time.monotonic(), set(data.decode().split("\n")))
        self.log.append(entry)
        return entry

    def expect(self, field, timeout=None, skip=("WATCHDOG=1",)):
        """The next datagram with anything but the skipped fields must hold field."""
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while True:
            e = self._recv(deadline - time.monotonic())
            if e is None:
                fail("no %s from roomd within %.1fs; got %r" % (field, timeout or TIMEOUT, self.log))
            if e[1] <= set(skip):
                continue
            check(field in e[1], "expected %s, roomd sent %r" % (field, sorted(e[1])))
            return e

    def pings(self, n):
        """Times of the next n WATCHDOG=1 datagrams."""
        times = []
        while len(times) < n:
            e = self._recv(TIMEOUT * 2)
            if e is None:
                fail("watchdog pings stopped after %d; got %r" % (len(times), self.log[-5:]))
            if "WATCHDOG=1" in e[1]:
                times.append(e[0])
        return times




def main():
    sd = FakeSystemd()
    # Pings every 300 ms x FACTOR: shorter than the acceptor's idle wait
    # (500 ms), so pings on time show that the watchdog sets the wait.
    watchdog_ms = 600 * FACTOR
    os.environ["NOTIFY_SOCKET"] = sd.env()
    os.environ["WATCHDOG_USEC"] = str(watchdog_ms * 1000)
    with Daemon(limits={"max_clients": 100}) as d:
        sd.expect("READY=1")
        print("notify: READY=1 after 'control listening'")

        times = sd.pings(6)
        gaps = [round((b - a) * 1000) for a, b in zip(times, times[1:])]
        want = watchdog_ms // 2
        low, high = want * 9 // 10, want + 150 * FACTOR
        print("notify: watchdog %d ms: ping intervals %s ms (want %d, bound %d..%d)"
              % (watchdog_ms, gaps, want, low, high))
        for g in gaps:
            check(low <= g <= high, "ping interval %d ms, want %d (bound %d..%d)" % (g, want, low, high))

        # A changed file: log_level applies, room_unattached_max needs a restart, the
        # control port (-p 0 on the command line) is not a change.
        mark = len(d.stderr())
        d.server["log_level"] = "debug"
        d.server["port"] = 12345
        d.limits["room_unattached_max"] = 4
        d.rewrite_config()
        d.proc.send_signal(signal.SIGHUP)
        sd.expect("RELOADING=1")
        sd.expect("READY=1")
        text = d.wait_log("need", mark)
        check("applied log_level debug (was info)" in text and
              "[limits] room_unattached_max 4 (was 8) needs a restart" in text and
              "[server] port" not in text,
              "the reload line is not as expected:\n" + text)
        c = d.connect("after-reload")
        c.ping()
        d.wait_log("[debug] acceptor: connection from", mark)
        print("notify: SIGHUP: RELOADING=1, READY=1; %s" % text.strip().split("[warn] ", 1)[1])

        # log_target = syslog: one line on stderr says so, then none.
        mark = len(d.stderr())
        d.server["log_target"] = "syslog"
        d.rewrite_config()
        d.proc.send_signal(signal.SIGHUP)
        sd.expect("RELOADING=1")
        sd.expect("READY=1")
        d.wait_log("reload: log lines go to syslog from now on", mark)
        quiet_from = len(d.stderr())
        d.connect("while-syslog").ping()
        time.sleep(0.2 * FACTOR)
        check(len(d.stderr()) == quiet_from, "lines still on stderr after log_target = syslog:\n"
              + d.stderr()[quiet_from:])
        d.server["log_target"] = "stderr"
        d.rewrite_config()
        d.proc.send_signal(signal.SIGHUP)
        sd.expect("RELOADING=1")
        sd.expect("READY=1")
        d.wait_log("applied log_target stderr (was syslog)", quiet_from)
        print("notify: log_target syslog then stderr: nothing on stderr in between")

        # A bad file: logged with file and line, nothing changes, roomd serves.
        mark = len(d.stderr())
        d.extra_ini = "[nonsense]\nkey = 1"
        d.rewrite_config()
        bad_line = d.config_text().splitlines().index("[nonsense]") + 1
        d.proc.send_signal(signal.SIGHUP)
        sd.expect("RELOADING=1")
        e = sd.expect("READY=1")
        text = d.wait_log("is invalid, nothing changed", mark)
        check("%s:%d: [nonsense]: unknown section" % (d.conf, bad_line) in text,
              "the error does not name the file and line:\n" + text)
        check("STATUS=serving; the last reload failed (see the log)" in e[1], "status: %r" % e[1])
        d.assert_alive()
        c.ping()
        d.connect("after-bad-reload").ping()
        print("notify: bad file on SIGHUP: RELOADING=1, READY=1, error at line %d logged, "
              "still serving" % bad_line)
        sd.pings(2)  # the watchdog goes on

        d.stop()
        sd.expect("STOPPING=1")
        print("notify: SIGTERM: STOPPING=1, exit 0 in %.2f s" % d.exit_seconds)


run(main)
