#!/bin/sh
# Runs every benchmark binary given as an argument (make bench passes all of
# build/bench/bench_*), one after the other, each under a header with its name. Exits non-zero
# if any benchmark failed; benchmarks are never part of the test suite's pass/fail.
# Benchmarks find the shared data through FUSEMOE_SHARED (default ../shared).
set -u
: "${FUSEMOE_SHARED:=$(cd "$(dirname "$0")/.." && pwd)/../shared}"
export FUSEMOE_SHARED
if [ $# -eq 0 ]; then
	echo "no benchmarks to run"
	exit 0
fi
failed=""
for b in "$@"; do
	echo "== $(basename "$b")"
	if ! "$b"; then failed="$failed $(basename "$b")"; fi
	echo
done
if [ -n "$failed" ]; then
	echo "FAILED benchmarks:$failed" >&2
	exit 1
fi
echo "all $# benchmarks ran"
