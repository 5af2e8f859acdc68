#!/bin/sh
# The PhysioNet 2012 results of the README ("Results on PhysioNet 2012"), from the raw files:
#   1. prepare sets A and B into one cohort (5 seeded stratified 80/10/10 splits)
#   2. the ablation grids of configs/p12/ (baselines, gates, length of stay on 5 splits;
#      modalities, routers, competition on splits 0-2), 2 runs at a time
#   3. the tables (fusemoe report; fusemoe bootstrap for the bootstrap intervals of the 5-split
#      means), ROC and calibration plots (fusemoe plot), expert utilisation (fusemoe inspect)
#   4. external validation: a model trained on set A only, tested on all of set B
#   5. the final model, trained on sets A and B (90% training, 10% validation for early stopping)
# Everything goes to runs/p12/; finished runs are kept, so an interrupted run continues where it
# stopped. Expected running time on 2 cores: about 1 h 40 min (measured 5,812 s). The data folder is $P12_DATA (default ../shared/data/physionet2012).
set -eu
cd "$(dirname "$0")/.."
FM=./build/fusemoe
DATA=${P12_DATA:-../shared/data/physionet2012}
OUT=runs/p12
JOBS=${JOBS:-2}
CFG=configs/p12
start=$(date +%s)

for f in set-a set-b Outcomes-a.txt Outcomes-b.txt; do
    if [ ! -e "$DATA/$f" ]; then
        echo "p12: $DATA/$f not found; set P12_DATA to the PhysioNet 2012 folder" >&2
        exit 1
    fi
done
mkdir -p "$OUT"
step() { printf '\n== %s (%d s)\n' "$*" $(($(date +%s) - start)); }

step "1. prepare sets A and B"
if [ ! -f "$OUT/p12.h5" ]; then
    $FM prepare --p12 "$DATA/set-a,$DATA/set-b" --outcomes "$DATA/Outcomes-a.txt,$DATA/Outcomes-b.txt" \
        --seed 2026 --out "$OUT/p12.h5"
fi

for grid in baselines gates los modalities routers competition; do
    step "2. ablation grid $CFG/$grid.ini"
    $FM ablate --grid "$CFG/$grid.ini" --out "$OUT/$grid" --jobs "$JOBS" --quiet >/dev/null
done

step "3. tables and plots"
M="mortality.auroc,mortality.auprc,mortality.f1,mortality.brier,mortality.ece"
E="experts.entropy,experts.dead,experts.similarity,experts.agreement"
$FM report --results "$OUT/baselines/results.csv,$OUT/gates/results.csv" --metrics "$M" \
    --rename saps_i=SAPS-I,logreg="logistic regression",softmax="FuseMoE softmax",laplace="FuseMoE Laplace" \
    --order SAPS-I,"logistic regression","FuseMoE softmax","FuseMoE Laplace" --baseline "FuseMoE Laplace" \
    --title "In-hospital mortality, test parts of splits 0-4" --out "$OUT/mortality.md"
# The ablations ran on splits 0-2: the full model's rows of splits 3 and 4 have no partner, so
# they are left out of these tables.
awk -F, 'NR == 1 || $3 <= 2' "$OUT/gates/results.csv" >"$OUT/gates-splits-0-2.csv"
$FM report --results "$OUT/gates-splits-0-2.csv,$OUT/modalities/results.csv" --metrics "$M" \
    --rename laplace=vitals+labs+static --order vitals+labs+static,vitals+labs,vitals+static,labs+static,vitals,labs,static \
    --baseline vitals+labs+static --title "Modalities (Laplace gating), splits 0-2" --out "$OUT/modalities.md"
$FM report --results "$OUT/routers/results.csv" --metrics "$M" --baseline joint \
    --title "Router types (Laplace gating, 9 experts: 3 per modality when disjoint), splits 0-2" \
    --out "$OUT/routers.md"
awk -F, 'BEGIN { OFS = "," } NR > 1 { $1 = $1 "+competition" } { print }' "$OUT/competition/results.csv" \
    >"$OUT/competition-named.csv"
C="laplace,laplace+competition,softmax,softmax+competition"
$FM report --results "$OUT/gates-splits-0-2.csv,$OUT/competition-named.csv" --metrics "$M" --order "$C" \
    --baseline laplace --title "Router training: standard vs competition, splits 0-2" --out "$OUT/competition.md"
$FM report --results "$OUT/gates-splits-0-2.csv,$OUT/competition-named.csv,$OUT/routers/results.csv" \
    --metrics "$E" --rename joint=joint/9,per_modality=per_modality/9,disjoint=disjoint/9 \
    --order "$C,joint/9,per_modality/9,disjoint/9" --baseline laplace \
    --title "Collapse diagnostics on the test stays (means over the 2 fusion layers), splits 0-2" \
    --out "$OUT/diagnostics.md"
