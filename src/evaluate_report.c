/* Evaluation results from predictions (src/evaluate_report.h). */
#include "src/evaluate_report.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"
#include "src/bootstrap.h"
#include "src/json_out.h"
#include "src/metrics.h"

/* Scratch for one task: the known entries of one column, or a task's (rows, L) block. */
typedef struct {
    float *s, *y;  /* (n * L) */
    uint8_t *m;    /* (n * L) */
    float *bs, *by; /* (n * L) bootstrap replicate of a block */
    uint8_t *bm;
    float *index;  /* (n) row numbers, the "predictions" a block's bootstrap resamples */
    float *zero;   /* (n) */
} Scratch;

static void scratch_free(Scratch *w) {
    fm_free(w->s);
    fm_free(w->y);
    fm_free(w->m);
    fm_free(w->bs);
    fm_free(w->by);
    fm_free(w->bm);
    fm_free(w->index);
    fm_free(w->zero);
    memset(w, 0, sizeof *w);
}

static FmStatus scratch_alloc(Scratch *w, int64_t n, int L, FmError *err) {
    memset(w, 0, sizeof *w);
    size_t rows = n > 0 ? (size_t)n : 1, cells = rows * (size_t)(L > 0 ? L : 1);
    w->s = fm_malloc_array(cells, sizeof(float));
    w->y = fm_malloc_array(cells, sizeof(float));
    w->m = fm_malloc(cells);
    w->bs = fm_malloc_array(cells, sizeof(float));
    w->by = fm_malloc_array(cells, sizeof(float));
    w->bm = fm_malloc(cells);
    w->index = fm_malloc_array(rows, sizeof(float));
    w->zero = fm_calloc(rows, sizeof(float));
    if (!w->s || !w->y || !w->m || !w->bs || !w->by || !w->bm || !w->index || !w->zero) {
        scratch_free(w);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory evaluating %lld stays", (long long)n);
    }
    return FM_OK;
}

/* The known (score, label) pairs of column j: returns their number. */
static size_t gather_column(const FmPredictions *p, int j, float *s, float *y) {
    size_t k = 0;
    for (int64_t i = 0; i < p->n; i++) {
        size_t at = (size_t)i * p->n_labels + j;
        if (!p->mask[at]) continue;
        s[k] = p->score[at];
        y[k] = p->label[at];
        k++;
    }
    return k;
}

/* The block of columns [j0, j0 + L) over the stays with at least one of them known: returns
 * the number of rows. */
static size_t gather_block(const FmPredictions *p, int j0, int L, float *s, float *y, uint8_t *m) {
    size_t rows = 0;
    for (int64_t i = 0; i < p->n; i++) {
        const uint8_t *mk = p->mask + (size_t)i * p->n_labels + j0;
        int any = 0;
        for (int l = 0; l < L; l++) any |= mk[l];
        if (!any) continue;
        for (int l = 0; l < L; l++) {
            size_t at = (size_t)i * p->n_labels + j0 + l, to = rows * L + l;
            s[to] = p->score[at];
            y[to] = mk[l] ? p->label[at] : 0.0f;
            m[to] = mk[l];
        }
        rows++;
    }
    return rows;
}

/* Mean of the finite values of x (n); NaN when none is. */
static double mean_finite(const double *x, int n) {
    double s = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) s += x[i], k++;
    return k ? s / k : NAN;
}

