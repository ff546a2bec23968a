#!/usr/bin/env python3
"""25-plain-cs4032: a client that only speaks CS4032 never sees an extension
frame, while others around it use every extension: room lists, member
lists, private messages (also aimed at its name), history, topic changes.
Everything it receives is a CS4032 frame (JOINED, LEFT, ERROR, HELO, CHAT);
a topic change reaches it as an ordinary CHAT."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        plain = d.connect("plain")
        ext = d.connect("ext")
        ref, pid, _, _ = plain.join("room1", "plain")
        ext.send(b"WELCOME: 0\n")
        ext.expect_frame()
        _, eid, _, _ = ext.join("room1", "ext")
        seen = [plain.expect_frame()]  # ext's join announcement
        for req in (b"LIST_ROOMS: 0\n", b"LIST_MEMBERS: %d\n" % ref,
                    b"PRIVATE_MESSAGE: plain\nCLIENT_NAME: ext\nMESSAGE: psst\n\n",
                    b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: ext\n" % (ref, eid),
                    b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: ext\nTOPIC: news\n" % (ref, eid)):
            ext.send(req)
            ext.collect(QUIET)
        plain.chat(ref, pid, "plain", "still here")
        ext.expect_chat(ref, "plain", "still here", timeout=TIMEOUT)
        while True:
            try:
                seen.append(plain.expect_frame(timeout=QUIET))
            except TestFailure as e:
                if "unknown reply head" in str(e):
                    raise  # something no CS4032 client can parse
                break
        kinds = [f.kind for f in seen]
        check(all(k in CS4032_KINDS for k in kinds),
              "a plain CS4032 client received a frame it cannot parse: %s" % seen)
        check(chat_frame(ref, "test-id", "ext set the topic: news") in [f.raw for f in seen],
              "the topic change did not reach the plain client as a CHAT: %s" % seen)
        check(chat_frame(ref, "plain", "still here") in [f.raw for f in seen],
              "the plain client's own message did not come back: %s" % seen)
        plain.ping()
        d.assert_alive()


run(main)
