/* Training and evaluation throughput of `fusemoe train` (src/train.h): one epoch of a study on
 * a 2000-stay synthetic cohort with the demo's model and with the default model, and on
 * PhysioNet 2012 with configs/p12_study.ini's model (when the shared data is there). Reports
 * training stays/s (forward, backward and optimiser step: what the epoch log calls
 * stays_per_s) and validation stays/s (evaluation forward). 1 OpenBLAS thread. Run by
 * `make bench` (scripts/run-bench.sh) from the project root; the cohorts are built in a
 * temporary folder with the CLI (build/fusemoe). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/blas_kernel.h"
#include "src/config.h"
#include "src/train.h"

typedef struct {
    int64_t n_train, n_val;
    size_t n_params;
    double train_s, val_s, stays;
} Seen;

static void observe(void *ctx, const FmTrainEvent *ev) {
    Seen *s = ctx;
    if (ev->kind == FM_TRAIN_EVENT_START) {
        s->n_train = ev->n_train;
        s->n_val = ev->n_val;
        s->n_params = ev->n_params;
    }
    if (ev->kind == FM_TRAIN_EVENT_EPOCH) {
        s->train_s = ev->record->train_s;
        s->val_s = ev->record->val_s;
    }
}

/* Trains one epoch of `study` (INI text) into dir/name and prints its throughput. */
static int run(const char *label, const char *study, const char *dir, const char *name) {
    FmConfig cfg;
    FmError err;
    char out[1024];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    if (fm_config_init(&cfg, &err) != FM_OK || fm_config_load_string(&cfg, study, label, &err) != FM_OK) {
        fprintf(stderr, "bench_train: %s: %s\n", err.where, err.message);
        return 1;
    }
    Seen s = {0};
    FmTrainOptions o = {.cfg = &cfg, .out_dir = out, .observer = observe, .observer_ctx = &s};
    FmTrainResult res;
    FmStatus st = fm_train_run(&o, &res, &err);
    fm_config_free(&cfg);
    if (st != FM_OK) {
        fprintf(stderr, "bench_train: %s: %s: %s\n", label, err.where, err.message);
        return 1;
    }
    printf("  %-44s %9zu params  train %7.1f stays/s (%lld stays)  eval %7.1f stays/s (%lld stays)\n", label,
           s.n_params, (double)s.n_train / s.train_s, (long long)s.n_train, (double)s.n_val / s.val_s,
           (long long)s.n_val);
    return 0;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    printf("bench_train: one epoch, 1 OpenBLAS thread (OpenBLAS kernel %s)\n", fm_blas_kernel_name());
    char dir[] = "/tmp/fusemoe-bench-train-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "./build/fusemoe synth --out %s/synth --stays 2000 --seed 1 > /dev/null && "
             "./build/fusemoe prepare --long-csv %s/synth/observations.csv --labels %s/synth/labels.csv "
             "--mapping %s/synth/modalities.csv --notes %s/synth/notes.h5 --image-features %s/synth/image_features.h5 "
             "--images %s/synth/images/index.csv --image-size 32 --phenotype-prefix phe_ --out %s/synth.h5 --quiet "
             "> /dev/null 2>&1",
             dir, dir, dir, dir, dir, dir, dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_train: building the synthetic cohort failed (run from the project root)\n");
        return 1;
    }
    int rc = 0;
    char study[2048];
    /* The demo's model (configs/synth_study.ini), every modality, three tasks. */
    snprintf(study, sizeof study,
             "[data]\ncohort = %s/synth.h5\ntasks = mortality, phenotypes, los_regression\n"
             "[model]\nd_model = 32\nref_points = 16\nheads = 4\ntime_dim = 16\nlayers = 2\nexperts = 8\ntop_k = 2\n"
             "expert_hidden = 64\nrouter = per_modality\nhead_hidden = 32\n"
             "[train]\nepochs = 1\nbatch_size = 32\nlr = 1e-3\n[eval]\nbootstrap = 0\n",
             dir);
    rc |= run("synthetic, demo model (d 32, Q 16, 6 modalities)", study, dir, "demo");
    /* The default model: d 128, Q 48, 3 layers of 16 experts (top 4, hidden 512). */
    snprintf(study, sizeof study,
             "[data]\ncohort = %s/synth.h5\ntasks = mortality\n[train]\nepochs = 1\ntrain_fraction = 0.25\n"
             "[eval]\nbootstrap = 0\n",
             dir);
    rc |= run("synthetic, default model (d 128, Q 48, 6 mod.)", study, dir, "default");
    /* PhysioNet 2012 with configs/p12_study.ini's model, on a quarter of the training stays */
    const char *shared = getenv("FUSEMOE_SHARED");
    if (!shared || !*shared) shared = "../shared";
    char p12[1024];
    snprintf(p12, sizeof p12, "%s/data/physionet2012", shared);
    if (access(p12, R_OK) == 0) {
        snprintf(cmd, sizeof cmd,
                 "./build/fusemoe prepare --p12 %s/set-a,%s/set-b --outcomes %s/Outcomes-a.txt,%s/Outcomes-b.txt "
                 "--out %s/p12.h5 --quiet > /dev/null 2>&1",
                 p12, p12, p12, p12, dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_train: preparing PhysioNet 2012 failed\n");
            rc = 1;
        } else {
            snprintf(study, sizeof study,
                     "[data]\ncohort = %s/p12.h5\ntasks = mortality\nmodalities = vitals, labs, static\n"
                     "[model]\nd_model = 128\nref_points = 48\nheads = 8\ntime_dim = 64\nlayers = 2\nexperts = 8\n"
                     "top_k = 2\nexpert_hidden = 512\n[train]\nepochs = 1\nlr = 1e-3\ntrain_fraction = 0.25\n"
                     "[eval]\nbootstrap = 0\n",
                     dir);
            rc |= run("PhysioNet 2012, p12_study model (d 128, Q 48)", study, dir, "p12");
        }
    } else {
        printf("  (no %s: PhysioNet 2012 skipped)\n", p12);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