$FM report --results "$OUT/los/results.csv" \
    --metrics los_binary.auroc,los_binary.auprc,los_regression.mae_days,los_regression.r2 \
    --rename logreg="logistic / ridge regression",fusemoe="FuseMoE Laplace" --baseline "FuseMoE Laplace" \
    --title "Length of stay (LOS > 7 days; ln(LOS + 1) regression), splits 0-4" --out "$OUT/los.md"

# Training time per epoch of the competition runs against the standard ones (splits 0-2, both
# gates), from each run's timing.json (train_seconds, epochs_run).
per_epoch() { # mean training seconds per epoch over the runs of the given folders
    for f in "$@"; do
        tr -d ' \t\n' <"$f/timing.json" | sed 's/.*"train_seconds":\([0-9.e+-]*\).*"epochs_run":\([0-9]*\).*/\1 \2/'
        echo
    done | awk '{ s += $1; e += $2 } END { printf "%.1f", s / e }'
}
std=$(per_epoch "$OUT"/gates/runs/*/split[012]-seed1)
comp=$(per_epoch "$OUT"/competition/runs/*/split[012]-seed1)
echo "training seconds per epoch, splits 0-2, both gates: standard $std, competition $comp" \
    "(ratio $(echo "$comp $std" | awk '{ printf "%.2f", $1 / $2 }'))" | tee "$OUT/competition-time.txt"

pool() { # the predictions.csv files of a configuration's runs, joined with '+'
    ls "$OUT/$1"/split*-seed1/predictions.csv | paste -sd+ -
}
P="$(pool baselines/runs/saps_i),$(pool baselines/runs/logreg),$(pool gates/runs/softmax),$(pool gates/runs/laplace)"
L="SAPS-I,logistic regression,FuseMoE softmax,FuseMoE Laplace"
$FM bootstrap --predictions "$P" --labels "$L" --task mortality --metrics auroc,auprc,brier,ece \
    --title "In-hospital mortality: mean over the 5 test parts [95% bootstrap CI of the mean]" \
    --out "$OUT/mortality-bootstrap.md"
$FM bootstrap --predictions "$(pool los/runs/logreg),$(pool los/runs/fusemoe)" \
    --labels "logistic regression,FuseMoE Laplace" --task los_gt_7d --metrics auroc,auprc \
    --title "LOS > 7 days: mean over the 5 test parts [95% bootstrap CI of the mean]" --out "$OUT/los-bootstrap.md"
$FM plot roc --predictions "$P" --labels "$L" --task mortality --title "In-hospital mortality, 5 test parts pooled" \
    --out "$OUT/roc_mortality.png"
$FM plot calibration --predictions "$P" --labels "$L" --task mortality \
    --title "In-hospital mortality, 5 test parts pooled" --out "$OUT/calibration_mortality.png"
$FM inspect --model "$OUT/gates/runs/laplace/split0-seed1/model.h5" --cohort "$OUT/p12.h5" \
    --plot "$OUT/experts_laplace.png" >"$OUT/experts_laplace.txt"

step "4. external validation: train on set A, test on set B"
if [ ! -f "$OUT/set-a.h5" ]; then
    $FM prepare --p12 "$DATA/set-a" --outcomes "$DATA/Outcomes-a.txt" --splits repeated:1:0.9,0.1,0 \
        --seed 2026 --out "$OUT/set-a.h5" --quiet
fi
if [ ! -f "$OUT/set-b.h5" ]; then
    $FM prepare --p12 "$DATA/set-b" --outcomes "$DATA/Outcomes-b.txt" --splits repeated:1:0.9,0.1,0 \
        --seed 2026 --out "$OUT/set-b.h5" --quiet
fi
[ -f "$OUT/set-a-model/metrics.json" ] ||
    $FM train --config "$CFG/study.ini" --cohort "$OUT/set-a.h5" --out "$OUT/set-a-model" --quiet
$FM eval --model "$OUT/set-a-model/model.h5" --cohort "$OUT/set-b.h5" --part all --out "$OUT/set-b-external"

step "5. final model on sets A and B"
if [ ! -f "$OUT/p12-all.h5" ]; then
    $FM prepare --p12 "$DATA/set-a,$DATA/set-b" --outcomes "$DATA/Outcomes-a.txt,$DATA/Outcomes-b.txt" \
        --splits repeated:1:0.9,0.1,0 --seed 2026 --out "$OUT/p12-all.h5" --quiet
fi
[ -f "$OUT/final/metrics.json" ] ||
    $FM train --config "$CFG/study.ini" --cohort "$OUT/p12-all.h5" --out "$OUT/final" --quiet

step "done"
for t in mortality mortality-bootstrap modalities routers competition diagnostics los los-bootstrap; do
    echo
    cat "$OUT/$t.md"
done
printf '\nexternal validation (set A -> set B): %s\n' "$OUT/set-b-external/metrics.json"
printf 'final model: %s/final/model.h5\n' "$OUT"
printf 'total time: %d s\n' $(($(date +%s) - start))
