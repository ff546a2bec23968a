#!/usr/bin/env python3
"""30-roomc-lobby: roomc's lobby commands through a pipe (issue 5 items 4, 5).

bob (raw, opted in to private messages with WELCOME) sends m1..m4 in lobby,
which keeps 3 messages. A piped roomc script as alice then runs join, rooms,
who, history, topic (show, set, locked), msg (delivered, unknown user): its
stdout must be exactly the expected transcript (times as HH:MM in TZ=UTC),
with the welcome text and the command help first, no escape code anywhere,
and bob must receive the private message as a PRIVATE_FROM frame. A second
run without -n uses the login name and refuses msg before any join."""
import os
import pwd
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

os.environ["TZ"] = "UTC"  # history times print in local time
HM = r"\d\d:\d\d"


def login_name():
    try:
        return os.getlogin()
    except OSError:
        return pwd.getpwuid(os.geteuid()).pw_name


def check_transcript(out, expected):
    """out: roomc's stdout; expected: lines, each a str (exact) or a
    compiled regex (whole line). The help block between "commands:" and
    "incoming messages print ..." is checked apart (each command named)."""
    lines = out.split("\n")
    check(lines and lines[-1] == "", "stdout does not end with a newline: %s" % show(out))
    lines = lines[:-1]
    try:
        h0 = lines.index("commands:")
        h1 = next(i for i in range(h0, len(lines)) if lines[i].startswith("incoming messages print"))
    except (ValueError, StopIteration):
        fail("no command help in roomc's stdout:\n%s" % out)
    helptext = "\n".join(lines[h0:h1 + 1])
    for cmd in ("join ROOM", "send ROOM", "leave_chatroom ROOM", "rooms", "who ROOM", "msg NAME",
                "history ROOM", "topic ROOM", "disconnect", "help"):
        check("\n  " + cmd in helptext, "help lacks %r:\n%s" % (cmd, helptext))
    lines = lines[:h0] + lines[h1 + 1:]
    for i, want in enumerate(expected):
        got = lines[i] if i < len(lines) else None
        ok = got is not None and (got == want if isinstance(want, str) else want.fullmatch(got))
        if not ok:
            fail("roomc transcript, line %d:\n  expected: %r\n  got:      %r\n  whole stdout:\n%s"
                 % (i + 1, want if isinstance(want, str) else want.pattern, got, out))
    check(len(lines) == len(expected), "roomc printed more lines than expected: %r\n  whole stdout:\n%s"
          % (lines[len(expected):], out))


def main():
    rooms = {"lobby": {"topic": "the lobby", "history": 3}, "quiet": {"topic_change": False}}
    with Daemon(server={"welcome": "Hello from the test server"}, rooms=rooms) as d:
        bob = d.connect("bob")
        ref, bid, _, _ = bob.join("lobby", "bob")
        bob.send(b"WELCOME: 0\n")  # opts in to private messages
        bob.read_until(b"\nTEXT: Hello from the test server\n", what="bob's WELCOME reply")
        for i in range(1, 5):
            bob.chat(ref, bid, "bob", "m%d" % i)
            bob.expect_chat(ref, "bob", "m%d" % i)

        script = ("join lobby\njoin quiet\nrooms\nwho lobby\nwho quiet\nwho nowhere\n"
                  "history lobby\ntopic lobby\ntopic lobby a new topic  here\ntopic lobby\n"
                  "topic quiet\ntopic quiet try\nhistory nowhere\nmsg bob psst, bob\n"
                  "msg nobody hi\ndisconnect\n")
        with Roomc(d.port, "alice") as alice:
            alice.write(script)
            alice.close_stdin()
            rc = alice.wait(timeout=10 * FACTOR)
            check(rc == 0, "roomc exited with %s\n  stdout: %s\n  stderr: %s"
                  % (rc, show(alice.out), show(alice.err)))
            check(b"\x1b" not in alice.out, "escape code in piped output: %s" % show(alice.out))
            hist = [re.compile(r"\[lobby %s\] bob: m%d" % (HM, i)) for i in (2, 3, 4)]
            check_transcript(alice.text(), [
                "connected to test-id (roomd 0.1.0)",
                "welcome: Hello from the test server",
                re.compile(r"joined lobby \(ref 1, port \d+\)"),
                "[lobby] alice: alice has joined this chatroom.",
                "history of lobby: 3 messages",
            ] + hist + [
                re.compile(r"joined quiet \(ref 2, port \d+\)"),
                "[quiet] alice: alice has joined this chatroom.",
                "ROOM    REF  MEMBERS  TOPIC",
                "lobby     1        2  the lobby",
                "quiet     2        1",
                "members of lobby: 2",
                "  alice",
                "  bob",
                "members of quiet: 1",
                "  alice",
                "roomc: no room nowhere",
                "history of lobby: 3 messages",
            ] + hist + [
                "topic of lobby: the lobby",
                "[lobby] test-id: alice set the topic: a new topic  here",
                "topic of lobby: a new topic  here",
                "quiet has no topic",
                re.compile(r"error 10: \S.*"),
                "roomc: not in nowhere (history is for members)",
                "[private to bob] alice: psst, bob",
                re.compile(r"error 2: \S.*"),
            ])
        bob.read_until(b"PRIVATE_FROM: alice\nMESSAGE: psst, bob\n\n", what="alice's private message")

        # Without -n: the login name. msg before any join is refused locally.
        me = login_name()
        argv = [roomc_path(), "-h", HOST, "-p", str(d.port)]
        with Roomc(d.port, None, argv=argv) as anon:
            anon.write("msg bob hi\njoin lobby\ndisconnect\n")
            anon.close_stdin()
            rc = anon.wait(timeout=10 * FACTOR)
            check(rc == 0, "roomc without -n exited with %s\n  stdout: %s\n  stderr: %s"
                  % (rc, show(anon.out), show(anon.err)))
            check("roomc: join a room first" in anon.text(),
                  "msg before a join was not refused locally:\n%s" % anon.text())
            check("[lobby] %s: %s has joined this chatroom." % (me, me) in anon.text(),
                  "roomc without -n did not join as the login name %r:\n%s" % (me, anon.text()))
        bob.read_until(b"MESSAGE: %s has left this chatroom.\n\n" % me.encode(),
                       what="the login-named client's departure")
        d.assert_alive()


run(main)
