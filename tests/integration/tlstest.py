"""tlstest.py - what the 6x-tls-* tests share: a throw-away CA and
certificates made with the openssl command line in a temporary directory,
and TLSConn, a roomtest Conn over TLS (Python's ssl module)."""

import hashlib
import os
import socket
import ssl
import subprocess
import tempfile

from roomtest import Conn, fail, HOST  # noqa: F401


def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        fail("openssl %s failed:\n%s" % (" ".join(args), r.stderr))


class Pki:
    """A CA in a temp dir; cert(name) issues a leaf for localhost/127.0.0.1
    (or a client certificate), returning (cert path, key path)."""

    def __init__(self, cn="roomd test CA"):
        self.dir = tempfile.mkdtemp(prefix="roomd-tls-")
        self.ca, self.ca_key = self.self_signed("ca", cn)

    def path(self, name):
        return os.path.join(self.dir, name)

    def self_signed(self, name, cn="localhost"):
        cert, key = self.path(name + ".pem"), self.path(name + ".key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=self.dir)
        return cert, key

    def cert(self, name, cn="localhost", ca=None):
        ca, ca_key = ca or (self.ca, self.ca_key)
        cert, key, csr = self.path(name + ".pem"), self.path(name + ".key"), self.path(name + ".csr")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=" + cn, cwd=self.dir)
        _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext, cwd=self.dir)
        return cert, key

    def client_context(self, cafile=None, cert=None):
        ctx = ssl.create_default_context(cafile=cafile or self.ca)
        if cert:
            ctx.load_cert_chain(cert[0], cert[1])
        return ctx


def tls_ini(mode, cert, key, extra=""):
    return "[tls]\nmode = %s\ncert = %s\nkey = %s\n%s" % (mode, cert, key, extra)


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


class TLSConn(Conn):
    """A Conn whose bytes go over TLS; the handshake is done in the
    constructor (failing the test unless expect_refused)."""

    def __init__(self, port, ctx, label=None, daemon=None, expect_refused=False, **kw):
        super().__init__(port, label=label or "tls:%d" % port, daemon=daemon, **kw)
        self.handshake_error = None
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        except (ssl.SSLError, OSError) as e:
            self.handshake_error = e
            if not expect_refused:
                fail("%s: TLS handshake failed: %s" % (self.label, e))
            return
        if daemon:
            daemon.conns.append(self)

    def peer_fingerprint(self):
        return fingerprint(self.sock.getpeercert(binary_form=True))

    RESET_ERRORS = (ConnectionResetError, ssl.SSLError)
    WAIT_ERRORS = (socket.timeout, ssl.SSLWantReadError)

    def _pending(self):
        # Decrypted bytes SSL holds are not seen by select().
        return self.sock.pending()
