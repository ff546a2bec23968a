#!/bin/sh
# Install the Debian packages roomd needs to build and test, when missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -eu

PACKAGES="build-essential cmake pkg-config libiniparser-dev libcmocka-dev libedit-dev python3 netcat-openbsd valgrind iproute2 clang libclang-rt-14-dev libsqlite3-dev sqlite3"
# The systemd integration (sd_notify), the manual pages' check, the Debian
# package and its test (dpkg-shlibdeps, lintian, adduser, setpriv/prlimit
# in util-linux, systemd-analyze in systemd).
PACKAGES="$PACKAGES libsystemd-dev man-db groff-base dpkg-dev lintian adduser util-linux systemd gzip"
# The [metrics] endpoint's HTTP server.
PACKAGES="$PACKAGES libmicrohttpd-dev"
# TLS ([tls]): OpenSSL 3 to build with, its command line for the tests' throw-away CA.
PACKAGES="$PACKAGES libssl-dev openssl"
# [cluster]: hiredis to build with; redis-server for the cluster's process tests.
PACKAGES="$PACKAGES libhiredis-dev redis-server"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# Test 52 runs `promtool check metrics` on a scrape. promtool comes in
# Debian's prometheus package, whose postinst would also start a
# Prometheus server on the test machine: take promtool alone from it.
install_promtool() {
	command -v promtool >/dev/null 2>&1 && return 0
	echo "setup: installing promtool (from Debian's prometheus package)"
	tmp=$(mktemp -d)
	$SUDO apt-get update -qq
	(cd "$tmp" && apt-get download -qq prometheus && dpkg-deb -x prometheus_*.deb x)
	$SUDO install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
	rm -rf "$tmp"
}

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing:$missing"
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing
fi
install_promtool
