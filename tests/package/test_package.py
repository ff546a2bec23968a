#!/usr/bin/env python3
"""test_package.py - install the built .deb on this machine, use it as an
admin would, remove and purge it, and check what each step leaves.

    tests/package/test_package.py build/package/roomd_0.1.0_amd64.deb

scripts/test.sh runs it as its "package" step, after scripts/package.sh.
It needs root and dpkg, and fails (never skips) without them. It uses the
shipped config's ports (control 9000, room dev 8999, others from 9001 up)
and fails at once, saying so, when 9000 or 8999 is taken.

What it checks, in order:
  install   dpkg -i: the files where Debian expects them, the conffile, the
            dependencies from shlibdeps, the roomd system user, /var/lib/roomd
            owned by it, and that nothing was started or enabled;
  check     roomd -t -c /etc/roomd/rooms.ini passes; --help names that file;
            systemd-analyze verify passes on the unit and security's overall
            exposure is printed and bounded; man renders the installed pages
            without warnings;
  run       roomd started from the installed files with the unit's command
            line, User=, Group= and LimitNOFILE= (setpriv, prlimit: no systemd
            needed), with a notify socket of the test's own: READY=1; two
            installed roomc processes chat; SIGHUP reloads; SIGTERM exits 0;
            a restart gives the message back from /var/lib/roomd/roomd.db;
  conffile  an admin's edit of /etc/roomd/rooms.ini survives a reinstall;
  remove    dpkg -r: programs gone, config and data kept;
  purge     dpkg -P: nothing of the package left (files, directories, data,
            an admin's enable link); only the roomd user stays, as Debian
            keeps system users. The test then deletes the user if it made it,
            so the machine ends as it began.
"""

import os
import pwd
import select
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

UNIT = "/lib/systemd/system/roomd.service"
CONF = "/etc/roomd/rooms.ini"
STATE = "/var/lib/roomd"
WANTS = "/etc/systemd/system/multi-user.target.wants/roomd.service"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def sh(*args, ok=(0,), timeout=120, env=None):
    """Run a command; return (rc, stdout+stderr). Fails on an rc not in ok."""
    p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, env=env)
    out = p.stdout.decode("utf-8", "replace")
    if ok is not None and p.returncode not in ok:
        raise Failure("%s: exit %d\n%s" % (" ".join(args), p.returncode, out))
    return p.returncode, out


def installed():
    rc, out = sh("dpkg-query", "-W", "-f=${Status}", "roomd", ok=None)
    return rc == 0 and "installed" in out and "not-installed" not in out and \
        "config-files" not in out


def status():
    rc, out = sh("dpkg-query", "-W", "-f=${Status}", "roomd", ok=None)
    return out.strip() if rc == 0 else "unknown to dpkg"


def roomd_procs():
    """PIDs of processes running /usr/sbin/roomd or as the roomd user."""
    pids = []
    try:
        uid = pwd.getpwnam("roomd").pw_uid
    except KeyError:
        uid = None
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
            st = os.stat("/proc/%s" % d)
        except OSError:
            continue
        if exe.startswith("/usr/sbin/roomd") or (uid is not None and st.st_uid == uid):
            pids.append(int(d))
    return pids


def has_cap_sys_resource():
    with open("/proc/self/status") as f:
        eff = [l for l in f if l.startswith("CapEff:")][0].split()[1]
    return bool(int(eff, 16) & (1 << 24))


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def unit_settings():
    """The [Service] assignments of the installed unit (last one wins)."""
    vals = {}
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                k, v = line.split("=", 1)
                vals[k.strip()] = v.strip()
    return vals


# ---- a notify socket of our own, as systemd would give --------------------

