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

/* One central difference at step h: 1 when both evaluations stayed in the regime. */
static int central(FmLossFn loss, FmRegimeFn same, void *ctx, float *x, double h, double *numeric) {
    const float saved = *x, plus = (float)(saved + h), minus = (float)(saved - h);
    *x = plus;
    double lp = loss(ctx);
    int ok = !same || same(ctx);
    *x = minus;
    double lm = loss(ctx);
    ok = ok && (!same || same(ctx));
    *x = saved;
    *numeric = (lp - lm) / ((double)plus - (double)minus);
    return ok;
}

/* Checks one buffer; adds to *st. */
static void piecewise_buffer(const char *name, float *x, const float *g, size_t n, FmLossFn loss, FmRegimeFn same,
                             void *ctx, double h, double tol, double floor, FmTestGradStats *st) {
    const double steps[3] = {h, h / 3.0, h / 10.0};
    double worst = 0.0;
    for (size_t j = 0; j < n; j++) {
        const double a = g[j];
        int passed = 0, all_left = 1;
        double first_err = -1.0, first_num = 0.0;
        for (int k = 0; k < 3 && !passed; k++) {
            double num;
            int in_regime = central(loss, same, ctx, &x[j], steps[k], &num);
            double err = fabs(a - num) / fmax(fmax(fabs(a), fabs(num)), floor);
            if (k == 0) {
                first_err = err;
                first_num = num;
            }
            if (!in_regime) continue;
            all_left = 0;
            /* the rounding noise of a numeric gradient grows as 1/step: so may the tolerance */
            if (err <= tol * h / steps[k]) {
                passed = 1;
                if (k == 0) worst = fmax(worst, err);
                else st->smaller++;
            }
        }
        st->checked++;
        if (!passed && all_left) {
            st->skipped++;
            continue;
        }
        ck_assert_msg(passed, "%s[%zu]: analytic %.8g, numeric %.8g at step %g (rel err %.3g > %.3g), and no "
                      "smaller step agrees", name, j, a, first_num, h, first_err, tol);
    }
    st->worst = fmax(st->worst, worst);
    if (getenv("FM_TEST_VERBOSE")) printf("gradcheck %-44s n=%-5zu max rel %.2e\n", name, n, worst);
}

static void piecewise_verdict(const FmTestGradStats *st, double max_frac) {
    if (getenv("FM_TEST_VERBOSE"))
        printf("gradcheck %zu elements: worst %.2e; %zu at a smaller step, %zu skipped (routing changed)\n",
               st->checked, st->worst, st->smaller, st->skipped);
    ck_assert_msg((double)(st->smaller + st->skipped) <= max_frac * (double)st->checked,
                  "%zu of %zu elements needed a smaller step and %zu were skipped: more than %.0f%%", st->smaller,
                  st->checked, st->skipped, 100.0 * max_frac);
}

FmTestGradStats fm_test_gradcheck_piecewise(FmParams *p, const char *prefix, FmLossFn loss, FmRegimeFn same,
                                            void *ctx, double h, double tol, double floor, double max_frac) {
    FmTestGradStats st = {0};
    for (int i = 0; i < p->n_tensors; i++) {
        const FmTensorInfo *t = &p->tensors[i];
        if (strncmp(t->name, prefix, strlen(prefix)) != 0) continue;
        piecewise_buffer(t->name, p->data + t->offset, p->grad + t->offset, t->count, loss, same, ctx, h, tol, floor,
                         &st);
    }
    ck_assert_msg(st.checked > 0, "no parameter starts with \"%s\"", prefix);
    piecewise_verdict(&st, max_frac);
    return st;
}

