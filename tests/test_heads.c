/* Heads and task losses: the residual MLP, per-task linear heads, BCE with logits (with a
 * positive-class weight), MSE and Huber, masked labels, and the multi-task weighting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/heads.h"
#include "src/gemm.h"
#include "tests/support/model_support.h"

enum { B = 5, P = 4, HID = 6, NL = 6 };

typedef struct {
    FmHeads heads;
    FmParams p;
    FmHeadsBuffers buf;
    void *arena;
    float h0[B * P], dh0[B * P];
    float label[B * NL];
    uint8_t mask[B * NL];
    int training;
    uint64_t seed;
    FmTaskLosses losses;
} HeadsCtx;

static void heads_layout(FmLayout *l, void *ctx) {
    HeadsCtx *c = ctx;
    fm_heads_layout(&c->buf, l, &c->heads, B);
}

static double heads_loss(void *ctx) {
    HeadsCtx *c = ctx;
    FmRng r;
    fm_rng_seed(&r, c->seed); /* the same dropout mask at every evaluation */
    fm_heads_forward(&c->heads, &c->p, &c->buf, c->h0, B, c->training, &r);
    fm_heads_loss(&c->heads, &c->buf, c->label, c->mask, B, &c->losses);
    return c->losses.total;
}

/* Columns: 0 mortality (binary, pos_weight 3), 1 los (regression), 2..4 phenotypes
 * (multi-label), 5 unused. */
static void heads_setup(HeadsCtx *c, float huber, float dropout, uint64_t seed) {
    memset(c, 0, sizeof *c);
    FmTaskConfig tasks[3] = {
        {.name = "mortality", .kind = FM_TASK_BINARY, .label0 = 0, .n = 1, .weight = 1.0f, .pos_weight = 3.0f},
        {.name = "los", .kind = FM_TASK_REGRESSION, .label0 = 1, .n = 1, .weight = 0.5f, .pos_weight = 1.0f,
         .huber_delta = huber},
        {.name = "phenotype", .kind = FM_TASK_MULTILABEL, .label0 = 2, .n = 3, .weight = 2.0f, .pos_weight = 1.0f},
    };
    fm_params_init(&c->p);
    ck_assert_int_eq(fm_heads_declare(&c->heads, P, HID, dropout, NL, 3, tasks, &c->p, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&c->p, 0, NULL), FM_OK);
    FmRng rng;
    fm_rng_seed(&rng, seed);
    fm_heads_init(&c->heads, &c->p, &rng);
    fm_fill_uniform(&rng, c->h0, B * P, -2.0f, 2.0f);
    for (int b = 0; b < B; b++) {
        c->label[b * NL + 0] = (float)(b % 2);
        c->label[b * NL + 1] = (float)(3.0 * fm_rng_uniform(&rng) - 1.5);
        for (int j = 2; j < 5; j++) c->label[b * NL + j] = fm_rng_uniform(&rng) < 0.4;
        for (int j = 0; j < 5; j++) c->mask[b * NL + j] = fm_rng_uniform(&rng) < 0.8;
        c->label[b * NL + 5] = NAN; /* never used */
    }
    c->mask[0 * NL + 0] = c->mask[1 * NL + 0] = 1; /* both classes known */
    c->seed = seed + 1000;
    c->training = dropout > 0.0f;
    c->arena = fm_test_layout_alloc(heads_layout, c);
}

static void heads_free(HeadsCtx *c) {
    fm_params_free(&c->p);
    free(c->arena);
}

START_TEST(test_heads_gradcheck) {
    /* _i: 0 MSE without dropout, 1 Huber with dropout */
    HeadsCtx c;
    heads_setup(&c, _i ? 0.8f : 0.0f, _i ? 0.3f : 0.0f, 90 + (uint64_t)_i);
    fm_gemm_use_reference(1);
    heads_loss(&c);
    fm_params_zero_grad(&c.p);
    memset(c.dh0, 0, sizeof c.dh0);
    fm_heads_backward(&c.heads, &c.p, &c.buf, c.dh0, c.h0, B);
    /* observed max rel err 7.4e-4 (MSE) and 2.0e-3 (Huber, dropout) */
    fm_test_gradcheck_params(&c.p, "", heads_loss, &c, 1e-2, 2e-2);
    fm_test_gradcheck(heads_loss, &c, c.h0, c.dh0, B * P, 1e-2, 2e-2, "heads dh0");
    fm_gemm_use_reference(0);
    heads_free(&c);
}
END_TEST

static double softplus(double z) { return fmax(z, 0.0) + log1p(exp(-fabs(z))); }

