#!/bin/sh
# Runs every Check suite binary given as an argument; prints a summary and exits non-zero
# if any suite failed. Suites find the shared data through FUSEMOE_SHARED (default ../shared).
set -u
: "${FUSEMOE_SHARED:=$(cd "$(dirname "$0")/.." && pwd)/../shared}"
export FUSEMOE_SHARED
failed=""
for t in "$@"; do
	if ! "$t"; then failed="$failed $(basename "$t")"; fi
done
if [ -n "$failed" ]; then
	echo "FAILED suites:$failed" >&2
	exit 1
fi
echo "all $# suites passed"
