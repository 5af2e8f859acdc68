#!/bin/sh
# Runs every benchmark binary given as an argument, from the project root. Benchmarks read the
# shared data through FUSEMOE_SHARED (default ../shared). Never part of pass/fail.
set -u
cd "$(dirname "$0")/.."
: "${FUSEMOE_SHARED:=$(pwd)/../shared}"
export FUSEMOE_SHARED
status=0
for b in "$@"; do
	echo "== $(basename "$b")"
	"$b" || status=1
done
exit $status