class Notify:
    def __init__(self):
        self.name = "roomd-pkgtest-%d" % os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)  # abstract: any uid may send to it
        self.got = []

    def env_value(self):
        return "@" + self.name

    def wait_for(self, field, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            msg = self.sock.recv(4096).decode()
            self.got.append(msg)
            if field in msg.split("\n"):
                return msg
        raise Failure("no %s on the notify socket within %.0fs (got %r)" % (field, timeout, self.got))


# ---- the installed daemon, started as the unit would ------------------------

class Installed:
    def __init__(self, unit, notify, logdir, nofile):
        self.unit, self.notify, self.nofile = unit, notify, nofile
        self.log = os.path.join(logdir, "roomd-%d.log" % time.monotonic_ns())
        self.proc = None

    def start(self):
        u = self.unit
        cmd = ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile), "--",
               "setpriv", "--reuid=" + u["User"], "--regid=" + u["Group"], "--init-groups",
               "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        cmd += shlex.split(u["ExecStart"])
        env = {"PATH": PATH_ENV, "LANG": "C.UTF-8", "NOTIFY_SOCKET": self.notify.env_value()}
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd="/", env=env)
        self.notify.wait_for("READY=1")
        return self

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            time.sleep(0.05)
        raise Failure("roomd did not log %r within %.0fs; log:\n%s" % (needle, timeout, self.text()))

    def stop(self):
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("roomd did not exit within 10 s of SIGTERM; log:\n" + self.text())
        self.logf.close()
        check(rc == 0, "roomd exited %d after SIGTERM; log:\n%s" % (rc, self.text()))
        return time.monotonic() - t0

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def roomc(name, script, timeout=20):
    p = subprocess.run(["/usr/bin/roomc", "-h", "127.0.0.1", "-p", "9000", "-n", name],
                       input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, env={"PATH": PATH_ENV, "LANG": "C.UTF-8"})
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Reader:
    """A long-running installed roomc whose output we wait on."""

    def __init__(self, name):
        self.proc = subprocess.Popen(["/usr/bin/roomc", "-h", "127.0.0.1", "-p", "9000", "-n", name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env={"PATH": PATH_ENV})
        self.out = b""

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_for(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.out:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not r:
                raise Failure("roomc did not print %r within %.0fs; it printed:\n%s"
                              % (needle, timeout, self.out.decode("utf-8", "replace")))
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise Failure("roomc exited before printing %r; it printed:\n%s"
                              % (needle, self.out.decode("utf-8", "replace")))
            self.out += chunk

    def finish(self):
        self.proc.stdin.close()
        rc = self.proc.wait(10)
        check(rc == 0, "roomc exited %d at end of input" % rc)


# ---- the steps ---------------------------------------------------------------

def package_paths(deb):
    """Files and directories the .deb ships, as absolute paths."""
    rc = subprocess.run(["dpkg-deb", "--contents", deb], stdout=subprocess.PIPE, check=True)
    paths = []
    for line in rc.stdout.decode().splitlines():
        p = line.split()[5]
        paths.append(p[1:].rstrip("/") or "/")
    return paths


def step_install(deb):
    sh("dpkg", "-i", deb)
    check(installed(), "dpkg -i: roomd not installed (%s)" % status())
    for path, kind, mode in (
            ("/usr/sbin/roomd", "file", 0o755), ("/usr/bin/roomc", "file", 0o755),
            (CONF, "file", 0o644), (UNIT, "file", 0o644),
            ("/usr/share/man/man8/roomd.8.gz", "file", 0o644),
            ("/usr/share/man/man1/roomc.1.gz", "file", 0o644),
            ("/usr/share/man/man5/rooms.ini.5.gz", "file", 0o644),
            ("/usr/share/doc/roomd/copyright", "file", 0o644),
            ("/usr/share/doc/roomd/changelog.gz", "file", 0o644),
            ("/usr/share/doc/roomd/OPERATIONS.md", "file", 0o644)):
        check(os.path.isfile(path), "installed: %s missing" % path)
        got = stat.S_IMODE(os.stat(path).st_mode)
        check(got == mode, "installed: %s has mode %o, expected %o" % (path, got, mode))
    _, conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "roomd")
    check(CONF in conffiles, "%s is not a conffile: %r" % (CONF, conffiles))
    _, deps = sh("dpkg-query", "-W", "-f=${Depends}", "roomd")
    for lib in ("adduser", "libc6", "libiniparser1", "libsqlite3-0", "libsystemd0", "libedit2"):
        check(lib in deps, "Depends lacks %s: %s" % (lib, deps))
    print("install: files, conffile %s, Depends: %s" % (CONF, deps))

    try:
        pw = pwd.getpwnam("roomd")
    except KeyError:
        raise Failure("postinst did not create the roomd user")
    check(pw.pw_uid < 1000, "roomd is not a system user (uid %d)" % pw.pw_uid)
    check(pw.pw_shell.endswith("nologin") or pw.pw_shell == "/bin/false",
          "roomd has a login shell: %s" % pw.pw_shell)
    st = os.stat(STATE)
    check(st.st_uid == pw.pw_uid and st.st_gid == pw.pw_gid and stat.S_IMODE(st.st_mode) == 0o750,
          "%s: owner %d:%d mode %o, expected roomd:roomd 750" % (STATE, st.st_uid, st.st_gid,
                                                                   stat.S_IMODE(st.st_mode)))
    print("install: user roomd uid %d shell %s home %s; %s roomd:roomd 0750"
          % (pw.pw_uid, pw.pw_shell, pw.pw_dir, STATE))
    check(not roomd_procs(), "postinst started something: pids %s" % roomd_procs())
    check(not os.path.lexists(WANTS), "postinst enabled the unit: %s exists" % WANTS)
    print("install: nothing started, nothing enabled")


def step_check():
    rc, out = sh("/usr/sbin/roomd", "-t", "-c", CONF)
    check("configuration OK" in out, "roomd -t: %s" % out)
    print("check: roomd -t -c %s: %s" % (CONF, out.strip()))
    _, out = sh("/usr/sbin/roomd", "--help")
    check("(default: %s)" % CONF in out, "roomd --help does not name %s as the default:\n%s" % (CONF, out))

    rc, out = sh("systemd-analyze", "verify", UNIT, ok=None)
    check(rc == 0 and "roomd" not in out, "systemd-analyze verify %s: exit %d\n%s" % (UNIT, rc, out))
    print("check: systemd-analyze verify: OK")
    _, out = sh("systemd-analyze", "security", "--offline=true", "--no-pager", UNIT, ok=None)
    overall = [l for l in out.splitlines() if "Overall exposure level" in l]
    check(overall, "systemd-analyze security printed no overall level:\n" + out)
    level = float(overall[0].split(":")[1].split()[0])
    print("check: systemd-analyze security: %s" % overall[0].strip("→ ").strip())
    check(level <= 2.0, "exposure %.1f: the unit lost sandboxing (was 1.x)" % level)

    for page in ("man8/roomd.8.gz", "man1/roomc.1.gz", "man5/rooms.ini.5.gz"):
        p = subprocess.run(["man", "--warnings", "-l", "/usr/share/man/" + page],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
                           env={"PATH": PATH_ENV, "MANWIDTH": "80", "LANG": "C.UTF-8"})
        check(p.returncode == 0 and not p.stderr, "man --warnings -l %s: %s" % (page, p.stderr.decode()))
    print("check: man --warnings: the three installed pages render without warnings")


def shipped_fd_need():
    """What roomd computes from the installed config's limits (server/main.c,
    raise_fd_limit): max_clients x (1 + max_rooms_per_client) + 3 x max_rooms
    + 32 spare."""
    vals = {"max_clients": 1024, "max_rooms_per_client": 32, "max_rooms": 256}
    section = None
    with open(CONF) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]").lower()
            elif section == "limits" and "=" in line and not line.startswith((";", "#")):
                k, v = (x.strip() for x in line.split("=", 1))
                if k in vals:
                    vals[k] = int(v)
    return vals["max_clients"] * (1 + vals["max_rooms_per_client"]) + 3 * vals["max_rooms"] + 32


