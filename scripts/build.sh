#!/bin/sh
# Configure and build one build type into build/<type> (default: release).
# usage: scripts/build.sh [release|asan|tsan]
# ROOMD_SOAK=ON registers the 70 s soak test with ctest (scripts/test.sh
# sets it); unset, it is off, also in a build directory test.sh configured.
set -eu
cd "$(dirname "$0")/.."
kind="${1:-release}"
case "$kind" in
	release) type=RelWithDebInfo ;;
	asan) type=Asan ;;
	tsan) type=Tsan ;;
	*) echo "usage: scripts/build.sh [release|asan|tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "build/$kind" -DCMAKE_BUILD_TYPE="$type" -DROOMD_SOAK="${ROOMD_SOAK:-OFF}" >/dev/null
cmake --build "build/$kind" -j "$(nproc)"
