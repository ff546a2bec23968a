#!/usr/bin/env python3
"""54-roomc-current-room: roomc as a daily driver on a pty (issue 16).

alice runs on a pty (TERM=xterm, colour on); bob, a raw connection, is in
lobby and dev.
1. "join lobby": the prompt becomes "lobby> "; "join dev": "dev> ". A plain
   line ("hello dev folks") reaches dev as exactly that CHAT; "say join us"
   sends "join us" (a message that starts with a command word).
2. "room lobby": the prompt is "lobby> ". Two messages of bob in dev: the
   prompt's activity list reads "lobby [dev:2]> "; bob's "hey alice, look"
   rings the bell once (one BEL byte on the screen for it), shows the text in
   reverse video (ESC[7m), and the list reads "lobby [dev:3!]> ".
3. Alt-2 (ESC 2) makes dev current: "dev> ", the list gone; "/room lobby"
   (the slash form) switches back: "lobby> ". A plain line then reaches
   lobby. Ctrl-D: exit 0.
4. Piped: a plain line is still "unknown command" (scripts stay strict),
   and "say" sends to the room joined last."""
import errno
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

SGR = re.compile(rb"\x1b\[[0-9;]*m")


class PtyRoomc:
    """roomc with a pty as its stdin, stdout and stderr."""

    def __init__(self, port, name, no_color=False):
        env = dict(os.environ, TERM="xterm", TZ="UTC")
        env.pop("NO_COLOR", None)
        if no_color:
            env["NO_COLOR"] = "1"
        argv = [roomc_path(), "-h", HOST, "-p", str(port), "-n", name]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: never returns to the test
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        self.out = b""
        self.mark = 0
        self.rc = None

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.fd], [], [], min(left, 0.1))
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:  # EIO: the child closed the pty
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        self.out += data
        return True

    def type(self, keys):
        os.write(self.fd, keys)

    def expect(self, pattern, what, timeout=None):
        """Wait until pattern (bytes regex) matches the screen bytes after the
        mark; the mark moves past the match. Returns the match."""
        rx = re.compile(pattern, re.S) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        while True:
            m = rx.search(self.out, self.mark)
            if m:
                self.mark = m.end()
                return m
            if not self._read(deadline):
                fail("pty: %s did not appear within %.1fs\n  pattern: %r\n  screen since mark: %s"
                     % (what, timeout or TIMEOUT, rx.pattern, show(self.out[self.mark:], 3000)))

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else 3.0 * FACTOR)
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
                while self._read(time.monotonic() + 0.2):
                    pass
                for marker in SANITIZER_MARKERS:
                    check(marker.encode() not in self.out,
                          "sanitizer report on roomc's terminal:\n%s" % self.out.decode("utf-8", "replace"))
                return self.rc
            if time.monotonic() >= deadline:
                fail("roomc on the pty did not exit within the bound; screen: %s" % show(self.out, 3000))
            self._read(min(deadline, time.monotonic() + 0.1))

    def close(self):
        if self.rc is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        try:
            os.close(self.fd)
        except OSError:
            pass


def main():
    with Daemon(rooms={"lobby": {}, "dev": {}}) as d:
        bob = d.connect("bob")
        lref, lid, _, _ = bob.join("lobby", "bob")
        dref, did, _, _ = bob.join("dev", "bob")

        alice = PtyRoomc(d.port, "alice")
        try:
            alice.expect(rb"incoming messages print[^\n]*\n> $", "the first prompt",
                         timeout=4 * TIMEOUT)
            alice.type(b"join lobby\r")
            bob.expect(join_announce(lref, "alice"), timeout=2 * TIMEOUT, what="alice's join of lobby")
            alice.expect(rb"\nlobby> $", "the prompt naming lobby")
            alice.type(b"join dev\r")
            bob.expect(join_announce(dref, "alice"), timeout=2 * TIMEOUT, what="alice's join of dev")
            alice.expect(rb"\ndev> $", "the prompt naming dev after joining it")
            print("current room: prompt 'lobby> ' then 'dev> '")

            alice.type(b"hello dev folks\r")
            bob.expect(chat_frame(dref, "alice", "hello dev folks"), what="the plain line in dev")
            alice.expect(rb"alice\x1b\[0m: hello dev folks\r\ndev> $", "alice's echo in dev")
            alice.type(b"say join us\r")
            bob.expect(chat_frame(dref, "alice", "join us"), what="say join us, in dev")
            alice.expect(rb": join us\r\ndev> $", "the echo of say")
            print("plain line and 'say' reached dev exactly")

            alice.type(b"room lobby\r")
            alice.expect(rb"current room: lobby\r\nlobby> $", "room lobby")
            bob.chat(dref, did, "bob", "one")
            bob.expect_chat(dref, "bob", "one")
            alice.expect(rb"bob\x1b\[0m: one\r\n.*lobby \[dev:1\]> $", "the activity list after one")
            bob.chat(dref, did, "bob", "two")
            bob.expect_chat(dref, "bob", "two")
            alice.expect(rb"bob\x1b\[0m: two\r\n.*lobby \[dev:2\]> $", "the activity list after two")
            before = len(alice.out)
            bob.chat(dref, did, "bob", "hey alice, look")
            bob.expect_chat(dref, "bob", "hey alice, look")
            m = alice.expect(rb"\x1b\[7mhey alice, look\x1b\[0m\r\n.*lobby \[dev:3!\]> $",
                             "the mention highlighted and marked")
            bells = alice.out[before:m.end()].count(b"\x07")
            print("mention: %d bell(s), list 'lobby [dev:3!]> '" % bells)
            check(bells == 1, "the mention must ring the bell exactly once, rang %d times" % bells)
            check(alice.out[:before].count(b"\x07") == 0, "a bell before any mention")

            alice.type(b"\x1b2")  # Alt-2: the second room joined
            alice.expect(rb"dev> $", "Alt-2 switching to dev")
            tail = SGR.sub(b"", alice.out[-200:])
            check(b"[dev" not in tail.split(b"\r")[-1], "the activity list must be gone: %s" % show(tail))
            alice.type(b"/room lobby\r")
            alice.expect(rb"current room: lobby\r\nlobby> $", "/room lobby")
            alice.type(b"back in the lobby\r")
            bob.expect(chat_frame(lref, "alice", "back in the lobby"), what="the plain line in lobby")
            alice.expect(rb": back in the lobby\r\nlobby> $", "the echo, then the prompt (Ctrl-D needs it)")
            alice.type(b"\x04")
            rc = alice.wait()
            check(rc == 0, "roomc exited with %s after Ctrl-D; screen: %s" % (rc, show(alice.out, 3000)))
        finally:
            alice.close()
        bob.expect_unordered([leave_announce(lref, "alice"), leave_announce(dref, "alice")],
                             what="alice's leaves")

        with Roomc(d.port, "dave") as dave:
            dave.write("join lobby\nhello there\nsay hi all\ndisconnect\n")
            dave.close_stdin()
            check(dave.wait() == 0, "piped roomc did not exit 0")
            check("roomc: unknown command 'hello' (try help)\n" in dave.text(),
                  "piped plain line: %s" % show(dave.out))
            check("[lobby] dave: hi all\n" in dave.text(), "piped say: %s" % show(dave.out))
            check(b"\x1b" not in dave.out and b"\x07" not in dave.out, "escapes in piped output")
        d.assert_alive()


run(main)