FmStatus fm_evaluate_summarise(const FmModelConfig *mc, const FmPredictions *p, FmTaskSummary *out, FmError *err) {
    Scratch w;
    FmStatus st = scratch_alloc(&w, p->n, 1, err);
    if (st != FM_OK) return st;
    for (int t = 0; t < mc->n_tasks && st == FM_OK; t++) {
        const FmTaskConfig *task = &mc->task[t];
        FmTaskSummary *o = &out[t];
        o->auroc = o->auprc = o->f1 = o->mae = o->rmse = o->r2 = NAN;
        if (task->kind == FM_TASK_REGRESSION) {
            size_t k = gather_column(p, task->label0, w.s, w.y);
            o->mae = fm_metrics_mae(w.s, w.y, k);
            o->rmse = fm_metrics_rmse(w.s, w.y, k);
            o->r2 = fm_metrics_r2(w.s, w.y, k);
            continue;
        }
        double auroc[FM_TRAIN_MAX_LABELS], auprc[FM_TRAIN_MAX_LABELS], f1[FM_TRAIN_MAX_LABELS];
        int L = task->n < FM_TRAIN_MAX_LABELS ? task->n : FM_TRAIN_MAX_LABELS;
        for (int l = 0; l < L && st == FM_OK; l++) {
            size_t k = gather_column(p, task->label0 + l, w.s, w.y);
            st = fm_metrics_auroc(w.s, w.y, k, &auroc[l], err);
            if (st == FM_OK) st = fm_metrics_auprc(w.s, w.y, k, &auprc[l], err);
            if (st == FM_OK) st = fm_metrics_f1(w.s, w.y, k, 0.5, &f1[l], err);
        }
        if (st != FM_OK) break;
        o->auroc = mean_finite(auroc, L);
        o->auprc = mean_finite(auprc, L);
        o->f1 = mean_finite(f1, L);
    }
    scratch_free(&w);
    return st;
}

double fm_evaluate_select_value(const FmModelConfig *mc, const FmTaskSummary *s, FmSelectMetric metric, double loss,
                                int *higher_is_better) {
    int any_class = 0;
    for (int t = 0; t < mc->n_tasks; t++) any_class |= mc->task[t].kind != FM_TASK_REGRESSION;
    if (metric == FM_SELECT_LOSS || !any_class) {
        *higher_is_better = 0;
        return loss;
    }
    *higher_is_better = 1;
    double sum = 0.0;
    int k = 0;
    for (int t = 0; t < mc->n_tasks; t++) {
        if (mc->task[t].kind == FM_TASK_REGRESSION) continue;
        double v = metric == FM_SELECT_AUROC ? s[t].auroc : metric == FM_SELECT_AUPRC ? s[t].auprc : s[t].f1;
        if (isfinite(v)) sum += v, k++;
    }
    return k ? sum / k : NAN;
}

FmStatus fm_evaluate_choose_thresholds(const FmModelConfig *mc, const FmPredictions *p, double *threshold,
                                       FmError *err) {
    Scratch w;
    FmStatus st = scratch_alloc(&w, p->n, 1, err);
    if (st != FM_OK) return st;
    for (int j = 0; j < p->n_labels; j++) threshold[j] = NAN;
    for (int t = 0; t < mc->n_tasks && st == FM_OK; t++) {
        const FmTaskConfig *task = &mc->task[t];
        if (task->kind == FM_TASK_REGRESSION) continue;
        for (int l = 0; l < task->n && st == FM_OK; l++) {
            size_t k = gather_column(p, task->label0 + l, w.s, w.y);
            FmThreshold best;
            st = fm_metrics_best_f1_threshold(w.s, w.y, k, &best, err);
            threshold[task->label0 + l] = isfinite(best.threshold) ? best.threshold : 0.5;
        }
    }
    scratch_free(&w);
    return st;
}

/* ---- metrics.json ---- */

/* Adds `name` with the metric `spec` of (pred, target) and its bootstrap interval (or just
 * {"value": v} without replicates). */
static FmStatus add_metric(cJSON *obj, const char *name, const FmMetricSpec *spec, const float *pred,
                           const float *target, size_t n, const FmReportOptions *opt, FmError *err) {
    FmBootstrapCI ci;
    FmStatus st = fm_bootstrap_metric(spec, pred, target, n, opt->bootstrap, opt->seed, &ci, err);
    if (st != FM_OK) return st;
    if (opt->bootstrap > 0) return fm_json_add_ci(obj, name, &ci, err);
    cJSON *o = cJSON_CreateObject();
    if (!o) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics.json: out of memory adding \"%s\"", name);
    st = fm_json_add_number(o, "value", ci.estimate, err);
    if (st == FM_OK && !cJSON_AddItemToObject(obj, name, o))
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics.json: out of memory adding \"%s\"", name);
    if (st != FM_OK) cJSON_Delete(o);
    return st;
}

