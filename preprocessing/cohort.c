#include "preprocessing/cohort.h"

#include <math.h>
#include <string.h>

#include "preprocessing/splits.h"
#include "src/alloc.h"

void fm_cohort_free(FmCohort *c) {
    if (!c) return;
    fm_free(c->stay_id);
    for (int m = 0; m < c->M && c->mod; m++) {
        FmCohortModality *md = &c->mod[m];
        fm_free(md->name);
        if (md->channel)
            for (int k = 0; k < md->C; k++)
                fm_free(md->channel[k]);
        fm_free(md->channel);
        fm_free(md->range_min);
        fm_free(md->range_max);
        fm_free(md->offset);
        fm_free(md->count);
        fm_free(md->present);
        fm_free(md->time);
        fm_free(md->value);
        fm_free(md->mask);
    }
    fm_free(c->mod);
    for (int l = 0; l < c->n_labels && c->label_info; l++) {
        fm_free(c->label_info[l].name);
        fm_free(c->label_info[l].task);
    }
    fm_free(c->label_info);
    fm_free(c->label);
    fm_free(c->label_mask);
    fm_free(c->saps_i);
    fm_free(c->sofa);
    fm_free(c->loaded);
    fm_splits_free(c->split, c->n_splits);
    fm_free(c->settings.split_spec);
    fm_free(c->settings.sources);
    fm_free(c->settings.duplicate_rule);
    fm_norm_free(&c->external_norm);
    memset(c, 0, sizeof *c);
}

int fm_cohort_find_modality(const FmCohort *c, const char *name) {
    for (int m = 0; m < c->M; m++)
        if (strcmp(c->mod[m].name, name) == 0) return m;
    return -1;
}

int fm_cohort_find_label(const FmCohort *c, const char *name) {
    for (int l = 0; l < c->n_labels; l++)
        if (strcmp(c->label_info[l].name, name) == 0) return l;
    return -1;
}

int fm_cohort_find_split(const FmCohort *c, const char *name) {
    for (int s = 0; s < c->n_splits; s++)
        if (strcmp(c->split[s].name, name) == 0) return s;
    return -1;
}

FmStatus fm_cohort_split_stays(const FmCohort *c, int split, int part, int64_t **idx, int64_t *n,
                               FmError *err) {
    *idx = NULL;
    *n = 0;
    if (split < 0 || split >= c->n_splits)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "split %d does not exist (the cohort has %d)", split,
                       c->n_splits);
    if (part < FM_PART_TRAIN || part > FM_PART_TEST)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "part %d is not train (0), val (1) or test (2)", part);
    const uint8_t *p = c->split[split].part;
    int64_t count = 0;
    for (int64_t i = 0; i < c->N; i++)
        count += p[i] == part;
    int64_t *out = fm_malloc_array((size_t)(count ? count : 1), sizeof *out);
    if (!out) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory listing split stays");
    int64_t k = 0;
    for (int64_t i = 0; i < c->N; i++)
        if (p[i] == part) out[k++] = i;
    *idx = out;
    *n = count;
    return FM_OK;
}

FmStatus fm_cohort_layout_norm(const FmCohort *c, FmNorm *norm, FmError *err) {
    int M = c->M;
    const char **names = fm_calloc(M ? (size_t)M : 1, sizeof *names);
    FmModalityKind *kinds = fm_calloc(M ? (size_t)M : 1, sizeof *kinds);
    int *C = fm_calloc(M ? (size_t)M : 1, sizeof *C), *stdz = fm_calloc(M ? (size_t)M : 1, sizeof *stdz);
    const char *const **ch = fm_calloc(M ? (size_t)M : 1, sizeof *ch);
    FmStatus st;
    if (!names || !kinds || !C || !stdz || !ch) {
        memset(norm, 0, sizeof *norm);
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for normalisation statistics");
    } else {
        for (int m = 0; m < M; m++) {
            names[m] = c->mod[m].name;
            kinds[m] = c->mod[m].kind;
            C[m] = c->mod[m].C;
            stdz[m] = c->mod[m].standardise;
            ch[m] = (const char *const *)c->mod[m].channel;
        }
        st = fm_norm_alloc(norm, M, names, kinds, C, ch, stdz, err);
    }
    fm_free(names);
    fm_free(kinds);
    fm_free(C);
    fm_free(stdz);
    fm_free(ch);
    return st;
}

