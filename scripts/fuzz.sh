#!/bin/sh
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer into build/fuzz (CMake's
# Fuzz build type: the flags live in CMakeLists.txt), and run each
# for a bounded time on a copy of its committed corpus plus its regression
# inputs (tests/fuzz/regressions/<target>-*), so the repository is never
# written. Stops by itself: libFuzzer's -max_total_time, and a hard timeout
# around it in case a target hangs outside an input.
#
# usage: scripts/fuzz.sh [SECONDS [TARGET...]]
#   SECONDS  run time of each target (default 60)
#   TARGET   proto, control, tls (default: all three)
# Exit status: 0 nothing found; 1 a target crashed, leaked or hung (the input
# and the command that reproduces it are printed); 2 the build failed.
set -eu
cd "$(dirname "$0")/.."

secs="${1:-60}"
[ $# -gt 0 ] && shift
targets="${*:-proto control tls}"
case "$secs" in
	''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS [TARGET...]]" >&2; exit 2 ;;
esac

cc="${FUZZ_CC:-}"
if [ -z "$cc" ]; then
	for c in clang clang-14; do
		if command -v "$c" >/dev/null 2>&1; then cc="$c"; break; fi
	done
fi
if [ -z "$cc" ]; then
	echo "fuzz: clang not found: apt-get install clang libclang-rt-14-dev (or run scripts/setup.sh)" >&2
	exit 2
fi

out=build/fuzz
# The compiler flags, libraries and sources are CMake's: the Fuzz build
# type (CMakeLists.txt) builds every object under ASan+UBSan with
# libFuzzer's coverage, and links the fuzz_<target> executables
# (tests/CMakeLists.txt) with libFuzzer's main. CC only counts when
# build/fuzz is first configured.
CC="$cc" cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Fuzz >/dev/null || exit 2
for t in $targets; do
	echo "=== fuzz_$t: build"
	cmake --build "$out" -j "$(nproc)" --target "fuzz_$t" >"$out/build_$t.log" 2>&1 ||
		{ tail -n 40 "$out/build_$t.log"; exit 2; }
done

# ASan: leaks are checked; UBSan: every report is fatal, with its stack.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

status=0
for t in $targets; do
	corpus="$out/corpus-$t"
	artifacts="$out/artifacts-$t"
	rm -rf "$corpus" "$artifacts"
	mkdir -p "$corpus" "$artifacts"
	cp tests/fuzz/corpus/"$t"/* "$corpus"/
	if [ -d tests/fuzz/regressions ]; then
		for f in tests/fuzz/regressions/"$t"-*; do
			[ -f "$f" ] && cp "$f" "$corpus"/
		done
	fi
	case "$t" in
		proto) max_len=16384 ;;
		*) max_len=4096 ;;
	esac
	echo "=== fuzz_$t: ${secs}s on $(find "$corpus" -type f | wc -l) seed inputs"
	rc=0
	timeout -k 10 "$((secs + 300))" "$out/fuzz_$t" \
		-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
		-dict=tests/fuzz/roomd.dict -artifact_prefix="$artifacts/" -print_final_stats=1 \
		"$corpus" >"$out/fuzz_$t.log" 2>&1 || rc=$?
	# The last lines: the run's figures, or what went wrong.
	grep -E '^(#[0-9]+ *DONE|stat::|Done [0-9]+ runs)' "$out/fuzz_$t.log" || true
	found=$(find "$artifacts" -type f | head -n 1)
	if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
		status=1
		echo "=== fuzz_$t: FAILED (exit $rc); log: $out/fuzz_$t.log"
		grep -E -A 30 '^==[0-9]+==ERROR|runtime error|check failed|parse differently|deadly signal|ERROR: libFuzzer' \
			"$out/fuzz_$t.log" | head -n 60 || true
		if [ -n "$found" ]; then
			echo "=== crash input: $found"
			echo "=== reproduce:   $out/fuzz_$t $found"
			echo "=== minimise:    $out/fuzz_$t -minimize_crash=1 -runs=100000 $found"
			echo "=== keep it as a regression: tests/fuzz/regressions/$t-<short-name>"
		else
			tail -n 20 "$out/fuzz_$t.log"
		fi
	else
		echo "=== fuzz_$t: nothing found"
	fi
done
exit "$status"
