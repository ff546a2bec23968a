#!/usr/bin/env python3
"""60-tls-optional: [tls] mode = optional.

A TLS client (Python's ssl module, verifying the server against a CA this
test makes with the openssl command line) joins, chats with a plain CS4032
client on the same control port, and attaches to the room port over TLS; the
plain client attaches to the same room port in clear. A burst bigger than a
read buffer over TLS arrives whole (bytes left inside SSL are read without a
new epoll event). A handshake that stalls is cut at request_timeout, and
counts against max_clients_per_ip meanwhile."""
import os
import socket
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403
from tlstest import Pki, TLSConn, tls_ini  # noqa: E402


def main():
    pki = Pki()
    cert, key = pki.cert("server")
    ctx = pki.client_context()
    with Daemon(limits={"request_timeout": 1, "max_clients_per_ip": 6},
                extra_ini=tls_ini("optional", cert, key)) as d:
        t = TLSConn(d.port, ctx, "tls-control", daemon=d)
        p = d.connect("plain-control")
        ref, tid, _, port = t.join("room1", "tls1")
        _, pid, _, _ = p.join("room1", "plain1")
        t.expect(join_announce(ref, "plain1"))

        t.chat(ref, tid, "tls1", "hello over tls")
        t.expect_chat(ref, "tls1", "hello over tls")
        p.expect_chat(ref, "tls1", "hello over tls")
        p.chat(ref, pid, "plain1", "hello in clear")
        t.expect_chat(ref, "plain1", "hello in clear")
        p.expect_chat(ref, "plain1", "hello in clear")

        # The room port follows the mode: TLS and plain attach side by side.
        tr = TLSConn(port, ctx, "tls-room", daemon=d)
        tr.send(attach_req(ref, tid, "tls1"))
        tr.expect(attached_reply(ref, tid), what="ATTACHED over TLS")
        pr = d.room_connect(port, "plain-room")
        pr.send(attach_req(ref, pid, "plain1"))
        pr.expect(attached_reply(ref, pid), what="ATTACHED in clear")
        tr.send(chat_req(ref, tid, "tls1", "via the room port"))
        tr.expect_chat(ref, "tls1", "via the room port")
        pr.expect_chat(ref, "tls1", "via the room port")

        # A burst of many requests in one TLS write (several records, more
        # than one read of the daemon): every one is answered.
        burst = b"".join(chat_req(ref, tid, "tls1", "burst %03d %s" % (i, "x" * 60)) for i in range(90))
        tr.send(burst)
        for i in range(90):
            text = "burst %03d %s" % (i, "x" * 60)
            tr.expect_chat(ref, "tls1", text)
            pr.expect_chat(ref, "tls1", text)

        # A handshake that stalls: one byte of a TLS record, then nothing.
        stall = [d.connect("stall%d" % i) for i in range(2)]
        for s in stall:
            s.send(b"\x16")
        # Meanwhile they count against max_clients_per_ip (6: t, p, tr,
        # pr and the two stalled ones).
        over = d.connect("over")
        over.expect_error(7, context="a fifth connection from the address")
        for s in stall:
            s.expect_closed(timeout=TIMEOUT + 2.5)
        check("did not finish its TLS handshake in 1s" in d.stderr(), "no log line for the stalled handshake")

        # The established ones were not affected.
        t.chat(ref, tid, "tls1", "still here")
        tr.expect_chat(ref, "tls1", "still here")
        pr.expect_chat(ref, "tls1", "still here")


run(main)