/* A multi-label metric of a block, as an FmMetricFn whose "predictions" are row numbers: the
 * bootstrap resamples rows, and the metric gathers them. */
typedef enum { BLOCK_MACRO_AUROC, BLOCK_MICRO_AUROC, BLOCK_MACRO_F1 } BlockMetric;
typedef struct {
    const Scratch *w;
    int L;
    BlockMetric kind;
    const double *threshold; /* (L) or NULL: 0.5 */
} BlockCtx;

static FmStatus block_metric(const void *ctx, const float *rows, const float *unused, size_t n, double *out,
                             FmError *err) {
    (void)unused;
    const BlockCtx *b = ctx;
    const Scratch *w = b->w;
    const int L = b->L;
    for (size_t i = 0; i < n; i++) {
        size_t src = (size_t)rows[i];
        memcpy(w->bs + i * L, w->s + src * L, (size_t)L * sizeof(float));
        memcpy(w->by + i * L, w->y + src * L, (size_t)L * sizeof(float));
        memcpy(w->bm + i * L, w->m + src * L, (size_t)L);
    }
    switch (b->kind) {
    case BLOCK_MACRO_AUROC: return fm_metrics_macro_auroc(w->bs, w->by, w->bm, n, L, NULL, NULL, out, err);
    case BLOCK_MICRO_AUROC: return fm_metrics_micro_auroc(w->bs, w->by, w->bm, n, L, out, err);
    case BLOCK_MACRO_F1: return fm_metrics_macro_f1(w->bs, w->by, w->bm, n, L, b->threshold, NULL, NULL, out, err);
    }
    return FM_OK;
}

/* Bootstraps a block metric over `rows` stays and writes its interval into `o` (an object that
 * holds "value" already) or, with `name`, as a new member of `task`. */
static FmStatus add_block_ci(cJSON *task, const char *member, const char *name, const BlockCtx *ctx, size_t rows,
                             const FmReportOptions *opt, FmError *err) {
    FmBootstrapConfig bc = fm_bootstrap_default();
    bc.n_resamples = opt->bootstrap;
    bc.seed = opt->seed;
    bc.stratified = 0;
    FmBootstrapCI ci;
    FmStatus st = fm_bootstrap_ci(block_metric, ctx, ctx->w->index, ctx->w->zero, rows, &bc, &ci, err);
    if (st != FM_OK) return st;
    if (name) {
        if (opt->bootstrap > 0) return fm_json_add_ci(task, name, &ci, err);
        cJSON *o = cJSON_CreateObject();
        if (!o || fm_json_add_number(o, "value", ci.estimate, err) != FM_OK || !cJSON_AddItemToObject(task, name, o)) {
            cJSON_Delete(o);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics.json: out of memory adding \"%s\"", name);
        }
        return FM_OK;
    }
    cJSON *o = cJSON_GetObjectItemCaseSensitive(task, member);
    if (!o) return FM_OK;
    if (!cJSON_IsObject(o)) {
        /* micro_auroc is a bare number in the report: make it an object with its interval. */
        cJSON *obj = cJSON_CreateObject();
        if (!obj || fm_json_add_number(obj, "value", ci.estimate, err) != FM_OK) {
            cJSON_Delete(obj);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics.json: out of memory adding \"%s\"", member);
        }
        if (!cJSON_ReplaceItemInObjectCaseSensitive(task, member, obj)) {
            cJSON_Delete(obj);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics.json: out of memory adding \"%s\"", member);
        }
        o = obj;
    }
    if (opt->bootstrap <= 0) return FM_OK;
    FmStatus s2 = fm_json_add_number(o, "ci_low", ci.lo, err);
    if (s2 == FM_OK) s2 = fm_json_add_number(o, "ci_high", ci.hi, err);
    if (s2 == FM_OK) s2 = fm_json_add_number(o, "se", ci.se, err);
    if (s2 == FM_OK) s2 = fm_json_add_number(o, "replicates", ci.n_valid, err);
    return s2;
}

