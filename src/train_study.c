#include "src/train_study.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

void fm_study_data_close(FmStudyData *d) {
    if (!d) return;
    if (d->train != d->train_all) fm_free(d->train);
    fm_free(d->train_all);
    fm_free(d->val);
    fm_free(d->test);
    fm_cohort_free(&d->cohort);
    memset(d, 0, sizeof *d);
}

/* The stratified, seeded train.train_fraction of the training stays, in cohort order. */
static FmStatus draw_subset(FmStudyData *d, double fraction, const FmRng *root, FmError *err) {
    d->train = d->train_all;
    d->n_train = d->n_train_all;
    if (fraction >= 1.0) return FM_OK;
    const int64_t n = d->n_train_all;
    int64_t *out = fm_malloc_array(n ? (size_t)n : 1, sizeof *out);
    size_t *pos = fm_malloc_array(n ? (size_t)n : 1, sizeof *pos);
    uint8_t *keep = fm_calloc(n ? (size_t)n : 1, 1);
    if (!out || !pos || !keep) {
        fm_free(out);
        fm_free(pos);
        fm_free(keep);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory drawing the training subset");
    }
    FmRng base = fm_rng_split(root, FM_STUDY_STREAM_SUBSET);
    int col = fm_train_spec_strata_label(&d->spec);
    for (int stratum = 0; stratum < 3; stratum++) { /* label 0, label 1, unknown (or all) */
        size_t k = 0;
        for (int64_t i = 0; i < n; i++) {
            float y;
            int known = col >= 0 && fm_train_spec_label(&d->spec, &d->cohort, d->train_all[i], col, &y);
            int s = known ? (y > 0.5f) : 2;
            if (s == stratum) pos[k++] = (size_t)i;
        }
        if (k == 0) continue;
        FmRng rng = fm_rng_split(&base, (uint64_t)stratum);
        fm_rng_shuffle(&rng, pos, k);
        size_t take = (size_t)llround(fraction * (double)k);
        if (take < 1) take = 1;
        for (size_t i = 0; i < take; i++) keep[pos[i]] = 1;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (keep[i]) out[m++] = d->train_all[i];
    fm_free(pos);
    fm_free(keep);
    d->train = out;
    d->n_train = m;
    return FM_OK;
}

static FmStatus open_parts(FmStudyData *d, const FmConfig *cfg, const FmRng *root, FmError *err) {
    d->cohort_path = fm_config_string(cfg, "data.cohort");
    if (!d->cohort_path[0])
        return FM_FAIL(err, FM_ERR_CONFIG, fm_config_where(cfg, "data.cohort"),
                       "[data] cohort: no cohort file given (set it, or pass --cohort)");
    FmStatus st = fm_cohort_load_meta(d->cohort_path, &d->cohort, err);
    if (st != FM_OK) return st;
    d->split = (int)fm_config_int(cfg, "data.split");
    if (d->split >= d->cohort.n_splits) {
        const char *where = fm_config_where(cfg, "data.split");
        return FM_FAIL(err, FM_ERR_CONFIG, strcmp(where, "default") == 0 ? "" : where,
                       "[data] split: %d, but the cohort %s has %d split%s (0 to %d)", d->split, d->cohort_path,
                       d->cohort.n_splits, d->cohort.n_splits == 1 ? "" : "s", d->cohort.n_splits - 1);
    }
    if ((st = fm_train_spec_from_config(cfg, &d->cohort, d->cohort_path, &d->spec, err)) != FM_OK) return st;
    if ((st = fm_cohort_split_stays(&d->cohort, d->split, FM_PART_TRAIN, &d->train_all, &d->n_train_all, err)) ||
        (st = fm_cohort_split_stays(&d->cohort, d->split, FM_PART_VAL, &d->val, &d->n_val, err)) ||
        (st = fm_cohort_split_stays(&d->cohort, d->split, FM_PART_TEST, &d->test, &d->n_test, err)))
        return st;
    if (d->n_train_all == 0 || d->n_val == 0)
        return FM_FAIL(err, FM_ERR_ARG, d->cohort_path, "split %d (%s) has %lld training and %lld validation stays; "
                       "training needs both", d->split, d->cohort.split[d->split].name, (long long)d->n_train_all,
                       (long long)d->n_val);
    if ((st = draw_subset(d, fm_config_float(cfg, "train.train_fraction"), root, err)) != FM_OK) return st;
    if (fm_config_enum(cfg, "train.class_weighting") == 1)
        fm_train_spec_class_weights(&d->spec, &d->cohort, d->train, d->n_train);
    return FM_OK;
}

FmStatus fm_study_data_open(FmStudyData *d, const FmConfig *cfg, const FmRng *root, FmError *err) {
    memset(d, 0, sizeof *d);
    FmStatus st = open_parts(d, cfg, root, err);
    if (st != FM_OK) fm_study_data_close(d);
    return st;
}
