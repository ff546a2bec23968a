#!/usr/bin/env python3
"""29-persist-backup: `roomd -c FILE --backup DEST` takes a consistent copy
of the database while the daemon runs and traffic goes on, and so does the
sqlite3 shell's .backup (both documented in docs/OPERATIONS.md). Restoring a
copy (the documented steps: stop roomd, copy the file in place, remove any
-wal/-shm, start) brings back the rooms under their refs and the history up
to the moment of the copy: every message acknowledged before the backup
began, a prefix of the room's order. --backup refuses to overwrite a file
and needs a database in the config."""
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

LIMITS = {"history": 5000, "max_message": 2048, "rate": 1000000, "burst": 1000000}
# A copy holds what was committed when it began: all but the messages of
# the last batch interval (100 ms) and a commit in progress.
COMMIT_BOUND_S = 0.100 + 0.150 * FACTOR


def backup_cmd(d, dest):
    p = subprocess.run([roomd_path(), "-c", d.conf, "--backup", dest], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30 * FACTOR)
    for marker in SANITIZER_MARKERS:
        check(marker.encode() not in p.stdout, "sanitizer report from roomd --backup:\n%s" % p.stdout)
    return p


class Chatter:
    """Keeps chatting in a room and records the index of every echo read."""

    def __init__(self, c, ref, jid):
        self.c, self.ref, self.jid = c, ref, jid
        self.sent = 0
        self.acked = 0
        self.ack_times = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set() and self.sent < 4000:
            self.c.send(b"".join(chat_req(self.ref, self.jid, "alice", "b%d" % (self.sent + j))
                                 for j in range(10)))
            self.sent += 10
            for _ in range(10):
                self.c.read_until(b"\n\n", 10 * FACTOR, "an echo")
                self.ack_times.append(time.monotonic())
                self.acked += 1
            time.sleep(0.01)  # about 1000 a second: copies land mid-stream

    def acked_by(self, t):
        """Messages acknowledged by time t."""
        return sum(1 for a in list(self.ack_times) if a <= t)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(30 * FACTOR)
        return False


def restore_and_check(db_copy, dd, name, refs, acked_before, sent):
    """The documented restore: the copy becomes the database file (no
    stale -wal/-shm beside it), roomd starts on it."""
    target = dd.file(name + "-restored.db")
    shutil.copyfile(db_copy, target)
    for ext in ("-wal", "-shm"):
        if os.path.exists(target + ext):
            os.unlink(target + ext)
    con = sqlite3.connect(target)
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "%s: integrity_check failed" % name)
    con.close()
    with Daemon(server={"database": target}, limits=LIMITS, rooms={"lobby": {"ref": 1}}) as d:
        c = d.connect("carol")
        jids = {}
        for room, ref in refs.items():
            r2, jids[room], _, _ = c.join(room, "carol")
            if room == "side":
                # No message was ever kept in side: forgotten at start
                # (issue 10), it comes back under a ref never handed out.
                check(r2 > max(refs.values()), "%s: side (no history) came back as ref %d, refs so "
                      "far %s" % (name, r2, refs))
            else:
                check(r2 == ref, "%s: %s restored as ref %d, was %d" % (name, room, r2, ref))
        jid = jids["busy"]
        got = [t for _, t in history_of(c, refs["busy"], jid, "carol", timeout=20 * FACTOR)]
        d.stop()
    check(got == ["b%d" % i for i in range(len(got))], "%s: restored history is not a prefix of the "
          "room's order" % name)
    check(len(got) >= acked_before, "%s: the copy has %d messages, %d were acknowledged %.0f ms or "
          "more before the backup began" % (name, len(got), acked_before, COMMIT_BOUND_S * 1000))
    check(len(got) <= sent, "%s: more messages than sent" % name)
    print("%s: %d messages acknowledged before the commit bound, %d in the copy, %d sent in all"
          % (name, acked_before, len(got), sent))


def main():
    with DataDir() as dd:
        db = dd.file("live.db")
        with Daemon(server={"database": db}, limits=LIMITS, rooms={"lobby": {"ref": 1}}) as d:
            c = d.connect("alice")
            refs = {"lobby": 1}
            refs["busy"], jid, _, _ = c.join("busy", "alice")
            refs["side"], _, _, _ = c.join("side", "alice")
            with Chatter(c, refs["busy"], jid) as ch:
                while ch.acked < 600:
                    time.sleep(0.01)
                # roomd --backup while messages flow.
                acked1 = ch.acked_by(time.monotonic() - COMMIT_BOUND_S)
                dest1 = dd.file("roomd-backup.db")
                p = backup_cmd(d, dest1)
                check(p.returncode == 0, "--backup failed (%d): %s" % (p.returncode, p.stdout))
                check(b"consistent copy of" in p.stdout, "--backup said: %s" % p.stdout)
                # The sqlite3 shell's .backup, also while messages flow.
                mark = ch.acked
                while ch.acked < mark + 400:
                    time.sleep(0.01)
                acked2 = ch.acked_by(time.monotonic() - COMMIT_BOUND_S)
                dest2 = dd.file("shell-backup.db")
                shell = shutil.which("sqlite3")
                if shell:
                    p2 = subprocess.run([shell, db, ".backup '%s'" % dest2], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, timeout=30 * FACTOR)
                    check(p2.returncode == 0, "sqlite3 .backup failed: %s" % p2.stdout)
                while ch.acked < acked2 + 400 and ch.sent < 4000:
                    time.sleep(0.01)
            d.assert_alive()
            # Refusals.
            p = backup_cmd(d, dest1)
            check(p.returncode == 1 and b"exists already" in p.stdout, "--backup over a file: %s" % p.stdout)
            sent = ch.sent
            d.stop()
        restore_and_check(dest1, dd, "roomd --backup", refs, acked1, sent)
        if shell:
            restore_and_check(dest2, dd, "sqlite3 .backup", refs, acked2, sent)
        else:
            print("sqlite3 shell not installed: its .backup not tested")
        # No database in the config: nothing to back up.
        with Daemon() as d:
            p = backup_cmd(d, dd.file("none.db"))
            check(p.returncode == 1 and b"no [server] database" in p.stdout, "--backup without a database: "
                  "%s" % p.stdout)


run(main)
