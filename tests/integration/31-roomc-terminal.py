#!/usr/bin/env python3
"""31-roomc-terminal: roomc on a real pseudo-terminal (issue 5 item 4).

1. alice runs on a pty (pty.fork, TERM=xterm). She joins lobby and types
   "send lobby hel" without Enter; bob's "hey there" arrives meanwhile. The
   screen must show bob's line, then the prompt and the partial line redrawn
   after it; typing "lo" and Enter then sends exactly "hello" (bob gets the
   CHAT frame). Chat lines carry HH:MM and a colour (ESC[3Nm). Tab completes
   a command word ("jo" -> "join ") and a room name ("who lo" -> "who lobby ").
   Ctrl-D disconnects: exit 0, bob sees alice leave.
2. NO_COLOR=1 on a pty: no colour sequence (ESC[...m) at all; Ctrl-C
   disconnects with exit 0.
3. Through a pipe: no escape byte at all, and no timestamp."""
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
    with Daemon(rooms={"lobby": {"topic": "the lobby"}}) as d:
        bob = d.connect("bob")
        ref, bid, _, _ = bob.join("lobby", "bob")

        # 1. Colour, the partial line kept, completion, Ctrl-D.
        alice = PtyRoomc(d.port, "alice")
        try:
            alice.expect(rb"incoming messages print[^\n]*\n> $", "the help and the first prompt",
                         timeout=4 * TIMEOUT)
            alice.type(b"join lobby\r")
            bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT, what="alice's join")
            alice.expect(rb"\d\d:\d\d \[lobby\] \x1b\[3[1-6]malice\x1b\[0m: alice has joined",
                         "alice's coloured, timestamped join announcement")
            alice.expect(rb"\nlobby> $", "the prompt after the join (issue 16: it names the current room)")

            alice.type(b"send lobby hel")
            alice.expect(rb"send lobby hel$", "the typed partial line")
            bob.chat(ref, bid, "bob", "hey there")
            bob.expect_chat(ref, "bob", "hey there")
            m = alice.expect(rb"\d\d:\d\d \[lobby\] \x1b\[3[1-6]mbob\x1b\[0m: hey there\r\n([^\n]*?hel)",
                             "bob's message above the edited line, then the line redrawn")
            redrawn = m.group(1)
            check(re.fullmatch(rb"lobby> send lobby hel", SGR.sub(b"", redrawn)),
                  "after bob's message the screen must redraw the prompt and the partial line"
                  " 'lobby> send lobby hel'; got %s" % show(redrawn))
            alice.type(b"lo\r")
            bob.expect(b"CHAT: %d\nCLIENT_NAME: alice\nMESSAGE: hello\n\n" % ref,
                       what="alice's message finished after the interruption")
            alice.expect(rb"\[lobby\] \x1b\[3[1-6]malice\x1b\[0m: hello\r\nlobby> $", "alice's echo")

            alice.type(b"jo\t")
            # After "lobby> " libedit may place the cursor (ESC[nG) before the rest.
            alice.expect(rb"(join|jo\r\x1b\[\d+Gin) $", "Tab completing 'jo' to 'join '")
            alice.type(b"\x15who lo\t")  # Ctrl-U: kill the line
            alice.expect(rb"by $", "Tab completing the room name 'lo' to 'lobby '")
            alice.type(b"\r")
            alice.expect(rb"members of lobby: 2\r\n  alice\r\n  bob\r\nlobby> $", "who lobby's answer")

            alice.type(b"\x04")  # Ctrl-D on the empty line
            rc = alice.wait()
            check(rc == 0, "roomc exited with %s after Ctrl-D; screen: %s" % (rc, show(alice.out, 3000)))
            bob.expect(leave_announce(ref, "alice"), what="alice's leave after Ctrl-D")
        finally:
            alice.close()

        # 2. NO_COLOR: timestamps, no colour; Ctrl-C.
        carol = PtyRoomc(d.port, "carol", no_color=True)
        try:
            carol.expect(rb"\n> $", "carol's first prompt", timeout=4 * TIMEOUT)
            carol.type(b"join lobby\r")
            bob.expect(join_announce(ref, "carol"), timeout=2 * TIMEOUT, what="carol's join")
            bob.chat(ref, bid, "bob", "plain please")
            bob.expect_chat(ref, "bob", "plain please")
            carol.expect(rb"\d\d:\d\d \[lobby\] bob: plain please\r\n", "bob's message, uncoloured")
            carol.type(b"\x03")  # Ctrl-C
            rc = carol.wait()
            check(rc == 0, "roomc exited with %s after Ctrl-C; screen: %s" % (rc, show(carol.out, 3000)))
            bob.expect(leave_announce(ref, "carol"), what="carol's leave after Ctrl-C")
            sgr = SGR.search(carol.out)
            check(not sgr, "colour sequence with NO_COLOR=1: %s" % (show(sgr.group(0)) if sgr else ""))
        finally:
            carol.close()

        # 3. A pipe: no escape codes at all, no timestamps.
        with Roomc(d.port, "dave") as dave:
            dave.write("join lobby\n")
            bob.expect(join_announce(ref, "dave"), timeout=2 * TIMEOUT, what="dave's join")
            bob.chat(ref, bid, "bob", "piped")
            bob.expect_chat(ref, "bob", "piped")
            dave.expect_output("\n[lobby] bob: piped\n")
            dave.write("disconnect\n")
            dave.close_stdin()
            check(dave.wait() == 0, "piped roomc did not exit 0")
            check(b"\x1b" not in dave.out, "escape byte in piped output: %s" % show(dave.out))
        bob.expect(leave_announce(ref, "dave"), what="dave's leave")
        d.assert_alive()


run(main)
