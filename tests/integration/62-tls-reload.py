#!/usr/bin/env python3
"""62-tls-reload: SIGHUP reloads the [tls] certificate and key.

A member connected over TLS with certificate A; the files are replaced by
certificate B (a new key too) and roomd gets SIGHUP: a new connection is
served B while the old one keeps chatting with it (it keeps A's session).
Then a broken certificate file and SIGHUP: one log line says it was not
reloaded, new connections still get B, nobody is dropped."""
import os
import shutil
import signal
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403
from tlstest import Pki, TLSConn, tls_ini, fingerprint  # noqa: E402
import ssl  # noqa: E402


def install(src, dst):
    """Replace dst atomically, as a certificate renewal does."""
    shutil.copyfile(src, dst + ".new")
    os.replace(dst + ".new", dst)


def wait_log(d, text, count):
    deadline = time.monotonic() + TIMEOUT * 2
    while d.stderr().count(text) < count:
        if time.monotonic() > deadline:
            fail("no log line %r after SIGHUP; stderr:\n%s" % (text, d.stderr()[-3000:]))
        time.sleep(0.02)


def pem_fingerprint(path):
    with open(path) as f:
        return fingerprint(ssl.PEM_cert_to_DER_cert(f.read()))


def main():
    pki = Pki()
    a_cert, a_key = pki.cert("a")
    b_cert, b_key = pki.cert("b")
    cert, key = pki.path("served.pem"), pki.path("served.key")
    install(a_cert, cert)
    install(a_key, key)
    ctx = pki.client_context()
    with Daemon(extra_ini=tls_ini("required", cert, key)) as d:
        old = TLSConn(d.port, ctx, "old", daemon=d)
        check(old.peer_fingerprint() == pem_fingerprint(a_cert), "first connection not served A")
        ref, oid, _, _ = old.join("room1", "old")

        install(b_cert, cert)
        install(b_key, key)
        d.proc.send_signal(signal.SIGHUP)
        wait_log(d, "reload: TLS certificate", 1)
        new = TLSConn(d.port, ctx, "new", daemon=d)
        check(new.peer_fingerprint() == pem_fingerprint(b_cert), "new connection not served B after SIGHUP")
        _, nid, _, _ = new.join("room1", "new")
        old.expect(join_announce(ref, "new"))
        old.chat(ref, oid, "old", "from the old session")
        old.expect_chat(ref, "old", "from the old session")
        new.expect_chat(ref, "old", "from the old session")
        new.chat(ref, nid, "new", "from the new one")
        old.expect_chat(ref, "new", "from the new one")
        new.expect_chat(ref, "new", "from the new one")

        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        d.proc.send_signal(signal.SIGHUP)
        wait_log(d, "TLS certificate not reloaded, the old one is still served", 1)
        check(d.stderr().count("TLS certificate not reloaded") == 1, "the refusal is not one log line")
        third = TLSConn(d.port, ctx, "third", daemon=d)
        check(third.peer_fingerprint() == pem_fingerprint(b_cert), "a bad file replaced B")
        third.ping()
        old.chat(ref, oid, "old", "still here")
        old.expect_chat(ref, "old", "still here")
        new.expect_chat(ref, "old", "still here")


run(main)
