#include "tests/support/study_support.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/synth.h"
#include "preprocessing/prepare.h"
#include "src/alloc.h"
#include "tests/support/testutil.h"

static char g_dir[512];
static char g_path[1024];
static char g_cli[1024];

/* Prepares the synthetic folder `src` into `out` with the given variations. */
static void prepare(const char *src, const char *out, uint64_t split_seed, int notes, const char *phe_prefix) {
    char obs[600], labels[600], mapping[600], notes_h5[600], features[600];
    snprintf(obs, sizeof obs, "%s/%s", src, FM_SYNTH_OBSERVATIONS_CSV);
    snprintf(labels, sizeof labels, "%s/%s", src, FM_SYNTH_LABELS_CSV);
    snprintf(mapping, sizeof mapping, "%s/%s", src, FM_SYNTH_MAPPING_CSV);
    snprintf(notes_h5, sizeof notes_h5, "%s/%s", src, FM_SYNTH_NOTES_H5);
    snprintf(features, sizeof features, "%s/%s", src, FM_SYNTH_IMAGE_FEATURES_H5);
    const char *label_files[1] = {labels};
    FmPrepareOptions o = fm_prepare_defaults();
    o.long_csv = obs;
    o.label_files = label_files;
    o.n_label_files = 1;
    o.label_opt.phenotype_prefix = phe_prefix;
    o.mapping = mapping;
    o.notes_h5 = notes ? notes_h5 : NULL;
    o.image_features_h5 = features;
    o.splits.n = 2;
    o.splits.frac[0] = 0.6;
    o.splits.frac[1] = 0.2;
    o.splits.frac[2] = 0.2;
    o.seed = split_seed;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    if (fm_prepare_run(&o, &c, &map, &rep, &err) != FM_OK) {
        fprintf(stderr, "study support: prepare: %s: %s\n", err.where, err.message);
        exit(1);
    }
    if (fm_cohort_save(&c, out, &err) != FM_OK) {
        fprintf(stderr, "study support: save: %s: %s\n", err.where, err.message);
        exit(1);
    }
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}

void fm_study_setup(void) {
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/fusemoe-study-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("study support: mkdtemp");
        exit(1);
    }
    char synth[600];
    snprintf(synth, sizeof synth, "%s/synth", g_dir);
    FmSynthConfig cfg = fm_synth_default();
    cfg.stays = 160;
    cfg.note_dim = 8;
    cfg.image_feature_dim = 4;
    cfg.image_size = 8;
    FmError err;
    if (fm_synth_write(&cfg, synth, NULL, &err) != FM_OK) {
        fprintf(stderr, "study support: synth: %s: %s\n", err.where, err.message);
        exit(1);
    }
    char out[600];
    snprintf(out, sizeof out, "%s/cohort.h5", g_dir);
    prepare(synth, out, 1, 1, "phe_");
    snprintf(out, sizeof out, "%s/cohort_seed2.h5", g_dir);
    prepare(synth, out, 2, 1, "phe_");
    snprintf(out, sizeof out, "%s/cohort_nonotes.h5", g_dir);
    prepare(synth, out, 1, 0, "phe_");
    snprintf(out, sizeof out, "%s/cohort_nophe.h5", g_dir);
    prepare(synth, out, 1, 1, "zzz_");
    snprintf(g_cli, sizeof g_cli, "%s", fm_test_cli());
}

void fm_study_teardown(void) {
    if (!g_dir[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "study support: cannot remove %s\n", g_dir);
}

const char *fm_study_dir(void) { return g_dir; }

const char *fm_study_cohort(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    return g_path;
}

const char *fm_study_cli(void) { return g_cli; }

void fm_study_write(const char *path, const char *cohort, const char *extra) {
    FILE *f = fopen(path, "w");
    if (!f) { /* also used outside tests (suite set-up), where ck_assert cannot report */
        perror(path);
        exit(1);
    }
    fprintf(f,
            "[data]\ncohort = %s\ntasks = mortality, phenotypes, los_regression\n"
            "[model]\nd_model = 8\nref_points = 4\nheads = 2\ntime_dim = 4\nlayers = 1\nexperts = 4\ntop_k = 2\n"
            "expert_hidden = 8\nhead_hidden = 8\n"
            "[train]\nepochs = 2\nbatch_size = 16\n"
            "[eval]\nbootstrap = 20\n%s",
            cohort, extra ? extra : "");
    fclose(f);
}

FmStatus fm_study_train(const char *path, const char *const *sets, int n, const char *out, int resume,
                        FmTrainObserver observer, void *ctx, FmError *err) {
    FmConfig cfg;
    FmStatus st = fm_config_init(&cfg, err);
    if (st != FM_OK) return st;
    st = fm_config_load(&cfg, path, err);
    for (int i = 0; i < n && st == FM_OK; i++) st = fm_config_apply_set(&cfg, sets[i], err);
    if (st == FM_OK) {
        FmTrainOptions opt = {.cfg = &cfg, .out_dir = out, .resume = resume, .observer = observer, .observer_ctx = ctx};
        FmTrainResult res;
        st = fm_train_run(&opt, &res, err);
    }
    fm_config_free(&cfg);
    return st;
}

char *fm_study_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = fm_malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fm_free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

int fm_study_same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = fm_study_read(a, &na), *y = fm_study_read(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    fm_free(x);
    fm_free(y);
    return same;
}

long fm_study_lines(const char *path) {
    char *text = fm_study_read(path, NULL);
    if (!text) return -1;
    long n = 0;
    for (char *p = text; *p; p++) n += *p == '\n';
    fm_free(text);
    return n;
}
