#!/usr/bin/env python3
"""28-persist-bad-store: a database roomd cannot use stops it at start with
exit code 1 and one message that names the file and says what to do:
a corrupt file, a file from a newer schema, another program's database, a
file another roomd is using, a read-only directory (with and without the
file), an unreadable file, and a data directory that cannot be created. The
file is left as it was. File modes are checked as user nobody when the test
runs as root (root ignores them)."""
import os
import sqlite3
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def config(db):
    return ("[server]\nbind = %s\nroom_port_min = 0\nroom_port_max = 0\nserver_id = %s\n"
            "database = %s\n[room:lobby]\nref = 1\n" % (HOST, SERVER_ID, db))


def refused(dd, db, wants, label, as_nobody=False):
    """roomd must exit 1 before listening, its message naming db and
    containing every string in wants."""
    work = dd.file("work-" + label)
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    before = open(db, "rb").read() if os.path.isfile(db) and os.access(db, os.R_OK) else None
    rc, out = roomd_once(config(db), work, as_nobody=as_nobody)
    check(rc == 1, "%s: expected exit code 1, got %s; output:\n%s" % (label, rc, out[-3000:]))
    msg = [l for l in out.splitlines() if l.startswith("roomd: database")]
    check(len(msg) == 1, "%s: expected one 'roomd: database ...' line; output:\n%s" % (label, out[-3000:]))
    check(db in msg[0], "%s: the message does not name %s: %s" % (label, db, msg[0]))
    for w in wants:
        check(w in msg[0], "%s: %r not in the message: %s" % (label, w, msg[0]))
    check("control listening" not in out, "%s: roomd served" % label)
    if before is not None:
        check(open(db, "rb").read() == before, "%s: roomd changed the file it refused" % label)
    print("%s: exit %d: %s" % (label, rc, msg[0]))


def good_db(dd, name):
    """A real roomd database (made by roomd itself), closed cleanly."""
    db = dd.file(name)
    work = dd.file("work-make-" + name)
    os.makedirs(work)
    rc, out = roomd_once(config(db), work)
    check(rc is None and os.path.isfile(db), "could not create a good database: %s" % out[-2000:])
    return db


def main():
    with DataDir() as dd:
        os.chmod(dd.path, 0o755)

        # Corrupt: a text file, and a real database with pages overwritten.
        db = dd.file("garbage.db")
        with open(db, "wb") as f:
            f.write(b"this is not a database\n" * 200)
        refused(dd, db, ["damaged or not a database", "restore it from a backup"], "not-a-database")
        db = good_db(dd, "corrupt.db")
        data = bytearray(open(db, "rb").read())
        check(len(data) >= 4 * 4096, "database smaller than expected: %d bytes" % len(data))
        data[4096:len(data)] = b"\xa5" * (len(data) - 4096)
        open(db, "wb").write(bytes(data))
        refused(dd, db, ["damaged or not a database"], "corrupt-pages")

        # Newer schema.
        db = good_db(dd, "newer.db")
        con = sqlite3.connect(db)
        con.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'")
        con.commit()
        con.close()
        refused(dd, db, ["schema version 7 was written by a newer roomd", "restore a backup"], "newer-schema")

        # Another program's database.
        db = dd.file("foreign.db")
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE invoices (id INTEGER)")
        con.commit()
        con.close()
        refused(dd, db, ["not roomd's"], "foreign")

        # Another roomd is using it.
        db = dd.file("shared.db")
        with Daemon(server={"database": db}) as d:
            refused(dd, db, ["another roomd is using it"], "in-use")
            d.assert_alive()

        # Read-only directory: no file yet, then a file that needs its -wal.
        ro = dd.file("readonly")
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        refused(dd, os.path.join(ro, "roomd.db"), ["cannot open or create it", "Permission denied",
                                                   "set [server] database"], "readonly-dir", True)
        os.chmod(ro, 0o755)
        db = good_db(dd, "readonly/existing.db")
        os.chmod(db, 0o666)
        os.chmod(ro, 0o555)
        refused(dd, db, ["FILE-wal", "fix the owner or mode"], "readonly-dir-existing-file", True)
        os.chmod(ro, 0o755)

        # Unreadable file.
        db = good_db(dd, "unreadable.db")
        os.chmod(db, 0o000)
        refused(dd, db, ["Permission denied"], "unreadable", True)

        # The data directory cannot be created (its parent is read-only).
        os.chmod(ro, 0o555)
        refused(dd, os.path.join(ro, "sub", "roomd.db"), ["cannot create its directory",
                                                          "Permission denied"], "no-data-dir-ro", True)


run(main)
