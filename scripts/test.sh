#!/bin/sh
# All set-up, build and every test: the release build, then the whole
# suite again under AddressSanitizer+UBSan and under ThreadSanitizer, then
# each libFuzzer target for a bounded time (ROOMD_FUZZ_SECONDS, default 60),
# then the Debian package: built, lintian-checked, installed on this
# machine, used, purged (tests/package/test_package.py; needs root).
# The soak test is part of each build kind's suite here (ROOMD_SOAK=ON),
# though a developer's plain ctest leaves it out.
# usage: scripts/test.sh [release|asan|tsan|fuzz|package ...]   (default: all five)
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
kinds="${*:-release asan tsan fuzz package}"
for kind in $kinds; do
	if [ "$kind" = package ]; then
		echo "=== package: build, lintian, install, use, purge"
		if [ "$(id -u)" -ne 0 ]; then
			echo "=== package: FAILED: the package test installs a .deb on this machine and must run as root" >&2
			exit 1
		fi
		scripts/package.sh
		python3 tests/package/test_package.py build/package/roomd_*.deb
		continue
	fi
	if [ "$kind" = fuzz ]; then
		echo "=== fuzz: libFuzzer under ASan+UBSan"
		scripts/fuzz.sh "${ROOMD_FUZZ_SECONDS:-60}"
		continue
	fi
	echo "=== $kind: build"
	# With the soak test, which a developer's own build leaves out.
	ROOMD_SOAK=ON scripts/build.sh "$kind"
	echo "=== $kind: test"
	# TSan needs a fixed address-space layout on newer kernels.
	if [ "$kind" = tsan ]; then
		setarch "$(uname -m)" -R ctest --test-dir "build/$kind" --output-on-failure -j 2
	else
		ctest --test-dir "build/$kind" --output-on-failure -j 2
	fi
	# The soak test's figures (ctest keeps a passing test's output here).
	sed -n '/^duration:/,/^roomd log:/p' "build/$kind/Testing/Temporary/LastTest.log"
done
echo "=== all tests passed: $kinds"
