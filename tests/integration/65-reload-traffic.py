#!/usr/bin/env python3
"""65-reload-traffic: a SIGHUP reload under traffic drops nobody and loses
nothing. Four members of a room (two on the control port, two attached on
the room port) send 240 messages, the reload lands in the middle of them,
and every member receives every message exactly once, in order (the soak's
delivery check). The reload changes a key of each reloadable class: limits
(max_message), rates (rate, burst), the welcome text, the log level and
the history length; afterwards WELCOME shows the new values, a message over
the new max_message is refused (error 8, connection kept), and HISTORY
answers with the new, shorter length. room_unattached_max needs a restart:
it is reported as such and the rest is applied."""
import os
import re
import signal
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

import time  # noqa: E402

ENTRY_RE = rb"ENTRY: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\nCLIENT_NAME: (\S+)\nMESSAGE: ([^\n]*)\n\n\Z"




def history(c, ref, jid, name):
    c.send(b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\n" % (ref, jid, name.encode()))
    head = c.read_until(b"\n", what="HISTORY head") + c.read_until(b"\n", what="COUNT")
    m = re.match(rb"\AHISTORY: %d\nCOUNT: (\d+)\n\Z" % ref, head)
    check(m, "%s: bad HISTORY head %s" % (c.label, show(head)))
    out = []
    for _ in range(int(m.group(1))):
        f = c.expect_frame()
        e = re.match(ENTRY_RE, f.raw)
        check(e, "%s: bad history entry %s" % (c.label, show(f.raw)))
        out.append((e.group(1).decode(), e.group(2).decode()))
    return out


def members(d):
    """a, b on the control port; c, e attached on the room port."""
    names = ["a", "b", "c", "e"]
    ctl = {}
    ids = {}
    ref = port = None
    for n in names:
        ctl[n] = d.connect(n)
        r, jid, _, p = ctl[n].join("busy", n)
        ref, port, ids[n] = r, p, jid
        for earlier in names[:names.index(n)]:
            ctl[earlier].expect(join_announce(ref, n))
    recv = {"a": ctl["a"], "b": ctl["b"]}
    for n in ("c", "e"):
        r = d.room_connect(port, n + "-room")
        r.send(attach_req(ref, ids[n], n))
        r.expect(attached_reply(ref, ids[n]))
        recv[n] = r
    return ctl, recv, ids, ref


def main():
    limits = {"history": 10, "max_message": 300, "rate": 200, "burst": 400, "room_unattached_max": 8}
    with Daemon(server={"welcome": "Old welcome."}, limits=limits) as d:
        ctl, recv, ids, ref = members(d)
        # Senders: a on the control port, e on its room port.
        senders = [("a", ctl["a"]), ("e", recv["e"])]
        sent = []
        mark = len(d.stderr())
        d.server["welcome"] = "New welcome."
        d.server["log_level"] = "debug"
        d.limits.update({"history": 3, "max_message": 100, "rate": 300, "burst": 500,
                         "room_unattached_max": 4})
        d.rewrite_config()
        for i in range(240):
            name, conn = senders[i % 2]
            text = "m%03d %s" % (i, "x" * 60)
            conn.send(chat_req(ref, ids[name], name, text))
            sent.append((name, text))
            if i == 120:
                d.proc.send_signal(signal.SIGHUP)
            if i % 40 == 39:
                time.sleep(0.01 * FACTOR)
        # Each sender's messages once and in its order, and the room's one
        # total order the same for every member.
        orders = {}
        for n, c in recv.items():
            got = []
            for _ in sent:
                f = c.expect_frame()
                m = re.match(rb"\ACHAT: %d\nCLIENT_NAME: (\S+)\nMESSAGE: ([^\n]*)\n\n\Z" % ref, f.raw)
                check(m, "%s: not a CHAT of the room: %s" % (n, show(f.raw)))
                got.append((m.group(1).decode(), m.group(2).decode()))
            for s in ("a", "e"):
                check([x for x in got if x[0] == s] == [x for x in sent if x[0] == s],
                      "%s: %s's messages lost, repeated or out of order" % (n, s))
            orders[n] = got
        check(all(o == orders["a"] for o in orders.values()), "members saw different orders")
        expect_nothing_all(list(recv.values()))
        sent = orders["a"]
        print("reload-traffic: 4 members got all 240 messages once, in order, over the reload")

        text = d.wait_log("need", mark)
        for needle in ("[server] applied log_level debug (was info)",
                       "[server] applied welcome New welcome. (was Old welcome.)",
                       "[limits] applied max_message 100 (was 300)",
                       "[limits] applied rate 300 (was 200)",
                       "[limits] applied burst 500 (was 400)",
                       "[limits] applied history 3 (was 10)",
                       "[limits] room_unattached_max 4 (was 8) needs a restart",
                       "6 changes applied, 1 needs a restart"):
            check(needle in text, "the reload log lacks %r:\n%s" % (needle, text))
        d.assert_alive()

        w = d.connect("welcome")
        w.send(b"WELCOME: 0\n")
        w.expect(b"WELCOME: test-id\nVERSION: roomd 0.1.0\nLIMITS: max_name=32 max_message=100"
                 b" max_rooms_per_client=32 history=3 rate=300 burst=500\nTEXT: New welcome.\n")
        # The new max_message: refused, the member stays.
        ctl["b"].chat(ref, ids["b"], "b", "y" * 150)
        ctl["b"].expect_error(8)
        ctl["b"].chat(ref, ids["b"], "b", "short")
        for c in recv.values():
            c.expect_chat(ref, "b", "short")
        # The history cut to its last 3 messages.
        got = history(ctl["a"], ref, ids["a"], "a")
        check(got == sent[-2:] + [("b", "short")], "HISTORY after history 10 -> 3: %s" % got)
        # Debug lines now appear (log_level applied).
        d.wait_log("[debug]", mark)
        for c in ctl.values():
            c.ping()
        print("reload-traffic: WELCOME shows the new limits and text, max_message 100 enforced, "
              "HISTORY cut to 3, room_unattached_max reported as needing a restart")


run(main)
