#include "tests/support/model_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fm_test_gradcheck(FmLossFn loss, void *ctx, float *x, const float *analytic, size_t n, double h, double tol,
                       const char *what) {
    if (getenv("FM_TEST_VERBOSE")) {
        FmGradCheck r = fm_gradcheck(loss, ctx, x, analytic, n, h, 1e-3);
        printf("gradcheck %-44s n=%-5zu max rel %.2e  max abs %.2e\n", what, n, r.max_rel_err, r.max_abs_err);
    }
    fm_assert_gradcheck(loss, ctx, x, analytic, n, h, tol, what);
}

void fm_test_gradcheck_params(FmParams *p, const char *prefix, FmLossFn loss, void *ctx, double h, double tol) {
    int checked = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        const FmTensorInfo *t = &p->tensors[i];
        if (strncmp(t->name, prefix, strlen(prefix)) != 0) continue;
        fm_test_gradcheck(loss, ctx, p->data + t->offset, p->grad + t->offset, t->count, h, tol, t->name);
        checked++;
    }
    ck_assert_msg(checked > 0, "no parameter starts with \"%s\"", prefix);
}

void fm_test_expect_close(const float *got, const float *want, size_t n, double atol, double rtol, const char *what) {
    if (getenv("FM_TEST_VERBOSE")) {
        double worst = 0.0, worst_rel = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - want[i]);
            worst = fmax(worst, d);
            worst_rel = fmax(worst_rel, d / fmax(fabs((double)want[i]), 1e-30));
        }
        printf("compare   %-44s n=%-5zu max abs %.2e  max rel %.2e\n", what, n, worst, worst_rel);
    }
    fm_assert_close(got, want, n, atol, rtol, what);
}

void *fm_test_layout_alloc(FmTestLayoutFn layout, void *ctx) {
    FmLayout l = {NULL, 0};
    layout(&l, ctx);
    void *arena = NULL;
    ck_assert_int_eq(posix_memalign(&arena, 64, l.used + 64), 0);
    memset(arena, 0, l.used + 64);
    l.base = arena;
    l.used = 0;
    layout(&l, ctx);
    return arena;
}

void fm_test_batch_modality(FmTestBatch *tb, int m, FmModalityKind kind, int C, int max_L) {
    FmBatchModality *bm = &tb->mod[m];
    const int B = tb->batch.B;
    memset(bm, 0, sizeof *bm);
    bm->kind = kind;
    bm->C = C;
    bm->max_L = max_L;
    const size_t BL = (size_t)B * max_L;
    bm->time = kind == FM_MODALITY_STATIC ? NULL : calloc(BL ? BL : 1, sizeof(float));
    bm->value = calloc(BL * (size_t)C + 1, sizeof(float));
    int per_channel = kind == FM_MODALITY_SERIES || kind == FM_MODALITY_STATIC;
    bm->mask = calloc(per_channel ? BL * C + 1 : BL + 1, 1);
    bm->count = calloc((size_t)B, sizeof(int));
    bm->present = malloc((size_t)B);
    memset(bm->present, 1, (size_t)B);
    ck_assert(bm->value && bm->mask && bm->count && bm->present);
    tb->batch.mod = tb->mod;
}

void fm_test_batch_labels(FmTestBatch *tb, int n_labels) {
    tb->batch.n_labels = n_labels;
    tb->batch.label = calloc((size_t)tb->batch.B * n_labels, sizeof(float));
    tb->batch.label_mask = calloc((size_t)tb->batch.B * n_labels, 1);
    tb->batch.stay_id = calloc((size_t)tb->batch.B, sizeof(int64_t));
    ck_assert(tb->batch.label && tb->batch.label_mask && tb->batch.stay_id);
}

void fm_test_batch_free(FmTestBatch *tb) {
    for (int m = 0; m < tb->batch.M; m++) {
        FmBatchModality *bm = &tb->mod[m];
        free(bm->time);
        free(bm->value);
        free(bm->mask);
        free(bm->count);
        free(bm->present);
    }
    free(tb->batch.label);
    free(tb->batch.label_mask);
    free(tb->batch.stay_id);
    memset(tb, 0, sizeof *tb);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void fm_test_batch_fill(FmTestBatch *tb, int m, int b, int count, double p_obs, const int *never, FmRng *rng) {
    FmBatchModality *bm = &tb->mod[m];
    const int L = bm->max_L, C = bm->C;
    ck_assert(count <= L);
    bm->count[b] = count;
    if (bm->time) {
        for (int l = 0; l < count; l++) bm->time[(size_t)b * L + l] = (float)fm_rng_uniform(rng);
        qsort(bm->time + (size_t)b * L, (size_t)count, sizeof(float), cmp_float);
    }
    for (int l = 0; l < count; l++) {
        const size_t obs = (size_t)b * L + l;
        float *v = bm->value + obs * C;
        if (bm->kind == FM_MODALITY_SERIES || bm->kind == FM_MODALITY_STATIC) {
            for (int c = 0; c < C; c++) {
                int skip = 0;
                for (const int *n = never; n && *n >= 0; n++) skip |= *n == c;
                int o = !skip && fm_rng_uniform(rng) < p_obs;
                bm->mask[obs * C + c] = (uint8_t)o;
                v[c] = o ? (float)(4.0 * fm_rng_uniform(rng) - 2.0) : 0.0f;
            }
        } else {
            bm->mask[obs] = 1;
            for (int c = 0; c < C; c++)
                v[c] = bm->kind == FM_MODALITY_IMAGES ? (float)fm_rng_uniform(rng)
                                                      : (float)(2.0 * fm_rng_uniform(rng) - 1.0);
        }
    }
}
