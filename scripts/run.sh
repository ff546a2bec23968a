#!/bin/sh
# All set-up, build, then run the daemon on the shipped config.
# Extra arguments go to roomd (e.g. -p 9100).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build/release/server/roomd -c conf/rooms.ini "$@"
