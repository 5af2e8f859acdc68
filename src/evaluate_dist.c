/* Evaluation split among ranks (src/evaluate_dist.h). */
#include "src/evaluate_dist.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

void fm_evaluate_dist_block(int64_t n, int cap, int rank, int size, int64_t *begin, int64_t *end) {
    fm_dist_block_range(n, cap, rank, size, begin, end);
}

FmStatus fm_evaluate_predict_dist(FmDist *d, const FmModel *model, FmModelWorkspace *ws, FmTrainBatch *tb,
                                  const FmCohort *c, const FmTrainSpec *spec, int norm, const int64_t *idx,
                                  int64_t n, const FmEvaluateOptions *opt, FmPredictions *out, FmError *err) {
    const int P = fm_dist_size(d);
    if (P == 1) return fm_evaluate_predict(model, ws, tb, c, spec, norm, idx, n, opt, out, err);
    const int J = out->n_labels, T = model->cfg.n_tasks;
    int64_t lo, hi;
    fm_evaluate_dist_block(n, tb->cap, d->rank, P, &lo, &hi);
    /* This rank's block, predicted into its place in `out`. */
    FmPredictions mine = {.n = hi - lo,
                          .n_labels = J,
                          .stay_id = out->stay_id + lo,
                          .score = out->score + (size_t)lo * J,
                          .label = out->label + (size_t)lo * J,
                          .mask = out->mask + (size_t)lo * J};
    FmEvaluateLoss loss;
    FmEvaluateOptions o = opt ? *opt : (FmEvaluateOptions){0};
    o.loss = &loss;
    memset(&loss, 0, sizeof loss);
    FmStatus st = FM_OK;
    if (hi > lo) st = fm_evaluate_predict(model, ws, tb, c, spec, norm, idx + lo, hi - lo, &o, &mine, err);
    if ((st = fm_dist_agree(d, st, err)) != FM_OK) return st;

    int64_t *counts = fm_malloc_array((size_t)P, sizeof *counts);
    st = counts ? FM_OK : FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    if ((st = fm_dist_agree(d, st, err)) != FM_OK) {
        fm_free(counts);
        return st;
    }
    for (int r = 0; r < P; r++) {
        int64_t a, b;
        fm_evaluate_dist_block(n, tb->cap, r, P, &a, &b);
        counts[r] = b - a;
    }
    fm_dist_gather_items(d, out->stay_id, sizeof *out->stay_id, counts);
    for (int r = 0; r < P; r++) counts[r] *= J;
    fm_dist_gather_items(d, out->score, sizeof *out->score, counts);
    fm_dist_gather_items(d, out->label, sizeof *out->label, counts);
    fm_dist_gather_items(d, out->mask, sizeof *out->mask, counts);
    fm_free(counts);

    if (opt && opt->usage) {
        /* Integer counts, exact as doubles below 2^53. */
        FmExpertUsage *u = opt->usage;
        const size_t k = (size_t)u->layers * (size_t)u->M * (size_t)u->E;
        double *v = fm_malloc_array(k + 1, sizeof *v);
        st = fm_dist_agree(d, v ? FM_OK : FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory"), err);
        if (st != FM_OK) {
            fm_free(v);
            return st;
        }
        for (size_t i = 0; i < k; i++) v[i] = (double)u->count[i];
        fm_dist_sum_doubles(d, v, k);
        for (size_t i = 0; i < k; i++) u->count[i] = (int64_t)v[i];
        fm_free(v);
    }
    if (opt && opt->probe) {
        /* The ranks' sums added in the fixed order of fm_dist_sum_doubles (token counts exact). */
        FmExpertProbe *p = opt->probe;
        const size_t k = fm_evaluate_experts_n_values(p);
        double *v = fm_malloc_array(k, sizeof *v);
        st = fm_dist_agree(d, v ? FM_OK : FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory"), err);
        if (st != FM_OK) {
            fm_free(v);
            return st;
        }
        fm_evaluate_experts_get_values(p, v);
        fm_dist_sum_doubles(d, v, k);
        fm_evaluate_experts_set_values(p, v);
        fm_free(v);
    }
    if (opt && opt->loss) {
        /* sum_t and known_t over ranks, then the means as fm_evaluate_predict forms them. */
        double v[2 * FM_MAX_TASKS] = {0};
        for (int t = 0; t < T; t++) {
            v[t] = loss.known[t] > 0 ? loss.task_loss[t] * (double)loss.known[t] : 0.0;
            v[FM_MAX_TASKS + t] = (double)loss.known[t];
        }
        fm_dist_sum_doubles(d, v, 2 * FM_MAX_TASKS);
        FmEvaluateLoss *l = opt->loss;
        memset(l, 0, sizeof *l);
        for (int t = 0; t < T; t++) {
            l->known[t] = (int64_t)v[FM_MAX_TASKS + t];
            l->task_loss[t] = l->known[t] > 0 ? v[t] / (double)l->known[t] : NAN;
            if (l->known[t] > 0) l->total += model->cfg.task[t].weight * l->task_loss[t];
        }
    }
    return FM_OK;
}