def step_run(logdir):
    for port in (9000, 8999):
        check(port_free(port), "port %d is taken: the shipped config needs it; stop what listens there" % port)
    unit = unit_settings()
    for key in ("ExecStart", "User", "Group", "LimitNOFILE"):
        check(key in unit, "the unit has no %s=" % key)
    need = shipped_fd_need()
    check(int(unit["LimitNOFILE"]) == need,
          "LimitNOFILE=%s, but the shipped limits need %d descriptors" % (unit["LimitNOFILE"], need))
    # Raising the hard limit needs CAP_SYS_RESOURCE, which systemd has and a
    # container's root may not: then the test runs with the hard limit it has.
    hard = int(open("/proc/self/limits").read().split("Max open files")[1].split()[1])
    nofile = need if hard >= need or has_cap_sys_resource() else hard
    print("run: as the unit does: %s (User=%s, LimitNOFILE=%s = the shipped limits' need; "
          "run with %d)" % (unit["ExecStart"], unit["User"], unit["LimitNOFILE"], nofile))
    notify = Notify()
    d = Installed(unit, notify, logdir, nofile).start()
    try:
        with open("/proc/%d/status" % d.proc.pid) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        check(all(int(u) == pwd.getpwnam("roomd").pw_uid for u in uids), "roomd runs as uids %s" % uids)
        with open("/proc/%d/limits" % d.proc.pid) as f:
            lim = [l for l in f if l.startswith("Max open files")][0].split()
        check(int(lim[3]) == nofile, "Max open files %s, expected %d" % (lim[3], nofile))
        warned = "open file limit is" in d.text()
        check(warned == (nofile < need), "roomd's descriptor warning: %s with %d of %d descriptors:\n%s"
              % ("given" if warned else "not given", nofile, need, d.text()))
        print("run: READY=1; pid %d as roomd, Max open files %s, descriptor warning %s"
              % (d.proc.pid, lim[3], "given (this machine's hard limit)" if warned else "not given"))

        bob = Reader("bob")
        bob.send("join lobby")
        bob.wait_for("[lobby] bob: bob has joined this chatroom.")
        rc, out = roomc("alice", "join lobby\nsend lobby hello from the package\nleave_chatroom lobby\n")
        check(rc == 0 and "[lobby] alice: hello from the package" in out,
              "alice's roomc: exit %d\n%s" % (rc, out))
        bob.wait_for("[lobby] alice: hello from the package")
        bob.finish()
        print("run: bob (installed roomc) saw alice's message in lobby")

        os.kill(d.proc.pid, signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        d.wait_log("reload: %s: no change" % CONF)
        print("run: SIGHUP: RELOADING=1, READY=1, 'no change' logged")
    except BaseException:
        d.kill()
        raise
    secs = d.stop()
    notify.wait_for("STOPPING=1", timeout=1)
    db = os.path.join(STATE, "roomd.db")
    check(os.path.isfile(db), "no database at %s" % db)
    check(os.stat(db).st_uid == pwd.getpwnam("roomd").pw_uid, "%s is not roomd's" % db)
    print("run: SIGTERM: STOPPING=1, exit 0 in %.2f s; %s owned by roomd" % (secs, db))

    d = Installed(unit, notify, logdir, nofile).start()
    try:
        rc, out = roomc("carol", "join lobby\nhistory lobby\n")
        check(rc == 0 and "alice: hello from the package" in out,
              "after a restart, lobby's history lacks alice's message:\n" + out)
    except BaseException:
        d.kill()
        raise
    d.stop()
    print("run: after a restart lobby's history has alice's message (from %s)" % db)


def step_conffile(deb):
    mark = "; admin's edit, kept by dpkg"
    with open(CONF, "a") as f:
        f.write(mark + "\n")
    sh("dpkg", "-i", deb)
    with open(CONF) as f:
        check(mark in f.read(), "reinstalling lost the admin's edit of " + CONF)
    sh("/usr/sbin/roomd", "-t", "-c", CONF)
    print("conffile: the admin's edit survives a reinstall")


def step_remove_purge(deb, paths):
    # An admin who enabled the unit; purge must take the link away too.
    rc, out = sh("systemctl", "enable", "roomd.service", ok=None)
    enabled = os.path.lexists(WANTS)
    print("remove: systemctl enable (offline): %s" % ("link made" if enabled else "no link: " + out.strip()))

    sh("dpkg", "-r", "roomd")
    check(not os.path.exists("/usr/sbin/roomd") and not os.path.exists("/usr/bin/roomc"),
          "dpkg -r left the programs")
    check(os.path.isfile(CONF), "dpkg -r removed the conffile (only purge may)")
    check(os.path.isfile(os.path.join(STATE, "roomd.db")), "dpkg -r removed the database (only purge may)")
    print("remove: programs gone; %s and %s kept (%s)" % (CONF, STATE, status()))

    sh("dpkg", "-P", "roomd")
    left = [p for p in paths if p not in ("/", "/etc", "/lib", "/lib/systemd", "/lib/systemd/system",
                                          "/usr", "/usr/bin", "/usr/sbin", "/usr/share",
                                          "/usr/share/doc", "/usr/share/man", "/usr/share/man/man1",
                                          "/usr/share/man/man5", "/usr/share/man/man8")
            and os.path.lexists(p)]
    check(not left, "purge left package files: %s" % left)
    for p in (STATE, "/etc/roomd", WANTS,
              "/var/lib/systemd/deb-systemd-helper-enabled/roomd.service.dsh-also",
              "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/roomd.service"):
        check(not os.path.lexists(p), "purge left %s" % p)
    rc, out = sh("dpkg-query", "-W", "roomd", ok=None)
    check(rc != 0 or status() in ("unknown ok not-installed", ""), "dpkg still knows roomd: %s" % status())
    check(not roomd_procs(), "a roomd process survived: %s" % roomd_procs())
    kept = []
    try:
        pwd.getpwnam("roomd")
        kept.append("user roomd (Debian keeps system users)")
    except KeyError:
        pass
    print("purge: %d package paths, %s, /etc/roomd%s gone; left: %s"
          % (len(paths), STATE, ", the enable link" if enabled else "", ", ".join(kept) or "nothing"))


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if len(sys.argv) != 2:
        print("usage: test_package.py ROOMD.deb", file=sys.stderr)
        return 2
    deb = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        print("FAIL: the package test installs a .deb on this machine: it must run as root", file=sys.stderr)
        return 1
    for tool in ("dpkg", "dpkg-deb", "setpriv", "prlimit", "systemd-analyze", "man", "systemctl"):
        if subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL).returncode:
            print("FAIL: %s not found (scripts/setup.sh installs what is needed)" % tool, file=sys.stderr)
            return 1
    check(os.path.isfile(deb), "no such package: " + deb)

    if installed() or "config-files" in status():
        print("setup: roomd is installed (%s): purging it first" % status())
        sh("dpkg", "-P", "roomd")
    try:
        pwd.getpwnam("roomd")
        user_before = True
    except KeyError:
        user_before = False
    paths = package_paths(deb)
    logdir = tempfile.mkdtemp(prefix="roomd-pkgtest-")
    try:
        step_install(deb)
        step_check()
        step_run(logdir)
        step_conffile(deb)
        step_remove_purge(deb, paths)
    finally:
        if installed() or "config-files" in status():
            sh("dpkg", "-P", "roomd", ok=None)
        if not user_before:
            sh("deluser", "--system", "--quiet", "roomd", ok=None)
            sh("delgroup", "--system", "--quiet", "roomd", ok=None)
    print("package test passed: %s" % os.path.basename(deb))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
