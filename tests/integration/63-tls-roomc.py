#!/usr/bin/env python3
"""63-tls-roomc: roomc --tls against a self-signed roomd ([tls] required).

1. First use: roomc shows the SHA-256 fingerprint, says it trusts it on
   first use and remembers it in $XDG_CONFIG_HOME/roomc/known_servers; it
   joins, attaches to the room port over TLS (a plain attach would be
   refused) and chats: a raw TLS member sees its message.
2. Second use: nothing said, it just works.
3. The certificate changes (new files + SIGHUP): roomc refuses loudly,
   naming both fingerprints, and exits 1 without joining.
4. --cafile with the new certificate: verified, no pin needed.
5. --insecure connects and says what it gives up."""
import os
import shutil
import signal
import sys
import tempfile
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403
from tlstest import Pki, TLSConn, tls_ini  # noqa: E402


def install(src, dst):
    shutil.copyfile(src, dst + ".new")
    os.replace(dst + ".new", dst)


def run_roomc(d, name, args, script):
    with Roomc(d.port, name, args=["--no-config"] + args) as rc:
        rc.write(script)
        rc.close_stdin()
        code = rc.wait()
        return code, rc.text(), rc.errtext()


def main():
    pki = Pki()
    a_cert, a_key = pki.self_signed("a")
    b_cert, b_key = pki.self_signed("b")
    cert, key = pki.path("served.pem"), pki.path("served.key")
    install(a_cert, cert)
    install(a_key, key)
    home = tempfile.mkdtemp(prefix="roomc-xdg-")
    os.environ["XDG_CONFIG_HOME"] = home
    pins = os.path.join(home, "roomc", "known_servers")
    with Daemon(extra_ini=tls_ini("required", cert, key)) as d:
        bob = TLSConn(d.port, pki.client_context(cafile=a_cert), "bob", daemon=d)
        ref, _, _, _ = bob.join("room1", "bob")

        # 1. First use.
        code, out, err = run_roomc(d, "alice", ["--tls"], "join room1\nsend room1 hello over tls\n")
        check(code == 0, "roomc --tls exited %s\nstdout: %s\nstderr: %s" % (code, out, err))
        check("trusted on first use" in err and "SHA-256 fingerprint" in err,
              "no trust-on-first-use notice: %r" % err)
        bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT)
        bob.expect_chat(ref, "alice", "hello over tls")
        bob.expect(leave_announce(ref, "alice"))
        check("[room1] alice: hello over tls" in out, "roomc did not show its message: %r" % out)
        with open(pins) as f:
            lines = f.read().splitlines()
        check(len(lines) == 1 and lines[0].startswith("127.0.0.1:%d " % d.port), "pins: %r" % lines)
        print("pinned: %s" % lines[0])

        # 2. Second use: silent.
        code, out, err = run_roomc(d, "alice", ["--tls"], "join room1\nsend room1 again\n")
        check(code == 0 and "trusted on first use" not in err, "second use: %s %r" % (code, err))
        bob.expect(join_announce(ref, "alice"), timeout=2 * TIMEOUT)
        bob.expect_chat(ref, "alice", "again")
        bob.expect(leave_announce(ref, "alice"))

        # 3. A changed certificate.
        install(b_cert, cert)
        install(b_key, key)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 2 * TIMEOUT
        while "reload: TLS certificate" not in d.stderr():
            check(time.monotonic() < deadline, "no reload log line")
            time.sleep(0.02)
        code, out, err = run_roomc(d, "mallory", ["--tls"], "join room1\nsend room1 should not\n")
        check(code == 1, "roomc accepted a changed certificate: exit %s, stderr %r" % (code, err))
        check("HAS CHANGED" in err and "remembered SHA-256" in err and "presented  SHA-256" in err,
              "the refusal is not loud: %r" % err)
        bob.expect_nothing()
        print("changed certificate refused:\n" + err)

        # 4. --cafile verifies it; 5. --insecure says what it gives up.
        code, out, err = run_roomc(d, "carol", ["--cafile", b_cert], "join room1\n")
        check(code == 0 and "HAS CHANGED" not in err, "--cafile: %s %r" % (code, err))
        bob.expect(join_announce(ref, "carol"), timeout=2 * TIMEOUT)
        bob.expect(leave_announce(ref, "carol"))
        code, out, err = run_roomc(d, "dave", ["--insecure"], "join room1\n")
        check(code == 0 and "not checked" in err, "--insecure: %s %r" % (code, err))
        bob.expect(join_announce(ref, "dave"), timeout=2 * TIMEOUT)
        bob.expect(leave_announce(ref, "dave"))


run(main)