static FmStatus report_task(cJSON *tasks, const FmTaskConfig *task, const char *const *label_names,
                            const FmPredictions *p, const double *threshold, const FmReportOptions *opt, Scratch *w,
                            FmError *err) {
    FmBootstrapConfig bc = fm_bootstrap_default();
    bc.n_resamples = opt->bootstrap;
    bc.seed = opt->seed;
    FmStatus st;
    if (task->kind == FM_TASK_BINARY) {
        size_t k = gather_column(p, task->label0, w->s, w->y);
        st = fm_json_add_binary_report(tasks, task->name, w->s, w->y, k, threshold[task->label0], &bc, err);
        cJSON *o = cJSON_GetObjectItemCaseSensitive(tasks, task->name);
        FmMetricSpec f1 = {FM_METRIC_F1, 0.5, 0};
        if (st == FM_OK) st = add_metric(o, "f1_at_0.5", &f1, w->s, w->y, k, opt, err);
        return st;
    }
    if (task->kind == FM_TASK_REGRESSION) {
        size_t k = gather_column(p, task->label0, w->s, w->y);
        st = fm_json_add_regression_report(tasks, task->name, w->s, w->y, k, &bc, err);
        if (st != FM_OK || strcmp(label_names[task->label0], "los_log_days") != 0) return st;
        for (size_t i = 0; i < k; i++) {
            w->s[i] = (float)(exp((double)w->s[i]) - opt->los_log_offset_days);
            w->y[i] = (float)(exp((double)w->y[i]) - opt->los_log_offset_days);
        }
        cJSON *o = cJSON_GetObjectItemCaseSensitive(tasks, task->name);
        FmMetricSpec mae = {FM_METRIC_MAE, 0, 0};
        return add_metric(o, "mae_days", &mae, w->s, w->y, k, opt, err);
    }
    const int L = task->n;
    size_t rows = gather_block(p, task->label0, L, w->s, w->y, w->m);
    st = fm_json_add_multilabel_report(tasks, task->name, w->s, w->y, w->m, rows, L, label_names + task->label0,
                                       threshold + task->label0, err);
    if (st != FM_OK) return st;
    cJSON *o = cJSON_GetObjectItemCaseSensitive(tasks, task->name);
    BlockCtx macro = {w, L, BLOCK_MACRO_AUROC, NULL}, micro = {w, L, BLOCK_MICRO_AUROC, NULL};
    BlockCtx f1 = {w, L, BLOCK_MACRO_F1, threshold + task->label0}, f05 = {w, L, BLOCK_MACRO_F1, NULL};
    if ((st = add_block_ci(o, "macro_auroc", NULL, &macro, rows, opt, err)) == FM_OK &&
        (st = add_block_ci(o, "micro_auroc", NULL, &micro, rows, opt, err)) == FM_OK &&
        (st = add_block_ci(o, "macro_f1", NULL, &f1, rows, opt, err)) == FM_OK)
        st = add_block_ci(o, NULL, "macro_f1_at_0.5", &f05, rows, opt, err);
    return st;
}

FmStatus fm_evaluate_report(cJSON *tasks, const FmModelConfig *mc, const char *const *label_names,
                            const FmPredictions *p, const double *threshold, const FmReportOptions *opt,
                            FmError *err) {
    int L = 1;
    for (int t = 0; t < mc->n_tasks; t++)
        if (mc->task[t].n > L) L = mc->task[t].n;
    Scratch w;
    FmStatus st = scratch_alloc(&w, p->n, L, err);
    if (st != FM_OK) return st;
    for (int64_t i = 0; i < p->n; i++) w.index[i] = (float)i;
    for (int t = 0; t < mc->n_tasks && st == FM_OK; t++) {
        st = report_task(tasks, &mc->task[t], label_names, p, threshold, opt, &w, err);
        if (st != FM_OK) fm_error_prefix(err, "task %s", mc->task[t].name);
    }
    scratch_free(&w);
    return st;
}
