#!/bin/sh
# Data-parallel benchmark (make bench-mpi; needs make MPI=1): training throughput of the demo
# model on a 2000-stay synthetic cohort with 1 process and with 2 ranks (same global batch:
# 2 micro-batches of 16 per optimiser step, 1 OpenBLAS thread per process), the time rank 0
# spends in the gradient sum per step, and the ring sum of the parameter arena alone against
# MPI_Allreduce for the demo and the default model. About a minute on 2 cores; never in CI.
# No --oversubscribe: with it OpenMPI yields the core while waiting, which costs ~15 ms per
# message round here (measured: a 0.5 MB sum took 15 ms instead of 0.15 ms).
set -eu
cd "$(dirname "$0")/.."
FM=./build-mpi/fusemoe
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
MPIRUN="mpirun --bind-to none"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$FM synth --out "$W/synth" --stays 2000 --seed 1 >/dev/null
$FM prepare --long-csv "$W/synth/observations.csv" --labels "$W/synth/labels.csv" \
    --mapping "$W/synth/modalities.csv" --notes "$W/synth/notes.h5" \
    --image-features "$W/synth/image_features.h5" --images "$W/synth/images/index.csv" --image-size 32 \
    --phenotype-prefix phe_ --out "$W/cohort.h5" --quiet >/dev/null 2>&1
SETS="--cohort $W/cohort.h5 --set train.epochs=2 --set train.patience=0 --set train.batch_size=16
      --set train.accumulation=2 --set train.shards=2 --set eval.bootstrap=0"
field() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.eE+-]*\).*/\1/p" "$2"; }
echo "== training, demo model (configs/synth_study.ini), 2 epochs, global batch 32"
$FM train --config configs/synth_study.ini $SETS --out "$W/one" 2>"$W/one.log" >/dev/null
params=$(sed -n 's/.*; \([0-9]*\) parameters;.*/\1/p' "$W/one.log")
steps=$(sed -n 's/.*epochs of \([0-9]*\) optimiser steps.*/\1/p' "$W/one.log")
echo "parameters: $params; optimiser steps per epoch: $steps"
printf '1 process: %s stays/s, %s s of training\n' "$(field train_stays_per_s "$W/one/timing.json")" \
    "$(field train_seconds "$W/one/timing.json")"
$MPIRUN -np 2 $FM train --config configs/synth_study.ini $SETS --out "$W/two" --quiet >/dev/null
t=$W/two/timing.json
printf '2 ranks:   %s stays/s, %s s of training; gradient sums: %s s over %s steps (%s ms per step, waiting included)\n' \
    "$(field train_stays_per_s "$t")" "$(field train_seconds "$t")" "$(field gradient_sum_seconds "$t")" \
    "$(field gradient_sums "$t")" \
    "$(awk -v s="$(field gradient_sum_seconds "$t")" -v n="$(field gradient_sums "$t")" 'BEGIN { printf "%.3f", 1e3 * s / n }')"
echo "== the parameter arena's sum alone (2 ranks on this machine, shared memory)"
# Default model (README "The model": d 128, 3 layers, 16 experts) on vitals, labs, static:
default=$($FM train --config configs/synth_study.ini $SETS --set data.modalities=vitals,labs,static \
    --set model.d_model=128 --set model.ref_points=48 --set model.heads=8 --set model.time_dim=64 \
    --set model.layers=3 --set model.experts=16 --set model.top_k=4 --set model.expert_hidden=512 \
    --set model.head_hidden=128 --set train.epochs=1 --set train.train_fraction=0.01 \
    --out "$W/default" 2>&1 >/dev/null | sed -n 's/.*; \([0-9]*\) parameters;.*/\1/p')
echo "default-size model: $default parameters"
$MPIRUN -np 2 ./build-mpi/tests/prog_bench_allreduce "$params" "$default"
