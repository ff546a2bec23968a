#!/bin/sh
# All set-up, build and every test: the release build, then the whole
# suite again under AddressSanitizer+UBSan and under ThreadSanitizer.
# usage: scripts/test.sh [release|asan|tsan ...]   (default: all three)
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
kinds="${*:-release asan tsan}"
for kind in $kinds; do
	echo "=== $kind: build"
	scripts/build.sh "$kind"
	echo "=== $kind: test"
	# TSan needs a fixed address-space layout on newer kernels.
	if [ "$kind" = tsan ]; then
		setarch "$(uname -m)" -R ctest --test-dir "build/$kind" --output-on-failure -j 2
	else
		ctest --test-dir "build/$kind" --output-on-failure -j 2
	fi
done
echo "=== all tests passed: $kinds"