FmStatus fm_cohort_fit_norm(const FmCohort *c, const uint8_t *part, FmNorm *norm, FmError *err) {
    FM_ASSERT(c->loaded == NULL); /* statistics need every stay's rows */
    FmStatus st = fm_cohort_layout_norm(c, norm, err);
    if (st != FM_OK) return st;
    for (int m = 0; m < c->M; m++) {
        const FmCohortModality *md = &c->mod[m];
        FmNormModality *nm = &norm->mod[m];
        if (!md->standardise) continue;
        int C = md->C;
        double *sum = fm_calloc((size_t)C * 2 + 1, sizeof *sum);
        int64_t *cnt = fm_calloc((size_t)C + 1, sizeof *cnt);
        if (!sum || !cnt) {
            fm_free(sum);
            fm_free(cnt);
            fm_norm_free(norm);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory fitting normalisation statistics");
        }
        /* Two passes (mean, then squared deviations) for accuracy on large offsets. */
        for (int pass = 0; pass < 2; pass++) {
            for (int64_t i = 0; i < c->N; i++) {
                if (part[i] != FM_PART_TRAIN) continue;
                for (int64_t r = md->offset[i]; r < md->offset[i + 1]; r++) {
                    const float *v = md->value + r * C;
                    const uint8_t *k = md->mask ? md->mask + r * C : NULL;
                    for (int ch = 0; ch < C; ch++) {
                        if (k && !k[ch]) continue;
                        if (pass == 0) {
                            sum[ch] += v[ch];
                            cnt[ch]++;
                        } else {
                            double d = v[ch] - nm->mean[ch];
                            sum[C + ch] += d * d;
                        }
                    }
                }
            }
            if (pass == 0)
                for (int ch = 0; ch < C; ch++)
                    nm->mean[ch] = cnt[ch] ? sum[ch] / (double)cnt[ch] : 0.0;
        }
        for (int ch = 0; ch < C; ch++) {
            double sd = cnt[ch] ? sqrt(sum[C + ch] / (double)cnt[ch]) : 1.0;
            nm->std[ch] = sd > FM_NORM_STD_FLOOR ? sd : FM_NORM_STD_FLOOR;
        }
        fm_free(sum);
        fm_free(cnt);
    }
    return FM_OK;
}

FmStatus fm_cohort_get_norm(const FmCohort *c, int split, FmNorm *norm, FmError *err) {
    memset(norm, 0, sizeof *norm);
    if (split == FM_COHORT_NORM_EXTERNAL) {
        if (!c->has_external_norm)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "the cohort has no external statistics");
        return fm_norm_copy(norm, &c->external_norm, err);
    }
    if (split < 0 || split >= c->n_splits)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "split %d does not exist (the cohort has %d)", split,
                       c->n_splits);
    return fm_norm_copy(norm, &c->split[split].norm, err);
}

FmStatus fm_cohort_use_norm(FmCohort *c, const FmNorm *norm, const char *what, FmError *err) {
    FmNorm have;
    FmStatus st = fm_cohort_layout_norm(c, &have, err);
    if (st != FM_OK) return st;
    st = fm_norm_check_match(&have, norm, what, err);
    fm_norm_free(&have);
    if (st != FM_OK) return st;
    FmNorm copy;
    st = fm_norm_copy(&copy, norm, err);
    if (st != FM_OK) return st;
    fm_norm_free(&c->external_norm);
    c->external_norm = copy;
    c->has_external_norm = 1;
    return FM_OK;
}
