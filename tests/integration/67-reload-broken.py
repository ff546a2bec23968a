#!/usr/bin/env python3
"""67-reload-broken: a reload of a broken file changes nothing and says why:
every error is logged with the file and its line, and the daemon runs on
its old config (WELCOME unchanged, members kept, the old max_message still
enforced). A file that changes keys that need a restart ([server] bind,
room ports, a room's port) gets each reported as such, with the value that
stays, while the rest of it (welcome, max_message) is applied. roomd -t
prints the effective configuration, every key of roomd --list-keys with a
value, which roomd -t accepts again as the same configuration."""
import os
import signal
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

import time  # noqa: E402




def welcome(d, max_message, text):
    w = d.connect("welcome")
    w.send(b"WELCOME: 0\n")
    w.expect(b"WELCOME: test-id\nVERSION: roomd 0.1.0\nLIMITS: max_name=32 max_message=%d"
             b" max_rooms_per_client=32 history=50 rate=200 burst=400\nTEXT: %s\n"
             % (max_message, text.encode()))
    w.close()


def dump(conf):
    p = subprocess.run([roomd_path(), "-t", "-c", conf], capture_output=True, text=True, timeout=TIMEOUT)
    check(p.returncode == 0, "roomd -t failed: %s" % p.stderr)
    return p.stdout


def check_dump(d):
    out = dump(d.conf)
    keys = subprocess.run([roomd_path(), "--list-keys"], capture_output=True, text=True,
                          timeout=TIMEOUT).stdout.split("\n")
    section = None
    seen = set()
    for line in out.splitlines()[2:]:
        if line.startswith("["):
            section = "room" if line.startswith("[room:") else line.strip("[]")
        elif " = " in line:
            seen.add("%s %s" % (section, line.split(" = ")[0]))
    missing = [k for k in keys if k and k not in seen]
    check(not missing, "roomd -t leaves out %s:\n%s" % (missing, out))
    check("welcome = Be nice." in out and "max_message = 200" in out and "rate = 200" in out,
          "roomd -t does not show the values and defaults:\n" + out)
    again = os.path.join(d.dir, "dumped.ini")
    with open(again, "w") as f:
        f.write("\n".join(out.splitlines()[2:]) + "\n")
    check(dump(again).splitlines()[2:] == out.splitlines()[2:],
          "the dump read back is another configuration")
    print("reload-broken: roomd -t prints all %d keys with defaults filled in; read back, the same"
          % len([k for k in keys if k]))


def main():
    rooms = [("lobby", {"ref": 1, "port": 0})]
    with Daemon(server={"welcome": "Be nice."}, limits={"max_message": 200}, rooms=rooms) as d:
        check_dump(d)
        a = d.connect("alice")
        ref, ida, _, _ = a.join("lobby", "alice")

        # Broken: two bad values on two lines, and a change that must not apply.
        d.server["welcome"] = "Not applied."
        d.limits["max_message"] = "lots"
        d.extra_ini = "[nonsense]\nkey = 1"
        text = d.reload("is invalid, nothing changed")
        lines = d.config_text().splitlines()
        for needle in ("%s:%d: [limits] max_message: 'lots'" % (d.conf, lines.index("max_message = lots") + 1),
                       "%s:%d: [nonsense]: unknown section" % (d.conf, lines.index("[nonsense]") + 1)):
            check(needle in text, "the reload log lacks %r:\n%s" % (needle, text))
        check("applied" not in text, "a broken reload applied something:\n" + text)
        welcome(d, 200, "Be nice.")
        a.chat(ref, ida, "alice", "z" * 150)
        a.expect_chat(ref, "alice", "z" * 150)
        print("reload-broken: both errors logged with their lines; the old config stays")

        # Restart-only keys are reported and kept, the rest applied.
        d.extra_ini = ""
        d.limits["max_message"] = 100
        d.server["welcome"] = "Applied."
        d.server["bind"] = "127.0.0.1, ::1"
        d.server["room_port_min"] = 40000
        d.server["room_port_max"] = 40100
        d.rooms = [("lobby", {"ref": 1, "port": 40200})]
        text = d.reload("changes applied")
        for needle in ("[server] bind 127.0.0.1, ::1 (was 127.0.0.1) needs a restart",
                       "[server] room_port_min 40000 (was 0) needs a restart",
                       "[server] room_port_max 40100 (was 0) needs a restart",
                       "[room:lobby] port 40200 (was 0) needs a restart",
                       "[server] applied welcome Applied. (was Be nice.)",
                       "[limits] applied max_message 100 (was 200)",
                       "2 changes applied, 4 need a restart"):
            check(needle in text, "the reload log lacks %r:\n%s" % (needle, text))
        welcome(d, 100, "Applied.")
        a.chat(ref, ida, "alice", "z" * 150)
        a.expect_error(8)
        # New rooms still get ports as before (0..0: any free port).
        b = d.connect("bob")
        _, _, _, port = b.join("another", "bob")
        check(not 40000 <= port <= 40100, "a room opened on %d, from the range that needs a restart" % port)
        a.ping()
        print("reload-broken: bind, room ports and a room's port reported as needing a restart; "
              "welcome and max_message applied")


run(main)
