/* Gathering batches from a cohort (declared in preprocessing/cohort.h). */
#include <math.h>
#include <string.h>

#include "preprocessing/cohort.h"
#include "src/alloc.h"

void fm_cohort_batch_free(FmBatch *b) {
    if (!b) return;
    for (int m = 0; m < b->M && b->mod; m++) {
        FmBatchModality *bm = &b->mod[m];
        fm_free(bm->time);
        fm_free(bm->value);
        fm_free(bm->mask);
        fm_free(bm->count);
        fm_free(bm->present);
    }
    fm_free(b->mod);
    fm_free(b->label);
    fm_free(b->label_mask);
    fm_free(b->stay_id);
    memset(b, 0, sizeof *b);
}

FmStatus fm_cohort_batch_alloc(const FmCohort *c, int max_B, FmBatch *b, FmError *err) {
    memset(b, 0, sizeof *b);
    if (max_B < 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "batch size must be at least 1, got %d", max_B);
    size_t B = (size_t)max_B;
    b->mod = fm_calloc(c->M ? (size_t)c->M : 1, sizeof *b->mod);
    if (!b->mod) goto nomem;
    b->M = c->M;
    for (int m = 0; m < c->M; m++) {
        const FmCohortModality *md = &c->mod[m];
        FmBatchModality *bm = &b->mod[m];
        bm->kind = md->kind;
        bm->C = md->C;
        int L = md->kind == FM_MODALITY_STATIC ? 1 : (md->max_L > 0 ? md->max_L : 1);
        bm->cap_L = L;
        size_t rows = B * (size_t)L;
        if (md->kind != FM_MODALITY_STATIC && !(bm->time = fm_malloc_array(rows, sizeof(float)))) goto nomem;
        if (!(bm->value = fm_malloc_array(rows * (size_t)md->C, sizeof(float)))) goto nomem;
        size_t mask_n =
            (md->kind == FM_MODALITY_SERIES || md->kind == FM_MODALITY_STATIC) ? rows * (size_t)md->C : rows;
        if (!(bm->mask = fm_malloc(mask_n))) goto nomem;
        if (!(bm->count = fm_malloc_array(B, sizeof(int)))) goto nomem;
        if (!(bm->present = fm_malloc(B))) goto nomem;
    }
    b->n_labels = c->n_labels;
    if (!(b->label = fm_malloc_array(B * (size_t)(c->n_labels ? c->n_labels : 1), sizeof(float)))) goto nomem;
    if (!(b->label_mask = fm_malloc(B * (size_t)(c->n_labels ? c->n_labels : 1)))) goto nomem;
    if (!(b->stay_id = fm_malloc_array(B, sizeof(int64_t)))) goto nomem;
    b->cap_B = max_B;
    return FM_OK;
nomem:
    fm_cohort_batch_free(b);
    return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory allocating a batch of %d stays", max_B);
}

FmStatus fm_cohort_make_batch(const FmCohort *c, int split, const int64_t *idx, int n, FmBatch *b,
                              FmError *err) {
    if (n < 0 || n > b->cap_B)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "batch of %d stays, but the buffers hold %d", n, b->cap_B);
    if (b->M != c->M || b->n_labels != c->n_labels)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "the batch was allocated for another cohort");
    const FmNorm *norm;
    if (split == FM_COHORT_NORM_EXTERNAL) {
        if (!c->has_external_norm)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "no external statistics (see fm_cohort_use_norm)");
        norm = &c->external_norm;
    } else if (split >= 0 && split < c->n_splits) {
        norm = &c->split[split].norm;
    } else {
        return FM_FAIL(err, FM_ERR_ARG, NULL, "split %d does not exist (the cohort has %d)", split,
                       c->n_splits);
    }
    for (int k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= c->N)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "stay index %lld out of range (cohort of %lld stays)",
                           (long long)idx[k], (long long)c->N);
        if (c->loaded && !c->loaded[idx[k]])
            return FM_FAIL(err, FM_ERR_ARG, NULL, "stay %lld (index %lld): its rows were not loaded",
                           (long long)c->stay_id[idx[k]], (long long)idx[k]);
    }
    /* Check capacities before writing anything. */
    for (int m = 0; m < c->M; m++) {
        if (b->mod[m].C != c->mod[m].C || b->mod[m].kind != c->mod[m].kind)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "the batch was allocated for another cohort");
        for (int k = 0; k < n; k++)
            if (c->mod[m].count[idx[k]] > b->mod[m].cap_L)
                return FM_FAIL(err, FM_ERR_ARG, NULL, "the batch was allocated for another cohort");
    }
    const float inv_window = (float)(1.0 / c->settings.window_h);
    b->B = n;
    for (int m = 0; m < c->M; m++) {
        const FmCohortModality *md = &c->mod[m];
        const FmNormModality *nm = &norm->mod[m];
        FmBatchModality *bm = &b->mod[m];
        int C = md->C, L = 1;
        for (int k = 0; k < n; k++)
            if (md->count[idx[k]] > L) L = md->count[idx[k]];
        if (md->kind == FM_MODALITY_STATIC) L = 1;
        bm->max_L = L;
        int per_channel_mask = md->kind == FM_MODALITY_SERIES || md->kind == FM_MODALITY_STATIC;
        size_t rows = (size_t)n * (size_t)L;
        memset(bm->value, 0, rows * (size_t)C * sizeof(float));
        memset(bm->mask, 0, per_channel_mask ? rows * (size_t)C : rows);
        if (bm->time) memset(bm->time, 0, rows * sizeof(float));
        for (int k = 0; k < n; k++) {
            int64_t i = idx[k];
            int64_t r0 = md->offset[i], cnt = md->count[i];
            bm->count[k] = (int)cnt;
            bm->present[k] = md->present[i];
            for (int64_t l = 0; l < cnt; l++) {
                const float *src = md->value + (r0 + l) * C;
                float *dst = bm->value + ((size_t)k * (size_t)L + (size_t)l) * (size_t)C;
                if (bm->time) bm->time[(size_t)k * (size_t)L + (size_t)l] = md->time[r0 + l] * inv_window;
                if (per_channel_mask) {
                    const uint8_t *msk = md->mask + (r0 + l) * C;
                    uint8_t *dmsk = bm->mask + ((size_t)k * (size_t)L + (size_t)l) * (size_t)C;
                    for (int ch = 0; ch < C; ch++) {
                        dmsk[ch] = msk[ch];
                        if (msk[ch]) dst[ch] = (float)((src[ch] - nm->mean[ch]) / nm->std[ch]);
                    }
                } else {
                    bm->mask[(size_t)k * (size_t)L + (size_t)l] = 1;
                    if (nm->standardise)
                        for (int ch = 0; ch < C; ch++)
                            dst[ch] = (float)((src[ch] - nm->mean[ch]) / nm->std[ch]);
                    else
                        memcpy(dst, src, (size_t)C * sizeof(float));
                }
            }
        }
    }
    for (int k = 0; k < n; k++) {
        int64_t i = idx[k];
        b->stay_id[k] = c->stay_id[i];
        for (int l = 0; l < c->n_labels; l++) {
            size_t s = (size_t)i * (size_t)c->n_labels + (size_t)l,
                   d = (size_t)k * (size_t)c->n_labels + (size_t)l;
            b->label_mask[d] = c->label_mask[s];
            b->label[d] = c->label_mask[s] ? c->label[s] : 0.0f;
        }
    }
    return FM_OK;
}
