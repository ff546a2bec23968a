#!/usr/bin/env python3
"""51-log-syslog: [server] log_target = syslog sends every line to syslog as
roomd[PID], facility daemon, the level mapped to its priority, each line
keeping its [level] text and the client's address; stderr stays silent.

glibc's syslog() writes to /dev/log, so roomd runs in a private mount
namespace (unshare, as root) whose /dev holds /dev/null, /dev/urandom and a
/dev/log that is the test's own datagram socket. Without root or unshare
the test says so and passes without running (CI runs as root).
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from roomtest import TIMEOUT, check, fail, roomd_path, run, helo_req

# <PRI>TIMESTAMP roomd[PID]: [level] text   (RFC 3164 as glibc writes it)
LINE_RE = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d roomd\[(\d+)\]: \[(\w+)\] (.*)$")
LOG_DAEMON = 3 << 3
PRIORITY = {"error": 3, "warn": 4, "info": 6, "debug": 7}


def main():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("syslog: not run: needs root and unshare for a private /dev/log")
        return
    tmp = tempfile.mkdtemp(prefix="roomd-it-syslog-")
    sock_path = os.path.join(tmp, "log.sock")
    logsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    logsock.bind(sock_path)
    os.chmod(sock_path, 0o666)
    conf = os.path.join(tmp, "rooms.ini")
    with open(conf, "w") as f:
        f.write("[server]\nbind = 127.0.0.1\nroom_port_min = 0\nroom_port_max = 0\n"
                "log_level = debug\nlog_target = syslog\n")
    dev = os.path.join(tmp, "dev")
    os.mkdir(dev)
    for name in ("null", "urandom", "log"):
        open(os.path.join(dev, name), "w").close()
    script = ("mount --make-rprivate / && mount --bind /dev/null {d}/null && "
              "mount --bind /dev/urandom {d}/urandom && mount --bind {s} {d}/log && "
              "mount --rbind {d} /dev && exec {roomd} -p 0 -c {conf}").format(
                  d=dev, s=sock_path, roomd=roomd_path(), conf=conf)
    err_path = os.path.join(tmp, "stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
    lines = []

    def collect(pred, what):
        deadline = time.monotonic() + TIMEOUT * 2
        while time.monotonic() < deadline:
            for l in lines:
                if pred(l):
                    return l
            logsock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = logsock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                break
            m = LINE_RE.match(data)
            check(m, "not a syslog line from roomd: %r" % data)
            lines.append(m.groups())
        fail("no syslog line %s within %.0fs; got %r; stderr: %r"
             % (what, TIMEOUT * 2, lines, open(err_path).read()))

    try:
        pri, pid, level, text = collect(lambda l: "control listening on" in l[3], "'control listening'")
        port = int(re.search(r":(\d+)$", text).group(1))
        check(int(pid) == proc.pid, "syslog pid %s, roomd is %d" % (pid, proc.pid))
        check(int(pri) == LOG_DAEMON | PRIORITY["info"], "info line with priority %s" % pri)
        c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        c.sendall(helo_req("x"))
        c.recv(4096)
        c.close()
        pri, _, level, text = collect(lambda l: "connection from 127.0.0.1" in l[3],
                                      "naming the client's address")
        check(level == "debug" and int(pri) == LOG_DAEMON | PRIORITY["debug"],
              "debug line as [%s] priority %s" % (level, pri))
        print("syslog: roomd[%s]: %d lines, e.g. <%s> [%s] %s" % (pid, len(lines), pri, level, text))
        for p, _, lv, _ in lines:
            check(int(p) == LOG_DAEMON | PRIORITY[lv], "[%s] line with priority %s" % (lv, p))
        proc.terminate()
        rc = proc.wait(TIMEOUT * 2)
        check(rc == 0, "roomd exit %d" % rc)
        collect(lambda l: l[3] == "roomd stopped", "'roomd stopped'")
        stderr = open(err_path).read()
        check(stderr == "", "roomd wrote to stderr with log_target = syslog: %r" % stderr)
        print("syslog: %d lines, each with facility daemon and its level's priority; "
              "stderr empty" % len(lines))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logsock.close()
        shutil.rmtree(tmp, ignore_errors=True)


run(main)
