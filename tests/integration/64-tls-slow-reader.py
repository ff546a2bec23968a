#!/usr/bin/env python3
"""64-tls-slow-reader: TLS writes that must wait.

A TLS member with a tiny receive buffer stops reading while a plain member
sends ~6 MB, more than the kernel buffers of chat: the daemon's TLS writes hit a full socket (SSL_write
wants to write; the same bytes are written again when the socket drains).
When the slow member reads again, every message arrives whole and in order,
and the sender was never blocked."""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403
from tlstest import Pki, TLSConn, tls_ini  # noqa: E402

N = 3000


def main():
    pki = Pki()
    cert, key = pki.cert("server")
    limits = {"rate": 100000, "burst": 100000, "rate_per_ip": 100000, "burst_per_ip": 100000,
              "max_message": 4096, "sendq_bytes": 16 * 1048576}
    with Daemon(limits=limits, extra_ini=tls_ini("optional", cert, key)) as d:
        slow = TLSConn(d.port, pki.client_context(), "slow", daemon=d, rcvbuf=4096)
        fast = d.connect("fast")
        ref, _, _, _ = slow.join("room1", "slow")
        _, fid, _, _ = fast.join("room1", "fast")
        slow.expect(join_announce(ref, "fast"))
        texts = ["%04d %s" % (i, chr(ord("a") + i % 26) * 2000) for i in range(N)]
        fast.send(b"".join(chat_req(ref, fid, "fast", t) for t in texts))
        for t in texts:
            fast.expect_chat(ref, "fast", t)
        time.sleep(0.5)  # the daemon's writes to slow are stuck meanwhile
        for t in texts:
            slow.expect_chat(ref, "fast", t, timeout=5 * TIMEOUT)
        slow.ping()


run(main)