START_TEST(test_heads_losses_and_predictions) {
    for (int huber = 0; huber < 2; huber++) {
        HeadsCtx c;
        const float delta = 0.8f;
        heads_setup(&c, huber ? delta : 0.0f, 0.0f, 95);
        heads_loss(&c);
        const float *z = c.buf.logits;
        double sum[3] = {0, 0, 0};
        int known[3] = {0, 0, 0}, branch[2] = {0, 0};
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < 5; j++) {
                const double y = c.label[b * NL + j], zz = z[b * NL + j];
                const float pred = c.buf.pred[b * NL + j];
                if (j == 1)
                    ck_assert_float_eq(pred, (float)zz); /* regression: the value */
                else /* probability: observed difference <= 6e-8 */
                    ck_assert(fabs(pred - 1.0 / (1.0 + exp(-zz))) < 1e-6);
                if (!c.mask[b * NL + j]) continue;
                int t = j == 0 ? 0 : j == 1 ? 1 : 2;
                known[t]++;
                if (t == 1) {
                    double e = zz - y;
                    branch[fabs(e) < delta]++;
                    sum[t] += !huber ? e * e : fabs(e) < delta ? 0.5 * e * e : delta * (fabs(e) - 0.5 * delta);
                } else {
                    double pw = t == 0 ? 3.0 : 1.0;
                    sum[t] += pw * y * softplus(-zz) + (1.0 - y) * softplus(zz);
                }
            }
            ck_assert(isnan(c.buf.pred[b * NL + 5])); /* no task predicts column 5 */
        }
        const double w[3] = {1.0, 0.5, 2.0};
        double total = 0.0;
        for (int t = 0; t < 3; t++) {
            ck_assert_int_eq(c.losses.known[t], known[t]);
            /* observed relative difference <= 1e-15 (same formula, double) */
            ck_assert(fabs(c.losses.loss[t] - sum[t] / known[t]) <= 1e-9 * fabs(sum[t] / known[t]));
            total += w[t] * sum[t] / known[t];
        }
        ck_assert(fabs(c.losses.total - total) <= 1e-9 * fabs(total));
        /* both Huber branches occur in this batch */
        ck_assert(branch[0] > 0 && branch[1] > 0);
        heads_free(&c);
    }
}
END_TEST

START_TEST(test_heads_task_without_labels_adds_nothing) {
    HeadsCtx c;
    heads_setup(&c, 0.0f, 0.0f, 97);
    for (int b = 0; b < B; b++) c.mask[b * NL + 1] = 0; /* no length of stay known */
    heads_loss(&c);
    ck_assert_int_eq(c.losses.known[1], 0);
    ck_assert(c.losses.loss[1] == 0.0);
    for (int b = 0; b < B; b++) ck_assert_float_eq(c.buf.dlogits[b * NL + 1], 0.0f);
    fm_params_zero_grad(&c.p);
    float dh0[B * P] = {0};
    fm_heads_backward(&c.heads, &c.p, &c.buf, dh0, c.h0, B);
    const float *g = fm_params_grad(&c.p, c.heads.out_w[1]);
    for (int p = 0; p < P; p++) ck_assert_float_eq(g[p], 0.0f);
    heads_free(&c);
}
END_TEST

START_TEST(test_heads_rejects_bad_tasks) {
    FmParams p;
    fm_params_init(&p);
    FmHeads h;
    FmError err;
    FmTaskConfig t[2] = {
        {.name = "a", .kind = FM_TASK_BINARY, .label0 = 0, .n = 1, .weight = 1, .pos_weight = 1},
        {.name = "b", .kind = FM_TASK_MULTILABEL, .label0 = 0, .n = 2, .weight = 1, .pos_weight = 1},
    };
    ck_assert_int_eq(fm_heads_declare(&h, 4, 4, 0.0f, 3, 2, t, &p, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "label columns overlap those of task a");
    t[1].label0 = 2;
    ck_assert_int_eq(fm_heads_declare(&h, 4, 4, 0.0f, 3, 2, t, &p, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "label columns 2..3 outside the 3 labels");
    t[1].label0 = 1;
    t[0].n = 2;
    ck_assert_int_eq(fm_heads_check_tasks(4, 2, t, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "2 label columns (binary and regression tasks have 1)");
    t[0].n = 1;
    t[0].pos_weight = 0.0f;
    ck_assert_int_eq(fm_heads_check_tasks(4, 2, t, &err), FM_ERR_CONFIG);
    t[0].pos_weight = 1.0f;
    snprintf(t[1].name, sizeof t[1].name, "a");
    ck_assert_int_eq(fm_heads_check_tasks(4, 2, t, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "task name used twice");
    snprintf(t[1].name, sizeof t[1].name, "b-c");
    ck_assert_int_eq(fm_heads_check_tasks(4, 2, t, &err), FM_ERR_CONFIG);
    snprintf(t[1].name, sizeof t[1].name, "b");
    ck_assert_int_eq(fm_heads_check_tasks(4, 2, t, &err), FM_OK);
    fm_params_free(&p);
}
END_TEST

static Suite *heads_suite(void) {
    Suite *s = suite_create("heads");
    TCase *tc = tcase_create("heads");
    tcase_add_loop_test(tc, test_heads_gradcheck, 0, 2);
    tcase_add_test(tc, test_heads_losses_and_predictions);
    tcase_add_test(tc, test_heads_task_without_labels_adds_nothing);
    tcase_add_test(tc, test_heads_rejects_bad_tasks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(heads_suite()); }
