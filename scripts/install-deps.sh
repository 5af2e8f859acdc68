#!/bin/sh
# Installs the Debian packages FuseMoE-C needs, but only those that are missing.
# A library counts as present when pkg-config finds it (libcsv has no .pc file: its header is checked).
# With --mpi: OpenMPI only (for make MPI=1; the plain build never needs it).
set -eu

missing=""
need_pc() { pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"; }
need_file() { [ -e "$1" ] || missing="$missing $2"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }

install_missing() {
	[ -z "$missing" ] && exit 0
	echo "install-deps: installing$missing" >&2
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
	exit 0
}

if [ "${1:-}" = "--mpi" ]; then
	need_cmd pkg-config pkg-config
	need_pc ompi-c libopenmpi-dev
	need_cmd mpirun openmpi-bin
	install_missing
fi

need_cmd pkg-config pkg-config
need_cmd gcc gcc
need_cmd make make
need_pc openblas libopenblas-dev
need_pc hdf5 libhdf5-dev
need_pc check check
need_pc libpng libpng-dev
need_pc inih libinih-dev
need_pc libcjson libcjson-dev
need_pc cairo libcairo2-dev
need_pc fontconfig libfontconfig-dev
# Plots draw their text with DejaVu Sans (cairo finds it through fontconfig).
need_file /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf fonts-dejavu-core
need_file /usr/include/csv.h libcsv-dev
# Check's pkg-config file names libsubunit.
need_pc libsubunit libsubunit-dev

install_missing
