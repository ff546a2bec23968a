#!/usr/bin/env python3
"""10-error-forbidden: error 10 (SPEC §2.1: "forbidden (KILL_SERVICE not
allowed, room creation disabled, ...)").

KILL_SERVICE with kill_service off (explicitly, and by default) -> 10 and the
daemon keeps running. With room_creation = false a configured room can be
joined and JOIN of any other room -> 10."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    # Default config: KILL_SERVICE is off.
    with Daemon() as d:
        c = d.connect("c1")
        c.send(b"KILL_SERVICE\n")
        c.expect_error(10, context="KILL_SERVICE with the default config")
        time.sleep(0.2)
        d.assert_alive()
        c.ping()

    with Daemon(features={"room_creation": False, "kill_service": False},
                rooms={"lobby": {"topic": "the lobby"}}) as d:
        c = d.connect("c1")
        c.send(b"KILL_SERVICE\n")
        c.expect_error(10, context="KILL_SERVICE with kill_service = false")
        time.sleep(0.2)
        d.assert_alive()
        c.ping()

        ref, _, _, _ = c.join("lobby", "client1")
        c.send(join_req("newroom", "client1"))
        c.expect_error(10, context="JOIN of an unconfigured room with room_creation = false")
        c.expect_nothing()
        c.ping()
        c2 = d.connect("c2")
        c2.send(join_req("newroom", "client2"))
        c2.expect_error(10, context="JOIN of an unconfigured room with room_creation = false")
        r, _, _, _ = c2.join("lobby", "client2")
        check(r == ref, "ROOM_REF of lobby changed")
        c.expect(join_announce(ref, "client2"))
        d.assert_alive()


run(main)
