#!/usr/bin/env python3
"""61-tls-required: [tls] mode = required, and client certificates.

required: a plain CS4032 client gets ERROR_CODE: 10 saying TLS is required
and is closed, on the control port and on a room port; a TLS client is
served. roomd -t loads the certificate and key: a key of another
certificate is refused with the reason. verify_clients = true with ca: a
client without a certificate, or with one from another CA, fails its
handshake; one with a certificate of ca is served."""
import os
import ssl
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403
from tlstest import Pki, TLSConn, tls_ini  # noqa: E402


def check_t(pki, cert, key, want_ok, what):
    conf = pki.path("check-%s.ini" % what)
    with open(conf, "w") as f:
        f.write("[server]\nbind = 127.0.0.1\n\n" + tls_ini("required", cert, key))
    r = subprocess.run([roomd_path(), "-t", "-c", conf], capture_output=True, text=True, timeout=TIMEOUT * 5)
    if want_ok:
        check(r.returncode == 0, "roomd -t with %s: exit %d: %s" % (what, r.returncode, r.stderr))
    else:
        check(r.returncode == 1 and "[tls] key does not match" in r.stderr,
              "roomd -t with %s: exit %d, stderr %r" % (what, r.returncode, r.stderr))
    print("roomd -t, %s: exit %d" % (what, r.returncode))


def required(pki, cert, key, ctx):
    with Daemon(extra_ini=tls_ini("required", cert, key)) as d:
        p = d.connect("plain")
        p.send(helo_req("hi"))
        desc = p.expect_error(10, context="a plain HELO where TLS is required")
        check("requires TLS" in desc, "the refusal does not say TLS is required: %r" % desc)
        p.expect_closed()

        t = TLSConn(d.port, ctx, "tls", daemon=d)
        ref, tid, _, port = t.join("room1", "tls1")
        t.chat(ref, tid, "tls1", "hi")
        t.expect_chat(ref, "tls1", "hi")
        pr = d.room_connect(port, "plain-room")
        pr.send(attach_req(ref, tid, "tls1"))
        pr.expect_error(10, context="a plain ATTACH on a room port where TLS is required")
        pr.expect_closed()
        tr = TLSConn(port, ctx, "tls-room", daemon=d)
        tr.send(attach_req(ref, tid, "tls1"))
        tr.expect(attached_reply(ref, tid), what="ATTACHED over TLS")
        t.ping()


def client_certs(pki, cert, key):
    good = pki.cert("client-good", cn="client")
    other_ca = Pki("another CA")
    bad = other_ca.cert("client-bad", cn="client")
    extra = "ca = %s\nverify_clients = true\n" % pki.ca
    with Daemon(extra_ini=tls_ini("optional", cert, key, extra)) as d:
        for label, ctx in (("no client certificate", pki.client_context()),
                           ("a certificate of another CA", pki.client_context(cert=bad))):
            c = TLSConn(d.port, ctx, label, expect_refused=True)
            how = c.handshake_error
            if how is None:
                # TLS 1.3: the client may finish before the server's
                # verdict arrives; the first exchange shows it.
                try:
                    c.sock.sendall(helo_req("x"))
                    c.expect_closed()
                    how = "closed after the handshake"
                except (ssl.SSLError, OSError) as e:
                    how = e
            c.close()
            print("refused: %s (%s)" % (label, how))
        ok = TLSConn(d.port, pki.client_context(cert=good), "good cert", daemon=d)
        ok.ping()
        check("handshake failed" in d.stderr(), "no log line for the refused handshakes")


def main():
    pki = Pki()
    cert, key = pki.cert("server")
    _, other_key = pki.cert("server2")
    check_t(pki, cert, key, True, "matching key")
    check_t(pki, cert, other_key, False, "another certificate's key")
    ctx = pki.client_context()
    required(pki, cert, key, ctx)
    client_certs(pki, cert, key)


run(main)
