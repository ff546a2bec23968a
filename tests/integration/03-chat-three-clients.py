#!/usr/bin/env python3
"""03-chat-three-clients: CHAT relay between three members (SPEC §2.1).

Each member sends; every member, the sender included, receives every message
as CHAT: ref\\nCLIENT_NAME: sender\\nMESSAGE: text\\n\\n, each sender's messages
in the order sent. Also: a message with colons, UTF-8 and inner spaces is
relayed verbatim; a two-line MESSAGE is relayed with its line kept."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

PER_SENDER = 4


def main():
    with Daemon() as d:
        names = ["client1", "client2", "client3"]
        conns, ids = [], {}
        ref = None
        for n in names:
            c = d.connect(n)
            r, j, _, _ = c.join("room1", n)
            ref = ref or r
            check(r == ref, "ROOM_REF differs between members")
            ids[n] = j
            for o in conns:
                o.expect(join_announce(ref, n), what="%s's join announcement" % n)
            conns.append(c)

        # One at a time: exact frames, sender included.
        c1, c2, c3 = conns
        c1.chat(ref, ids["client1"], "client1", "hello")
        for c in conns:
            c.expect(b"CHAT: %d\nCLIENT_NAME: client1\nMESSAGE: hello\n\n" % ref, what="relayed hello")
        text = "key: value; caf\u00e9 \u2603  two  spaces"
        c2.chat(ref, ids["client2"], "client2", text)
        for c in conns:
            c.expect_chat(ref, "client2", text)

        # All at once: per-sender order kept, nothing lost, nothing extra.
        sent = {n: ["msg %d from %s" % (k, n) for k in range(PER_SENDER)] for n in names}
        for k in range(PER_SENDER):
            for c, n in zip(conns, names):
                c.chat(ref, ids[n], n, sent[n][k])
        for c in conns:
            got = {n: [] for n in names}
            for _ in range(PER_SENDER * len(names)):
                f = c.expect_frame()
                check(f.kind == "CHAT", "%s: expected a CHAT frame, got %s" % (c.label, show(f.raw)))
                sender = f.fields.get("CLIENT_NAME")
                check(sender in got, "%s: CHAT from unknown sender: %s" % (c.label, show(f.raw)))
                check(f.raw == chat_frame(ref, sender, f.fields.get("MESSAGE", "")),
                      "%s: CHAT frame not exact: %s" % (c.label, show(f.raw)))
                got[sender].append(f.fields["MESSAGE"])
            for n in names:
                check(got[n] == sent[n], "%s: messages of %s out of order or lost:\n  sent: %s\n  got:  %s"
                      % (c.label, n, sent[n], got[n]))
            c.expect_nothing()

        # A MESSAGE may span lines (it runs to the blank line).
        c3.chat(ref, ids["client3"], "client3", "line one\nline two")
        for c in conns:
            c.expect(b"CHAT: %d\nCLIENT_NAME: client3\nMESSAGE: line one\nline two\n\n" % ref,
                     what="two-line MESSAGE")
        d.assert_alive()


run(main)
