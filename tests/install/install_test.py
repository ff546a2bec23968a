#!/usr/bin/env python3
"""install_test.py - `cmake --install` of a build directory under another
prefix puts every file under that prefix, the client included.

    install_test.py CMAKE BUILD_DIR

Installs with DESTDIR (a temporary directory) and --prefix /p, so that even
a destination that wrongly ignores the prefix lands in the temporary
directory, never on this machine; then checks that every installed file lies
under DESTDIR/p, and that the programs, the manual pages, the config and the
systemd unit are among them."""
import os
import subprocess
import sys
import tempfile

EXPECTED = ("bin/roomc", "sbin/roomd", "share/man/man1/roomc.1.gz", "share/man/man8/roomd.8.gz",
            "share/man/man5/rooms.ini.5.gz", "etc/roomd/rooms.ini",
            "lib/systemd/system/roomd.service", "share/doc/roomd/README.md")


def main(cmake, build):
    with tempfile.TemporaryDirectory(prefix="roomd-install-") as dest:
        env = dict(os.environ, DESTDIR=dest)
        r = subprocess.run([cmake, "--install", build, "--prefix", "/p"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print("cmake --install failed:\n" + r.stdout)
            return 1
        files = sorted(os.path.relpath(os.path.join(d, f), dest)
                       for d, _, names in os.walk(dest) for f in names)
        outside = [f for f in files if not f.startswith("p/")]
        missing = [f for f in EXPECTED if "p/" + f not in files]
        print("installed:\n  " + "\n  ".join(files))
        if outside:
            print("FAIL: installed outside the prefix /p: " + ", ".join(outside))
        if missing:
            print("FAIL: not installed: " + ", ".join(missing))
        return 1 if outside or missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