FmTestGradStats fm_test_gradcheck_piecewise_buffer(const char *name, float *x, const float *analytic, size_t n,
                                                   FmLossFn loss, FmRegimeFn same, void *ctx, double h, double tol,
                                                   double floor, double max_frac) {
    FmTestGradStats st = {0};
    piecewise_buffer(name, x, analytic, n, loss, same, ctx, h, tol, floor, &st);
    piecewise_verdict(&st, max_frac);
    return st;
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

void fm_test_small_config(FmModelConfig *cfg, int images) {
    *cfg = fm_model_config_default();
    FmModalityConfig *mc;
    ck_assert_int_eq(fm_model_config_add_modality(cfg, "vitals", FM_MODALITY_SERIES, 3, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_model_config_add_modality(cfg, "notes", FM_MODALITY_EVENTS, 5, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_model_config_add_modality(cfg, "static", FM_MODALITY_STATIC, 2, NULL, NULL), FM_OK);
    if (images) {
        ck_assert_int_eq(fm_model_config_add_modality(cfg, "images", FM_MODALITY_IMAGES, 16, &mc, NULL), FM_OK);
        mc->patch = 2;
        mc->patch_dim = 3;
    }
    cfg->D = 8;
    cfg->Q = 4;
    cfg->H = 2;
    cfg->DT = 4;
    cfg->layers = 2;
    cfg->attn_heads = 2;
    cfg->E = 6;
    cfg->K = 2;
    cfg->hidden = 8;
    cfg->head_hidden = 6;
    cfg->dropout = 0.2f;
    cfg->n_labels = 4;
    FmTaskConfig *t;
    ck_assert_int_eq(fm_model_config_add_task(cfg, "mortality", FM_TASK_BINARY, 0, 1, &t, NULL), FM_OK);
    t->pos_weight = 2.0f;
    ck_assert_int_eq(fm_model_config_add_task(cfg, "los", FM_TASK_REGRESSION, 1, 1, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_model_config_add_task(cfg, "phenotype", FM_TASK_MULTILABEL, 2, 2, &t, NULL), FM_OK);
    t->weight = 0.5f;
}

void fm_test_small_batch(FmTestBatch *tb, const FmModelConfig *cfg, uint64_t seed) {
    memset(tb, 0, sizeof *tb);
    FmRng rng;
    fm_rng_seed(&rng, seed);
    tb->batch.B = 3;
    tb->batch.M = cfg->M;
    for (int m = 0; m < cfg->M; m++) {
        const FmModalityConfig *mc = &cfg->mod[m];
        int L = mc->kind == FM_MODALITY_STATIC ? 1 : mc->kind == FM_MODALITY_SERIES ? 6 : 3;
        fm_test_batch_modality(tb, m, mc->kind, mc->C, L);
        FmBatchModality *bm = &tb->mod[m];
        const int never[2] = {2, -1};
        switch (mc->kind) {
        case FM_MODALITY_SERIES:
            fm_test_batch_fill(tb, m, 0, 6, 0.6, NULL, &rng);
            fm_test_batch_fill(tb, m, 1, 4, 0.6, never, &rng); /* padding, a channel never seen */
            fm_test_batch_fill(tb, m, 2, 0, 0.6, NULL, &rng);  /* present, nothing observed */
            break;
        case FM_MODALITY_EVENTS:
        case FM_MODALITY_IMAGES:
            fm_test_batch_fill(tb, m, 0, 2, 1.0, NULL, &rng);
            fm_test_batch_fill(tb, m, 1, 0, 1.0, NULL, &rng);
            bm->present[1] = 0;
            fm_test_batch_fill(tb, m, 2, 3, 1.0, NULL, &rng);
            bm->mask[2 * L + 1] = 0; /* padded item inside the count */
            break;
        case FM_MODALITY_STATIC:
            fm_test_batch_fill(tb, m, 0, 1, 0.8, NULL, &rng);
            fm_test_batch_fill(tb, m, 1, 1, 0.8, NULL, &rng);
            bm->present[2] = 0;
            break;
        }
    }
    fm_test_batch_labels(tb, cfg->n_labels);
    for (int b = 0; b < 3; b++) {
        float *y = tb->batch.label + (size_t)b * cfg->n_labels;
        uint8_t *k = tb->batch.label_mask + (size_t)b * cfg->n_labels;
        y[0] = (float)(b != 1);
        y[1] = (float)(fm_rng_uniform(&rng) * 2.0 - 0.5);
        y[2] = (float)(b == 0);
        y[3] = (float)(b == 1);
        k[0] = k[1] = 1;
        k[2] = k[3] = b != 2;
        tb->batch.stay_id[b] = 1000 + b;
    }
}
