#!/bin/sh
# Install the Debian packages roomd needs to build and test, when missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -eu

PACKAGES="build-essential cmake pkg-config libiniparser-dev libcmocka-dev libedit-dev python3 netcat-openbsd valgrind iproute2 clang libclang-rt-14-dev libsqlite3-dev sqlite3"
# The systemd integration (sd_notify), the manual pages' check, the Debian
# package and its test (dpkg-shlibdeps, lintian, adduser, setpriv/prlimit
# in util-linux, systemd-analyze in systemd).
PACKAGES="$PACKAGES libsystemd-dev man-db groff-base dpkg-dev lintian adduser util-linux systemd gzip"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "setup: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
